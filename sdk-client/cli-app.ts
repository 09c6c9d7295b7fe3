/**
 * The `gatehouse` CLI as a function: `runCli(argv, io)` parses the arguments (node:util parseArgs), runs one
 * command through the SDK client and returns the exit status, writing only to the streams it is given, so
 * tests drive it in-process. It reads the control plane's URL and the admin token from `io.env` only: the
 * token is never a flag, because flags show up in process lists and shell history.
 *
 * Exit status: 0 done; 1 the operation failed (user errors, not found, auth, network); 2 usage error.
 * Output: a table or key/value block by default, `--json` for JSON on stdout. Errors go to stderr.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { createGatehouseClient, type FetchLike, type GatehouseClient } from './client.js';
import { GatehouseError } from './errors.js';
import { clean, details, table, toolList, userErrorLines, when } from './format.js';
import type {
  CreateMcpServerInput,
  DataPlaneNode,
  KeyServerGrant,
  KeyServerGrantInput,
  McpServer,
  SecretEntry,
  User,
  UserError,
  VirtualKey,
} from './types.js';

export const DEFAULT_URL = 'http://127.0.0.1:8090';

export interface TextSink {
  write(chunk: string): unknown;
}

export interface CliIO {
  env: Readonly<Record<string, string | undefined>>;
  stdout: TextSink;
  stderr: TextSink;
  /** Replaces the global fetch (tests, proxies). */
  fetch?: FetchLike;
  /** Read by `--file -`. */
  stdin?: AsyncIterable<string | Uint8Array>;
  /** Relative `--file` paths resolve against this; default process.cwd(). */
  cwd?: string;
}

const EXIT_OK = 0;
const EXIT_FAILED = 1;
const EXIT_USAGE = 2;

// One option table for every command, so `--json` and `--help` may go anywhere on the line; each command
// then lists which of the others it accepts.
const OPTIONS = {
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  file: { type: 'string', short: 'f' },
  email: { type: 'string' },
  name: { type: 'string' },
  user: { type: 'string' },
  server: { type: 'string', multiple: true },
  expires: { type: 'string' },
} as const;

type OptionName = keyof typeof OPTIONS;

interface Values {
  json?: boolean;
  help?: boolean;
  file?: string;
  email?: string;
  name?: string;
  user?: string;
  server?: string[];
  expires?: string;
}

/** A mistake in how the command was called: exit 2 with the command's usage line. */
class UsageError extends Error {}

interface Context {
  client: GatehouseClient;
  args: readonly string[];
  values: Values;
  json: boolean;
  io: CliIO;
  out(text: string): void;
  err(text: string): void;
}

interface Command {
  group: string;
  action: string;
  /** Positional argument names, in order; each is required. */
  args: readonly string[];
  options: readonly OptionName[];
  required: readonly OptionName[];
  /** What follows `gatehouse group action` in the usage line. */
  synopsis: string;
  summary: string;
  run(ctx: Context): Promise<number>;
}

