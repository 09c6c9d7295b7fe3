/**
 * McpServer in GraphQL: the type (secrets shown only as a redacted preview or their `env.NAME`
 * reference), the `mcpServers`/`mcpServer` queries and the create/update/delete mutations. Validation and
 * storage are in repos/mcp-servers.ts.
 */
import { displaySecret, type StoredSecret } from '../../crypto/secret-box.js';
import {
  createMcpServer,
  deleteMcpServer,
  getMcpServerByName,
  listMcpServers,
  mcpServerCursor,
  updateMcpServer,
  type McpServer,
  type McpServerStatus,
  type SyncedTool,
} from '../../repos/mcp-servers.js';
import { builder } from '../builder.js';
import { resolvePage } from '../connections.js';
import { runMutation } from '../mutation.js';
import { serverToolWarnings } from '../../repos/tool-warnings.js';
import { entityPayload, toUserWarnings } from './common.js';
import type { GraphQLContext } from '../context.js';
import type { ServerHealth } from '../../repos/server-health.js';
import type { UpstreamStatus } from '../../../data-plane/snapshot/stream-protocol.js';

export const ConnectionTypeEnum = builder.enumType('ConnectionType', { values: ['HTTP', 'SSE', 'STDIO'] as const });
export const AuthTypeEnum = builder.enumType('AuthType', {
  values: ['NONE', 'HEADERS', 'OAUTH', 'PER_USER_OAUTH', 'PER_USER_HEADERS'] as const,
});
const STATUSES = ['ACTIVE', 'NEEDS_AUTH', 'NEEDS_REAUTH', 'ERROR'] as const satisfies readonly McpServerStatus[];
/**
 * `McpServer.status`: the server's own credential status (stored; NEEDS_AUTH and NEEDS_REAUTH come from
 * OAuth) and, while that is ACTIVE, the upstream health nodes last observed (issue 5 item 4). ACTIVE keeps
 * meaning "usable": reachable, or not observed yet, so clients written before health existed read it as before.
 */
type ServerStatusView = McpServerStatus | 'CREDENTIALS_REFUSED' | 'UNREACHABLE' | 'TIMEOUT';
export const McpServerStatusEnum = builder.enumType('McpServerStatus', {
  values: {
    ACTIVE: { description: 'Usable: nodes reach the upstream with its credential, or have not observed it yet (see statusObservedAt).' },
    NEEDS_AUTH: { description: 'An OAuth server without a shared grant yet: an admin must authorize it (startServerOAuth).' },
    NEEDS_REAUTH: { description: 'The authorization server refused the shared grant: an admin must authorize again.' },
    ERROR: { description: 'A stored status this version does not know.' },
    CREDENTIALS_REFUSED: { description: "The upstream answered HTTP 401/403 to the server's shared credential: it is up, the credential must be updated." },
    UNREACHABLE: { description: 'Nodes could not connect to the upstream, or it did not answer as an MCP server.' },
    TIMEOUT: { description: 'The upstream did not answer in time.' },
  } satisfies Record<ServerStatusView, { description: string }>,
});
const UpstreamStatusEnum = builder.enumType('UpstreamStatus', {
  description: 'How nodes last found the upstream, whatever the credential status (UNKNOWN: no node has observed it yet).',
  values: ['REACHABLE', 'CREDENTIALS_REFUSED', 'UNREACHABLE', 'TIMEOUT', 'UNKNOWN'] as const,
});
const HEALTH_STATUS: Readonly<Record<UpstreamStatus, ServerStatusView>> = {
  reachable: 'ACTIVE',
  credentials_refused: 'CREDENTIALS_REFUSED',
  unreachable: 'UNREACHABLE',
  timeout: 'TIMEOUT',
};

interface StatusView {
  status: ServerStatusView;
  /** Why, when the status is an upstream failure (scrubbed on the node). */
  reason: string | null;
  health: ServerHealth | null;
}

/** One place decides `status` and `statusReason`, so the two always agree. */
async function statusOf(server: McpServer, ctx: GraphQLContext): Promise<StatusView> {
  // The column is free text written by several subsystems; an unknown value must not break reads.
  const own: McpServerStatus = (STATUSES as readonly string[]).includes(server.status) ? (server.status as McpServerStatus) : 'ERROR';
  const health = await ctx.loaders.healthByServerId.load(server.id);
  // What an admin must do about the credential comes first; a disabled server is called by nobody, so
  // the last observation before it was disabled says nothing about it now.
  if (own !== 'ACTIVE' || server.disabled || health === null || health.status === 'reachable') return { status: own, reason: null, health };
  return { status: HEALTH_STATUS[health.status], reason: health.reason, health };
}
const SecretSourceEnum = builder.enumType('SecretSource', {
  description: 'Where a secret value comes from: sealed in the control plane, or the environment of each node.',
  values: ['STORED', 'ENV'] as const,
});

interface SecretEntry {
  name: string;
  secret: StoredSecret;
}

