/** `gatehouse keys list|create|update|rotate|revoke|delete`: virtual keys. New values go to stdout alone. */
import type { KeyServerGrant, KeyServerGrantInput, VirtualKey } from '../../client.js';
import { GatehouseError } from '../../errors.js';
import { clean, details, table, toolList, when } from '../../format.js';
import { EXIT_OK, finish, printJson, quoted, UsageError, type Command, type Context } from '../command.js';
import { resolveUserId } from './users.js';

export function grantList(grants: readonly KeyServerGrant[]): string {
  return grants.length === 0 ? '(none)' : grants.map((g) => `${g.server}:${toolList(g.tools)}`).join(' ');
}

function keyState(key: VirtualKey): string {
  return key.revoked ? 'revoked' : key.expired ? 'expired' : 'active';
}

/** `crm:search,fetch` → `{server: 'crm', tools: ['search', 'fetch']}`; `kb:*` → every tool. */
export function parseGrant(spec: string): KeyServerGrantInput {
  const colon = spec.indexOf(':');
  const server = colon < 0 ? '' : spec.slice(0, colon).trim();
  const tools = colon < 0 ? [] : spec.slice(colon + 1).split(',').map((t) => t.trim()).filter((t) => t.length > 0);
  // Deny by default: a grant names its tools (or `*`) explicitly, never "the whole server" by omission.
  if (server === '' || tools.length === 0) {
    throw new UsageError(`--server ${quoted(spec)} must be SERVER:TOOL[,TOOL…] or SERVER:* (quote the * from the shell)`);
  }
  return { server, tools };
}

/**
 * A newly issued key: only the key on stdout, so `KEY=$(gatehouse keys create …)` captures exactly it;
 * the details go to stderr, for the person at the terminal.
 */
function printIssuedKey(ctx: Context, verb: string, key: string | null, virtualKey: VirtualKey | null): void {
  if (key === null || virtualKey === null) throw new GatehouseError('GRAPHQL', 'the control plane reported no error but returned no key');
  ctx.out(`${key}\n`);
  ctx.err(
    details([
      ['virtual key', `${virtualKey.name} (id ${virtualKey.id}) ${verb}`],
      ['user', virtualKey.user.email],
      ['servers', grantList(virtualKey.servers)],
      ['expires', virtualKey.expiresAt ?? 'never'],
    ]) + 'The key is shown only this once: store it now.\n',
  );
}

const GRANT_OPTIONS = {
  server: { type: 'string', multiple: true, placeholder: 'SERVER:TOOLS' },
  'no-servers': { type: 'boolean' },
  expires: { type: 'string', placeholder: 'ISO-8601' },
} as const;

function keyLine(ctx: Context, verb: string, key: VirtualKey | null | undefined): void {
  if (key) ctx.out(`${verb} virtual key ${clean(key.name)} (id ${key.id})\n`);
}