const COMMANDS: readonly Command[] = [
  {
    group: 'servers',
    action: 'list',
    args: [],
    options: [],
    required: [],
    synopsis: '',
    summary: 'List MCP servers',
    async run(ctx) {
      const servers = await ctx.client.allMcpServers();
      if (ctx.json) return printJson(ctx, servers);
      ctx.out(
        table(servers, [
          { header: 'NAME', value: (s) => s.name },
          { header: 'TYPE', value: (s) => s.connectionType },
          { header: 'AUTH', value: (s) => s.authType },
          { header: 'STATUS', value: (s) => (s.disabled ? `${s.status} (disabled)` : s.status) },
          { header: 'TOOLS', value: (s) => toolList(s.toolsToExecute) },
          { header: 'CONNECTION', value: connectionOf },
        ]),
      );
      return EXIT_OK;
    },
  },
  {
    group: 'servers',
    action: 'get',
    args: ['NAME'],
    options: [],
    required: [],
    synopsis: 'NAME',
    summary: 'Show one MCP server',
    async run(ctx) {
      const name = ctx.args[0] ?? '';
      const server = await ctx.client.mcpServer(name);
      if (server === null) {
        ctx.err(`no MCP server named ${JSON.stringify(clean(name))}\n`);
        return EXIT_FAILED;
      }
      if (ctx.json) return printJson(ctx, server);
      ctx.out(serverDetails(server));
      return EXIT_OK;
    },
  },
  {
    group: 'servers',
    action: 'create',
    args: [],
    options: ['file'],
    required: ['file'],
    synopsis: '--file FILE',
    summary: 'Create an MCP server from a JSON CreateMcpServerInput (FILE "-" reads stdin)',
    async run(ctx) {
      const input = await readInputFile(ctx, ctx.values.file ?? '');
      const payload = await ctx.client.createMcpServer(input);
      return finish(ctx, payload, () => {
        if (payload.mcpServer) ctx.out(`created MCP server ${clean(payload.mcpServer.name)} (id ${payload.mcpServer.id})\n${serverDetails(payload.mcpServer)}`);
      });
    },
  },
  {
    group: 'servers',
    action: 'delete',
    args: ['NAME'],
    options: [],
    required: [],
    synopsis: 'NAME',
    summary: 'Delete an MCP server and its grants in every virtual key',
    async run(ctx) {
      const payload = await ctx.client.deleteMcpServer({ name: ctx.args[0] ?? '' });
      return finish(ctx, payload, () => {
        if (payload.mcpServer) ctx.out(`deleted MCP server ${clean(payload.mcpServer.name)} (id ${payload.mcpServer.id})\n`);
      });
    },
  },
  {
    group: 'users',
    action: 'list',
    args: [],
    options: [],
    required: [],
    synopsis: '',
    summary: 'List users',
    async run(ctx) {
      const users = await ctx.client.allUsers();
      if (ctx.json) return printJson(ctx, users);
      ctx.out(
        table(users, [
          { header: 'ID', value: (u) => u.id },
          { header: 'EMAIL', value: (u) => u.email },
          { header: 'NAME', value: (u) => u.name ?? '-' },
          { header: 'CREATED', value: (u) => when(u.createdAt) },
        ]),
      );
      return EXIT_OK;
    },
  },
  {
    group: 'users',
    action: 'create',
    args: [],
    options: ['email', 'name'],
    required: ['email'],
    synopsis: '--email EMAIL [--name NAME]',
    summary: 'Create a user',
    async run(ctx) {
      const payload = await ctx.client.createUser({ email: ctx.values.email ?? '', name: ctx.values.name ?? null });
      return finish(ctx, payload, () => {
        if (payload.user) ctx.out(`created user ${clean(payload.user.email)} (id ${payload.user.id})\n`);
      });
    },
  },
  {
    group: 'keys',
    action: 'list',
    args: [],
    options: ['user'],
    required: [],
    synopsis: '[--user ID|EMAIL]',
    summary: 'List virtual keys, all or one user\'s',
    async run(ctx) {
      const userId = ctx.values.user === undefined ? null : await resolveUserId(ctx, ctx.values.user);
      if (userId === undefined) return EXIT_FAILED;
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
    options: ['user', 'name', 'server', 'expires'],
    required: ['user', 'name'],
    synopsis: '--user ID|EMAIL --name NAME [--server SERVER:TOOL,TOOL|SERVER:*]... [--expires ISO-8601]',
    summary: 'Create a virtual key; prints the key (shown once) on stdout, details on stderr',
    async run(ctx) {
      const servers = (ctx.values.server ?? []).map(parseGrant);
      const userId = await resolveUserId(ctx, ctx.values.user ?? '');
      if (userId === undefined) return EXIT_FAILED;
      const payload = await ctx.client.createVirtualKey({
        userId,
        name: ctx.values.name ?? '',
        servers,
        expiresAt: ctx.values.expires ?? null,
      });
      return finish(ctx, payload, () => printIssuedKey(ctx, 'created', payload.key, payload.virtualKey));
    },
  },
  {
    group: 'keys',
    action: 'revoke',
    args: ['ID'],
    options: [],
    required: [],
    synopsis: 'ID',
    summary: 'Revoke a virtual key for good',
    async run(ctx) {
      const payload = await ctx.client.revokeVirtualKey({ id: ctx.args[0] ?? '' });
      return finish(ctx, payload, () => {
        if (payload.virtualKey) ctx.out(`revoked virtual key ${clean(payload.virtualKey.name)} (id ${payload.virtualKey.id})\n`);
      });
    },
  },
  {
    group: 'keys',
    action: 'rotate',
    args: ['ID'],
    options: [],
    required: [],
    synopsis: 'ID',
    summary: 'Issue a new value for a virtual key (the old one stops working); prints it on stdout',
    async run(ctx) {
      const payload = await ctx.client.rotateVirtualKey({ id: ctx.args[0] ?? '' });
      return finish(ctx, payload, () => printIssuedKey(ctx, 'rotated', payload.key, payload.virtualKey));
    },
  },
  {
    group: 'nodes',
    action: 'list',
    args: [],
    options: [],
    required: [],
    synopsis: '',
    summary: 'List data-plane nodes and what they applied',
    async run(ctx) {
      const nodes = await ctx.client.allNodes();
      if (ctx.json) return printJson(ctx, nodes);
      ctx.out(
        table(nodes, [
          { header: 'ID', value: (n) => n.id },
          { header: 'CONNECTED', value: (n) => (n.connected ? 'yes' : 'no') },
          { header: 'HEALTH', value: (n) => n.health },
          { header: 'VERSION', value: (n) => (n.appliedVersion === null ? '-' : String(n.appliedVersion)) },
          { header: 'LAST SEEN', value: (n) => when(n.lastSeenAt) },
          { header: 'PROBLEMS', value: nodeProblems },
        ]),
      );
      return EXIT_OK;
    },
  },
];

function usageLine(command: Command): string {
  return `usage: gatehouse ${command.group} ${command.action}${command.synopsis ? ` ${command.synopsis}` : ''} [--json]`;
}

function helpText(): string {
  return [
    'usage: gatehouse <command> [options]',
    '',
    'Commands:',
    ...COMMANDS.flatMap((c) => [`  ${c.group} ${c.action}${c.synopsis ? ` ${c.synopsis}` : ''}`, `      ${c.summary}`]),
    '',
    'Options:',
    '  --json       print JSON on stdout instead of a table',
    '  -h, --help   show this help',
    '',
    'Key grants: --server crm:search,fetch grants those tools of crm; --server \'kb:*\' every tool kb allows.',
    '',
    'Environment:',
    `  GATEHOUSE_URL          the control plane (default ${DEFAULT_URL})`,
    '  GATEHOUSE_ADMIN_TOKEN  an admin token (required; never a flag, so it stays out of process lists)',
    '',
    'Exit status: 0 done, 1 the operation failed, 2 usage error.',
    '',
  ].join('\n');
}

export async function runCli(argv: readonly string[], io: CliIO): Promise<number> {
  const out = (text: string) => void io.stdout.write(text);
  const err = (text: string) => void io.stderr.write(text);
  const usageFailure = (message: string, usage: string): number => {
    err(`error: ${message}\n${usage}\n`);
    return EXIT_USAGE;
  };

  let values: Values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args: [...argv], options: OPTIONS, strict: true, allowPositionals: true }));
  } catch (error) {
    // parseArgs throws TypeErrors (ERR_PARSE_ARGS_*) for unknown options and missing values.
    return usageFailure(error instanceof Error ? error.message : String(error), 'usage: gatehouse <command> [options] (see gatehouse --help)');
  }

  const [group, action, ...args] = positionals;
  if (group === undefined || group === 'help') {
    if (values.help || group === 'help') {
      out(helpText());
      return EXIT_OK;
    }
    err(helpText());
    return EXIT_USAGE;
  }
  const command = COMMANDS.find((c) => c.group === group && c.action === action);
  if (!command) {
    const known = COMMANDS.filter((c) => c.group === group).map((c) => c.action);
    const message =
      known.length === 0
        ? `unknown command ${JSON.stringify(clean(group))}`
        : `${action === undefined ? 'missing' : `unknown`} ${group} subcommand${action === undefined ? '' : ` ${JSON.stringify(clean(action))}`}; one of: ${known.join(', ')}`;
    return usageFailure(message, 'usage: gatehouse <command> [options] (see gatehouse --help)');
  }
  if (values.help) {
    out(`${usageLine(command)}\n${command.summary}\n`);
    return EXIT_OK;
  }

  const usage = usageLine(command);
  for (const given of Object.keys(values) as OptionName[]) {
    if (given !== 'json' && given !== 'help' && !command.options.includes(given)) {
      return usageFailure(`--${given} is not an option of ${command.group} ${command.action}`, usage);
    }
  }
  for (const option of command.required) {
    if (values[option] === undefined) return usageFailure(`--${option} is required`, usage);
  }
  if (args.length !== command.args.length) {
    const message =
      args.length < command.args.length ? `${command.args[args.length]} is required` : `unexpected argument ${JSON.stringify(clean(args[command.args.length] ?? ''))}`;
    return usageFailure(message, usage);
  }

  const adminToken = io.env.GATEHOUSE_ADMIN_TOKEN;
  if (adminToken === undefined || adminToken.trim() === '') {
    return usageFailure('GATEHOUSE_ADMIN_TOKEN is not set: export an admin token (gha_…) in the environment', usage);
  }
  let client: GatehouseClient;
  try {
    client = createGatehouseClient({
      url: io.env.GATEHOUSE_URL?.trim() || DEFAULT_URL,
      adminToken: adminToken.trim(),
      ...(io.fetch ? { fetch: io.fetch } : {}),
    });
  } catch (error) {
    return usageFailure(`GATEHOUSE_URL: ${error instanceof Error ? error.message : String(error)}`, usage);
  }

  try {
    return await command.run({ client, args, values, json: values.json === true, io, out, err });
  } catch (error) {
    if (error instanceof UsageError) return usageFailure(error.message, usage);
    if (error instanceof GatehouseError) {
      const hint =
        error.code === 'UNAUTHENTICATED'
          ? ' (check GATEHOUSE_ADMIN_TOKEN)'
          : error.code === 'FORBIDDEN'
            ? ' (this needs an ADMIN token)'
            : error.code === 'NETWORK'
              ? ' (check GATEHOUSE_URL)'
              : '';
      err(`error: ${clean(error.message)} (${error.code})${hint}\n`);
      return EXIT_FAILED;
    }
    // The SDK scrubs the token from its own errors; anything else (a file read, a bug) never saw it.
    err(`error: ${clean(error instanceof Error ? error.message : String(error))}\n`);
    return EXIT_FAILED;
  }
}