function secretEntries(map: Record<string, StoredSecret>): SecretEntry[] {
  return Object.entries(map).map(([name, secret]) => ({ name, secret }));
}

const SecretEntryRef = builder.objectRef<SecretEntry>('SecretEntry').implement({
  description: 'A write-only value (header, stdio env var). Reads never return the value itself.',
  fields: (t) => ({
    name: t.exposeString('name'),
    value: t.string({
      description: 'A redacted preview (`sk-a…x9f2`, or `••••` for short values) or the `env.NAME` reference.',
      resolve: (e) => displaySecret(e.secret),
    }),
    source: t.field({ type: SecretSourceEnum, resolve: (e) => (e.secret.kind === 'env' ? 'ENV' : 'STORED') }),
  }),
});

const StdioConfigRef = builder.objectRef<NonNullable<McpServer['stdio']>>('StdioConfig').implement({
  fields: (t) => ({
    command: t.exposeString('command'),
    args: t.exposeStringList('args'),
    env: t.field({ type: [SecretEntryRef], resolve: (s) => secretEntries(s.env) }),
  }),
});

const McpToolRef = builder.objectRef<SyncedTool>('McpTool').implement({
  fields: (t) => ({
    name: t.exposeString('name'),
    description: t.exposeString('description', { nullable: true }),
  }),
});

export const McpServerRef = builder.objectRef<McpServer>('McpServer').implement({
  description: 'An upstream MCP server, reachable through data-plane nodes as `{name}-{tool}` tools.',
  fields: (t) => ({
    id: t.exposeID('id'),
    name: t.exposeString('name'),
    connectionType: t.field({ type: ConnectionTypeEnum, resolve: (s) => s.connectionType }),
    connectionString: t.exposeString('connectionString', {
      nullable: true,
      description: 'URL or env.NAME; null for STDIO. Parts of a URL that carry a credential (an api_key query parameter, a token in the path) show as ***: the whole URL is stored sealed; give this value back unchanged to keep it.',
    }),
    stdio: t.field({ type: StdioConfigRef, nullable: true, resolve: (s) => s.stdio }),
    authType: t.field({ type: AuthTypeEnum, resolve: (s) => s.authType }),
    headers: t.field({ type: [SecretEntryRef], resolve: (s) => secretEntries(s.headers) }),
    perUserHeaderKeys: t.exposeStringList('perUserHeaderKeys'),
    toolsToExecute: t.exposeStringList('toolsToExecute', { description: '["*"] = every tool, [] = none (deny by default)' }),
    allowedExtraHeaders: t.exposeStringList('allowedExtraHeaders', { description: 'Lower-cased caller headers forwarded to this server' }),
    toolTimeoutMs: t.exposeInt('toolTimeoutMs'),
    disabled: t.exposeBoolean('disabled'),
    status: t.field({
      type: McpServerStatusEnum,
      description: 'The credential status, and while that is ACTIVE the upstream health nodes last reported (the latest observation of any node wins).',
      resolve: async (s, _args, ctx) => (await statusOf(s, ctx)).status,
    }),
    statusReason: t.string({
      nullable: true,
      description: 'Why the status is CREDENTIALS_REFUSED, UNREACHABLE or TIMEOUT, as the node put it (short, no secrets); null otherwise.',
      resolve: async (s, _args, ctx) => (await statusOf(s, ctx)).reason,
    }),
    upstreamStatus: t.field({
      type: UpstreamStatusEnum,
      description: 'How nodes last found the upstream, whatever the credential status.',
      resolve: async (s, _args, ctx) => {
        const health = (await statusOf(s, ctx)).health;
        return health === null ? 'UNKNOWN' : (health.status.toUpperCase() as Uppercase<UpstreamStatus>);
      },
    }),
    statusObservedAt: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'When a node last observed the upstream health (null: never). May lag by up to 30 s while nothing changes.',
      resolve: async (s, _args, ctx) => (await statusOf(s, ctx)).health?.observedAt ?? null,
    }),
    statusObservedBy: t.string({
      nullable: true,
      description: 'The node whose observation statusObservedAt is.',
      resolve: async (s, _args, ctx) => (await statusOf(s, ctx)).health?.nodeId ?? null,
    }),
    tools: t.field({
      type: [McpToolRef],
      nullable: true,
      description:
        "The tool catalog the upstream lists to the server's shared credential, as nodes report it; null until the first sync. Always null for PER_USER_OAUTH and PER_USER_HEADERS servers: each user's catalog is listed through their own credential and is theirs alone.",
      resolve: (s) => s.tools,
    }),
    createdAt: t.field({ type: 'DateTime', resolve: (s) => s.createdAt }),
    updatedAt: t.field({ type: 'DateTime', resolve: (s) => s.updatedAt }),
  }),
});

export const McpServerConnection = builder.connectionObject({ type: McpServerRef, name: 'McpServerConnection' }, { name: 'McpServerEdge' });