export const keyCommands: readonly Command[] = [
  {
    group: 'keys',
    action: 'list',
    args: [],
    options: { user: { type: 'string', placeholder: 'ID|EMAIL' } },
    synopsis: '[--user ID|EMAIL]',
    summary: "List virtual keys, all or one user's",
    async run(ctx) {
      const user = ctx.string('user');
      const userId = user === undefined ? null : await resolveUserId(ctx, user);
      const keys = await ctx.client.allVirtualKeys({ userId });
      if (ctx.json) return printJson(ctx, keys);
      ctx.out(
        table(keys, [
          { header: 'ID', value: (k) => k.id },
          { header: 'NAME', value: (k) => k.name },
          { header: 'USER', value: (k) => k.user.email },
          { header: 'STATE', value: keyState },
          { header: 'KEY', value: (k) => k.keyPreview },
          { header: 'EXPIRES', value: (k) => when(k.expiresAt) },
          { header: 'LAST USED', value: (k) => when(k.lastUsedAt) },
          { header: 'SERVERS', value: (k) => grantList(k.servers) },
        ]),
      );
      return EXIT_OK;
    },
  },
  {
    group: 'keys',
    action: 'create',
    args: [],
    options: { user: { type: 'string', placeholder: 'ID|EMAIL' }, name: { type: 'string', placeholder: 'NAME' }, ...GRANT_OPTIONS },
    required: ['user', 'name'],
    synopsis: '--user ID|EMAIL --name NAME --server SERVER:TOOL,TOOL|SERVER:*... [--no-servers] [--expires ISO-8601]',
    summary: 'Create a virtual key; prints the key (shown once) on stdout, details on stderr',
    async run(ctx) {
      const servers = ctx.strings('server').map(parseGrant);
      const userId = await resolveUserId(ctx, ctx.string('user') ?? '');
      const payload = await ctx.client.createVirtualKey({
        userId,
        name: ctx.string('name') ?? '',
        servers,
        expiresAt: ctx.string('expires') ?? null,
        allowNoServers: ctx.flag('no-servers'),
      });
      return finish(ctx, payload, () => printIssuedKey(ctx, 'created', payload.key, payload.virtualKey));
    },
  },
  {
    group: 'keys',
    action: 'update',
    args: ['ID'],
    options: { name: { type: 'string', placeholder: 'NAME' }, ...GRANT_OPTIONS, 'no-expiry': { type: 'boolean' } },
    synopsis: 'ID [--name NAME] [--server SERVER:TOOLS... | --no-servers] [--expires ISO-8601 | --no-expiry]',
    summary: 'Change a key: --server replaces its grants; --no-expiry removes the expiry',
    async run(ctx) {
      const servers = ctx.strings('server').map(parseGrant);
      const noServers = ctx.flag('no-servers');
      if (noServers && servers.length > 0) throw new UsageError('give --server or --no-servers, not both');
      if (ctx.flag('no-expiry') && ctx.string('expires') !== undefined) throw new UsageError('give --expires or --no-expiry, not both');
      const name = ctx.string('name');
      const expires = ctx.flag('no-expiry') ? null : ctx.string('expires');
      if (name === undefined && servers.length === 0 && !noServers && expires === undefined) {
        throw new UsageError('nothing to change: give --name, --server, --no-servers, --expires or --no-expiry');
      }
      const payload = await ctx.client.updateVirtualKey({
        id: ctx.args[0] ?? '',
        ...(name !== undefined ? { name } : {}),
        ...(servers.length > 0 || noServers ? { servers, allowNoServers: noServers } : {}),
        ...(expires !== undefined ? { expiresAt: expires } : {}),
      });
      return finish(ctx, payload, () => {
        keyLine(ctx, 'updated', payload.virtualKey);
        if (payload.virtualKey) ctx.out(`servers  ${clean(grantList(payload.virtualKey.servers))}\nexpires  ${payload.virtualKey.expiresAt ?? 'never'}\n`);
      });
    },
  },
  {
    group: 'keys',
    action: 'rotate',
    args: ['ID'],
    synopsis: 'ID',
    summary: 'Issue a new value for a virtual key (the old one stops working); prints it on stdout',
    async run(ctx) {
      const payload = await ctx.client.rotateVirtualKey({ id: ctx.args[0] ?? '' });
      return finish(ctx, payload, () => printIssuedKey(ctx, 'rotated', payload.key, payload.virtualKey));
    },
  },
  {
    group: 'keys',
    action: 'revoke',
    args: ['ID'],
    synopsis: 'ID',
    summary: 'Revoke a virtual key for good (it stays listed as revoked)',
    async run(ctx) {
      const payload = await ctx.client.revokeVirtualKey({ id: ctx.args[0] ?? '' });
      return finish(ctx, payload, () => keyLine(ctx, 'revoked', payload.virtualKey));
    },
  },
  {
    group: 'keys',
    action: 'delete',
    args: ['ID'],
    synopsis: 'ID',
    summary: 'Delete a virtual key (it stops working and is no longer listed)',
    async run(ctx) {
      const payload = await ctx.client.deleteVirtualKey({ id: ctx.args[0] ?? '' });
      return finish(ctx, payload, () => keyLine(ctx, 'deleted', payload.virtualKey));
    },
  },
];