// ---- Helpers shared by commands ----

function printJson(ctx: Context, value: unknown): number {
  ctx.out(`${JSON.stringify(value, null, 2)}\n`);
  return EXIT_OK;
}

/**
 * A mutation's payload: with `--json` printed whole (errors included) for scripts; user errors also go to
 * stderr as `field: message (CODE)` lines and make the exit status 1.
 */
function finish(ctx: Context, payload: { errors: UserError[] }, onSuccess: () => void): number {
  if (ctx.json) printJson(ctx, payload);
  if (payload.errors.length > 0) {
    ctx.err(userErrorLines(payload.errors));
    return EXIT_FAILED;
  }
  if (!ctx.json) onSuccess();
  return EXIT_OK;
}

/**
 * A newly issued key: only the key on stdout, so `KEY=$(gatehouse keys create …)` captures exactly it;
 * the details go to stderr, for the person at the terminal.
 */
function printIssuedKey(ctx: Context, verb: string, key: string | null, virtualKey: VirtualKey | null): void {
  if (key === null || virtualKey === null) throw new GatehouseError('GRAPHQL', `the control plane reported no error but returned no key`);
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

/** `crm:search,fetch` → `{server: 'crm', tools: ['search', 'fetch']}`; `kb:*` → every tool. */
function parseGrant(spec: string): KeyServerGrantInput {
  const colon = spec.indexOf(':');
  const server = colon < 0 ? '' : spec.slice(0, colon).trim();
  const tools = colon < 0 ? [] : spec.slice(colon + 1).split(',').map((t) => t.trim()).filter((t) => t.length > 0);
  // Deny by default: a grant names its tools (or `*`) explicitly, never "the whole server" by omission.
  if (server === '' || tools.length === 0) {
    throw new UsageError(`--server ${JSON.stringify(clean(spec))} must be SERVER:TOOL[,TOOL…] or SERVER:* (quote the * from the shell)`);
  }
  return { server, tools };
}

/**
 * `--user` takes the user's ID or, for convenience, their email (looked up; emails are stored lower-cased).
 * Returns undefined, after saying why, when no user has that email.
 */
async function resolveUserId(ctx: Context, value: string): Promise<string | undefined> {
  if (!value.includes('@')) return value;
  const email = value.trim().toLowerCase();
  const users = await ctx.client.allUsers();
  const user: User | undefined = users.find((u) => u.email === email);
  if (!user) ctx.err(`no user with email ${JSON.stringify(clean(email))}\n`);
  return user?.id;
}

async function readInputFile(ctx: Context, file: string): Promise<CreateMcpServerInput> {
  let text: string;
  if (file === '-') {
    const stdin = ctx.io.stdin ?? process.stdin;
    const chunks: string[] = [];
    const decoder = new TextDecoder();
    for await (const chunk of stdin) chunks.push(typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true }));
    chunks.push(decoder.decode());
    text = chunks.join('');
  } else {
    try {
      text = await readFile(resolve(ctx.io.cwd ?? process.cwd(), file), 'utf8');
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      throw new UsageError(`cannot read ${file}: ${typeof code === 'string' ? code : error instanceof Error ? error.message : String(error)}`);
    }
  }
  let json: unknown;
  try {
    json = JSON.parse(text.replace(/^\uFEFF/, ''));
  } catch (error) {
    throw new UsageError(`${file === '-' ? 'stdin' : file} is not valid JSON: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new UsageError(`${file === '-' ? 'stdin' : file} must hold one JSON object (a CreateMcpServerInput)`);
  }
  // Field types and values are checked by the server: GraphQL coerces the variable against
  // CreateMcpServerInput (a wrong type throws GatehouseError GRAPHQL) and the repository returns user errors.
  return json as CreateMcpServerInput;
}

function connectionOf(server: McpServer): string {
  if (server.connectionType === 'STDIO') return server.stdio ? [server.stdio.command, ...server.stdio.args].join(' ') : '-';
  return server.connectionString ?? '-';
}

function secrets(entries: readonly SecretEntry[]): string {
  return entries.length === 0 ? '-' : entries.map((e) => `${e.name}=${e.value}`).join(', ');
}

function serverDetails(s: McpServer): string {
  const rows: Array<readonly [string, string]> = [
    ['name', s.name],
    ['id', s.id],
    ['connection', `${s.connectionType} ${connectionOf(s)}`],
  ];
  if (s.stdio) rows.push(['stdio env', secrets(s.stdio.env)]);
  rows.push(
    ['auth', s.authType],
    ['headers', secrets(s.headers)],
    ['per-user headers', s.perUserHeaderKeys.length === 0 ? '-' : s.perUserHeaderKeys.join(', ')],
    ['tools to execute', toolList(s.toolsToExecute)],
    ['extra headers', s.allowedExtraHeaders.length === 0 ? '-' : s.allowedExtraHeaders.join(', ')],
    ['tool timeout', `${s.toolTimeoutMs} ms`],
    ['status', s.disabled ? `${s.status} (disabled)` : s.status],
    ['synced tools', s.tools === null ? '(not synced yet)' : s.tools.length === 0 ? '(none)' : s.tools.map((t) => t.name).join(', ')],
    ['created', s.createdAt],
    ['updated', s.updatedAt],
  );
  return details(rows);
}

function grantList(grants: readonly KeyServerGrant[]): string {
  return grants.length === 0 ? '(none)' : grants.map((g) => `${g.server}:${toolList(g.tools)}`).join(' ');
}

function keyState(key: VirtualKey): string {
  return key.revoked ? 'revoked' : key.expired ? 'expired' : 'active';
}

function nodeProblems(node: DataPlaneNode): string {
  const problems = node.missingEnv.map((m) => `missing env ${m.name} (${m.servers.join(', ')})`);
  if (node.lastRejection) problems.push(`rejected snapshot: ${node.lastRejection.code}`);
  return problems.length === 0 ? '-' : problems.join('; ');
}