builder.queryFields((t) => ({
  mcpServers: t.connection(
    {
      type: McpServerRef,
      resolve: (_root, args, ctx) => resolvePage(args, (page) => listMcpServers(ctx.db, page), mcpServerCursor),
    },
    McpServerConnection,
  ),
  mcpServer: t.field({
    type: McpServerRef,
    nullable: true,
    args: { name: t.arg.string({ required: true }) },
    resolve: (_root, args, ctx) => getMcpServerByName(ctx.db, args.name),
  }),
}));

// ---- Inputs ----

const SecretInput = builder.inputType('SecretInput', {
  description: 'A header or env var. `value` may be `env.NAME`; on update, leave it out to keep the stored value.',
  fields: (t) => ({
    name: t.string({ required: true }),
    value: t.string(),
  }),
});

const StdioInput = builder.inputType('StdioInput', {
  fields: (t) => ({
    command: t.string({ required: true }),
    args: t.stringList(),
    env: t.field({ type: [SecretInput], description: 'Values are secret (write-only)' }),
  }),
});

const serverInputFields = {
  connectionString: 'URL (http/https) or env.NAME; required for HTTP and SSE, not allowed for STDIO',
  toolsToExecute: '["*"] = every tool, [] = none (the default: deny by default)',
  toolTimeoutMs: `1 to 600000; default 30000`,
} as const;

const CreateMcpServerInput = builder.inputType('CreateMcpServerInput', {
  fields: (t) => ({
    name: t.string({ required: true, description: 'Unique; letters, digits and underscores (no hyphen)' }),
    connectionType: t.field({ type: ConnectionTypeEnum, required: true }),
    connectionString: t.string({ description: serverInputFields.connectionString }),
    stdio: t.field({ type: StdioInput, description: 'Required for STDIO' }),
    authType: t.field({ type: AuthTypeEnum, description: 'Default NONE' }),
    headers: t.field({ type: [SecretInput], description: 'Values are secret (write-only)' }),
    perUserHeaderKeys: t.stringList(),
    toolsToExecute: t.stringList({ description: serverInputFields.toolsToExecute }),
    allowedExtraHeaders: t.stringList(),
    toolTimeoutMs: t.int({ description: serverInputFields.toolTimeoutMs }),
    disabled: t.boolean(),
  }),
});

const UpdateMcpServerInput = builder.inputType('UpdateMcpServerInput', {
  description: 'Fields left out (or null) stay as they are; a list given replaces the stored list.',
  fields: (t) => ({
    name: t.string({ required: true, description: 'The server to update' }),
    newName: t.string({ description: 'Renames the server (and every virtual key grant naming it)' }),
    connectionType: t.field({ type: ConnectionTypeEnum }),
    connectionString: t.string({ description: serverInputFields.connectionString }),
    stdio: t.field({ type: StdioInput }),
    authType: t.field({ type: AuthTypeEnum }),
    headers: t.field({ type: [SecretInput], description: 'Replaces the header set; an entry without value keeps its stored value' }),
    perUserHeaderKeys: t.stringList(),
    toolsToExecute: t.stringList({ description: serverInputFields.toolsToExecute }),
    allowedExtraHeaders: t.stringList(),
    toolTimeoutMs: t.int({ description: serverInputFields.toolTimeoutMs }),
    disabled: t.boolean(),
  }),
});

const DeleteMcpServerInput = builder.inputType('DeleteMcpServerInput', {
  fields: (t) => ({ name: t.string({ required: true }) }),
});

const CreateMcpServerPayload = entityPayload('CreateMcpServerPayload', 'mcpServer', McpServerRef);
const UpdateMcpServerPayload = entityPayload('UpdateMcpServerPayload', 'mcpServer', McpServerRef);
const DeleteMcpServerPayload = entityPayload('DeleteMcpServerPayload', 'mcpServer', McpServerRef);

builder.mutationFields((t) => ({
  createMcpServer: t.field({
    type: CreateMcpServerPayload,
    args: { input: t.arg({ type: CreateMcpServerInput, required: true }) },
    resolve: (_root, { input }, ctx) => runMutation(ctx, async (trx) => ({ value: await createMcpServer(trx, ctx.box, input) })),
  }),
  updateMcpServer: t.field({
    type: UpdateMcpServerPayload,
    args: { input: t.arg({ type: UpdateMcpServerInput, required: true }) },
    resolve: (_root, { input }, ctx) =>
      runMutation(ctx, async (trx) => {
        const server = await updateMcpServer(trx, ctx.box, input);
        // A new server has no catalog yet; an update that sets toolsToExecute is checked against the known one.
        const warnings = input.toolsToExecute == null ? [] : toUserWarnings(serverToolWarnings(server));
        return { value: server, warnings };
      }),
  }),
  deleteMcpServer: t.field({
    type: DeleteMcpServerPayload,
    description: 'Deletes the server and removes it from every virtual key that granted it. Returns the server as it was.',
    args: { input: t.arg({ type: DeleteMcpServerInput, required: true }) },
    resolve: (_root, { input }, ctx) => runMutation(ctx, async (trx) => ({ value: await deleteMcpServer(trx, input.name) })),
  }),
}));
