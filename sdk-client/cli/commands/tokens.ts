/** `gatehouse tokens list|create|revoke`: admin tokens for automation. A new token goes to stdout alone. */
import type { AdminRole } from '../../client.js';
import { GatehouseError } from '../../errors.js';
import { clean, table, when } from '../../format.js';
import { EXIT_OK, finish, printJson, quoted, UsageError, type Command } from '../command.js';

const ROLES: readonly AdminRole[] = ['ADMIN', 'VIEWER'];

export const tokenCommands: readonly Command[] = [
  {
    group: 'tokens',
    action: 'list',
    args: [],
    synopsis: '',
    summary: 'List admin tokens',
    async run(ctx) {
      const tokens = await ctx.client.allAdminTokens();
      if (ctx.json) return printJson(ctx, tokens);
      ctx.out(
        table(tokens, [
          { header: 'ID', value: (t) => t.id },
          { header: 'NAME', value: (t) => t.name },
          { header: 'ROLE', value: (t) => t.role },
          { header: 'STATE', value: (t) => (t.revoked ? 'revoked' : 'active') },
          { header: 'TOKEN', value: (t) => t.tokenPreview },
          { header: 'LAST USED', value: (t) => when(t.lastUsedAt) },
        ]),
      );
      return EXIT_OK;
    },
  },
  {
    group: 'tokens',
    action: 'create',
    args: [],
    options: { name: { type: 'string', placeholder: 'NAME' }, role: { type: 'string', placeholder: 'ADMIN|VIEWER' } },
    required: ['name', 'role'],
    synopsis: '--name NAME --role ADMIN|VIEWER',
    summary: 'Create an admin token; prints it (shown once) on stdout',
    async run(ctx) {
      const role = ROLES.find((r) => r === ctx.string('role')?.toUpperCase());
      if (!role) throw new UsageError(`--role ${quoted(ctx.string('role') ?? '')} must be ADMIN or VIEWER`);
      const payload = await ctx.client.createAdminToken({ name: ctx.string('name') ?? '', role });
      return finish(ctx, payload, () => {
        if (payload.token === null || payload.adminToken === null) throw new GatehouseError('GRAPHQL', 'the control plane returned no token');
        ctx.out(`${payload.token}\n`);
        ctx.err(`admin token ${clean(payload.adminToken.name)} (id ${payload.adminToken.id}, ${role}) created. It is shown only this once: store it now.\n`);
      });
    },
  },
  {
    group: 'tokens',
    action: 'revoke',
    args: ['ID'],
    synopsis: 'ID',
    summary: 'Revoke an admin token (not the last ADMIN one)',
    async run(ctx) {
      const payload = await ctx.client.revokeAdminToken({ id: ctx.args[0] ?? '' });
      return finish(ctx, payload, () => {
        if (payload.adminToken) ctx.out(`revoked admin token ${clean(payload.adminToken.name)} (id ${payload.adminToken.id})\n`);
      });
    },
  },
];
