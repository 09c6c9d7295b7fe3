/** `gatehouse servers list|get|create|update|delete`: MCP server registrations. */
import type { CreateMcpServerInput, McpServer, SecretEntry, UpdateMcpServerInput } from '../../client.js';
import { clean, details, table, toolList, when } from '../../format.js';
import { EXIT_FAILED, EXIT_OK, finish, printJson, quoted, type Command } from '../command.js';
import { readObjectFile } from '../input-file.js';

const FILE = { file: { type: 'string', short: 'f', placeholder: 'FILE' } } as const;

function connectionOf(server: McpServer): string {
  if (server.connectionType === 'STDIO') return server.stdio ? [server.stdio.command, ...server.stdio.args].join(' ') : '-';
  return server.connectionString ?? '-';
}

function secrets(entries: readonly SecretEntry[]): string {
  return entries.length === 0 ? '-' : entries.map((e) => `${e.name}=${e.value}`).join(', ');
}

/** The server's own catalog; a per-user server has none (each user's is listed with their own credential). */
function syncedTools(s: McpServer): string {
  if (s.authType === 'PER_USER_OAUTH' || s.authType === 'PER_USER_HEADERS') return "(per user: each user's own, not shown)";
  if (s.tools === null) return '(not synced yet)';
  return s.tools.length === 0 ? '(none)' : s.tools.map((t) => t.name).join(', ');
}

export function serverDetails(s: McpServer): string {
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
    ['status reason', s.statusReason ?? '-'],
    ['upstream', s.statusObservedAt === null ? `${s.upstreamStatus} (not observed yet)` : `${s.upstreamStatus} at ${when(s.statusObservedAt)} by ${s.statusObservedBy ?? '-'}`],
    ['synced tools', syncedTools(s)],
    ['created', s.createdAt],
    ['updated', s.updatedAt],
  );
  return details(rows);
}

export const serverCommands: readonly Command[] = [
  {
    group: 'servers',
    action: 'list',
    args: [],
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
    synopsis: 'NAME',
    summary: 'Show one MCP server',
    async run(ctx) {
      const name = ctx.args[0] ?? '';
      const server = await ctx.client.mcpServer(name);
      if (server === null) {
        ctx.err(`no MCP server named ${quoted(name)}\n`);
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
    options: FILE,
    required: ['file'],
    synopsis: '--file FILE',
    summary: 'Create an MCP server from a CreateMcpServerInput in JSON or YAML (FILE "-" reads stdin)',
    async run(ctx) {
      // Field types and values are checked by the server: GraphQL coerces the variable against the input
      // type (a wrong type is a GatehouseError GRAPHQL) and the repository returns user errors.
      const input = (await readObjectFile(ctx.string('file') ?? '', ctx.io, 'a CreateMcpServerInput')) as unknown as CreateMcpServerInput;
      const payload = await ctx.client.createMcpServer(input);
      return finish(ctx, payload, () => {
        if (payload.mcpServer) ctx.out(`created MCP server ${clean(payload.mcpServer.name)} (id ${payload.mcpServer.id})\n${serverDetails(payload.mcpServer)}`);
      });
    },
  },
  {
    group: 'servers',
    action: 'update',
    args: ['NAME'],
    options: FILE,
    required: ['file'],
    synopsis: 'NAME --file FILE',
    summary: 'Change an MCP server: FILE holds the fields to change (UpdateMcpServerInput without name; newName renames)',
    async run(ctx) {
      const patch = await readObjectFile(ctx.string('file') ?? '', ctx.io, 'the UpdateMcpServerInput fields to change');
      const input = { ...patch, name: ctx.args[0] ?? '' } as unknown as UpdateMcpServerInput;
      const payload = await ctx.client.updateMcpServer(input);
      return finish(ctx, payload, () => {
        if (payload.mcpServer) ctx.out(`updated MCP server ${clean(payload.mcpServer.name)} (id ${payload.mcpServer.id})\n${serverDetails(payload.mcpServer)}`);
      });
    },
  },
  {
    group: 'servers',
    action: 'delete',
    args: ['NAME'],
    synopsis: 'NAME',
    summary: 'Delete an MCP server and its grants in every virtual key',
    async run(ctx) {
      const payload = await ctx.client.deleteMcpServer({ name: ctx.args[0] ?? '' });
      return finish(ctx, payload, () => {
        if (payload.mcpServer) ctx.out(`deleted MCP server ${clean(payload.mcpServer.name)} (id ${payload.mcpServer.id})\n`);
      });
    },
  },
];
