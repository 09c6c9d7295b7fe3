/**
 * TypeScript shapes of the control plane's GraphQL API (control-plane/schema.graphql), as this SDK selects
 * them: enums, inputs (field for field as in the schema), entities and mutation payloads. Types only, plus
 * the enum value lists; no I/O. Entity types hold exactly the fields the documents in documents.ts select
 * (every scalar field of each type; a few relations are left out, noted where they are).
 */

/** The schema's `DateTime` scalar: an ISO-8601 instant, e.g. `2030-01-31T00:00:00.000Z`. */
export type DateTime = string;
/** The schema's `ID` scalar (always sent and received as a string). */
export type ID = string;

// Enum values are listed as arrays too, so callers (the CLI, tests) can check a value at run time; a test
// compares them with the enums in schema.graphql.
export const ADMIN_ROLES = ['ADMIN', 'VIEWER'] as const;
export type AdminRole = (typeof ADMIN_ROLES)[number];

export const AUTH_TYPES = ['HEADERS', 'NONE', 'OAUTH', 'PER_USER_HEADERS', 'PER_USER_OAUTH'] as const;
export type AuthType = (typeof AUTH_TYPES)[number];

export const CONNECTION_TYPES = ['HTTP', 'SSE', 'STDIO'] as const;
export type ConnectionType = (typeof CONNECTION_TYPES)[number];

export const MCP_SERVER_STATUSES = ['ACTIVE', 'ERROR', 'NEEDS_AUTH', 'NEEDS_REAUTH'] as const;
export type McpServerStatus = (typeof MCP_SERVER_STATUSES)[number];

export const SECRET_SOURCES = ['ENV', 'STORED'] as const;
export type SecretSource = (typeof SECRET_SOURCES)[number];

// ---- Pagination (Relay connections) ----

export interface PageInfo {
  endCursor: string | null;
  hasNextPage: boolean;
  hasPreviousPage: boolean;
  startCursor: string | null;
}

export interface Edge<T> {
  cursor: string;
  node: T;
}

export interface Connection<T> {
  edges: Edge<T>[];
  pageInfo: PageInfo;
}

/** Arguments of every connection field. The server defaults to 20 items a page and caps a page at 100. */
export interface PageArgs {
  first?: number | null;
  after?: string | null;
  last?: number | null;
  before?: string | null;
}

// ---- User errors ----

/**
 * Codes the control plane uses today in `UserError.code`. The schema types the field as a plain String
 * (new codes may appear), so `UserErrorCode` stays open while still offering these for completion.
 */
export type KnownUserErrorCode =
  | 'REQUIRED'
  | 'INVALID_VALUE'
  | 'INVALID_NAME'
  | 'NAME_TAKEN'
  | 'INVALID_URL'
  | 'INVALID_EMAIL'
  | 'EMAIL_TAKEN'
  | 'INVALID_DATETIME'
  | 'EXPIRES_IN_PAST'
  | 'DUPLICATE'
  | 'NOT_FOUND'
  | 'UNKNOWN_SERVER'
  | 'KEY_REVOKED'
  | 'LAST_ADMIN_TOKEN'
  | 'INVALID_CURSOR';
// `string & {}` keeps the literal members visible to editors instead of collapsing the union to `string`.
export type UserErrorCode = KnownUserErrorCode | (string & {});

/** A problem with a mutation's input; the mutation changed nothing. */
export interface UserError {
  /** Stable UPPER_SNAKE code, e.g. NAME_TAKEN, INVALID_URL, NOT_FOUND. */
  code: UserErrorCode;
  /** Path in the arguments, e.g. `input.headers.0.name`; null when no one field is at fault. */
  field: string | null;
  message: string;
}

// ---- Entities ----

/** A write-only value (header, stdio env var): `value` is a redacted preview or the `env.NAME` reference. */
export interface SecretEntry {
  name: string;
  source: SecretSource;
  value: string;
}

export interface StdioConfig {
  args: string[];
  command: string;
  env: SecretEntry[];
}

export interface McpTool {
  description: string | null;
  name: string;
}

export interface McpServer {
  /** Lower-cased caller headers forwarded to this server. */
  allowedExtraHeaders: string[];
  authType: AuthType;
  /** URL or env.NAME; null for STDIO. */
  connectionString: string | null;
  connectionType: ConnectionType;
  createdAt: DateTime;
  disabled: boolean;
  headers: SecretEntry[];
  id: ID;
  name: string;
  perUserHeaderKeys: string[];
  status: McpServerStatus;
  stdio: StdioConfig | null;
  toolTimeoutMs: number;
  /** The synced tool catalog; null until the first sync. */
  tools: McpTool[] | null;
  /** `["*"]` = every tool, `[]` = none (deny by default). */
  toolsToExecute: string[];
  updatedAt: DateTime;
}

/** A person who owns virtual keys. (`User.virtualKeys` is not selected: use `virtualKeys({ userId })`.) */
export interface User {
  createdAt: DateTime;
  email: string;
  id: ID;
  name: string | null;
  updatedAt: DateTime;
}

/** The owner of a virtual key, as selected on `VirtualKey.user`. */
export type VirtualKeyOwner = Pick<User, 'id' | 'email' | 'name'>;

/** Access to one server. (`KeyServerGrant.mcpServer` is not selected: use `mcpServer(server)`.) */
export interface KeyServerGrant {
  /** Server name. */
  server: string;
  /** Tool names, or `["*"]` for every tool the server allows. */
  tools: string[];
}

/** A scoped credential for data-plane nodes. Its value is never readable; see `keyPreview`. */
export interface VirtualKey {
  createdAt: DateTime;
  expired: boolean;
  expiresAt: DateTime | null;
  id: ID;
  keyPreview: string;
  lastUsedAt: DateTime | null;
  name: string;
  revoked: boolean;
  revokedAt: DateTime | null;
  servers: KeyServerGrant[];
  updatedAt: DateTime;
  user: VirtualKeyOwner;
  userId: ID;
}

export interface MissingEnv {
  name: string;
  servers: string[];
}

export interface SnapshotRejection {
  at: DateTime;
  code: string;
  message: string;
}

export interface DataPlaneNode {
  appliedVersion: number | null;
  /** Whether the node has a snapshot stream open now. */
  connected: boolean;
  /** OK, DEGRADED, or UNKNOWN before the first report (a String in the schema). */
  health: string;
  id: ID;
  lastRejection: SnapshotRejection | null;
  lastSeenAt: DateTime;
  missingEnv: MissingEnv[];
  startedAt: DateTime | null;
}

/** A bearer token for the API. ADMIN may change everything; VIEWER may only query. */
export interface AdminToken {
  createdAt: DateTime;
  id: ID;
  lastUsedAt: DateTime | null;
  name: string;
  revoked: boolean;
  revokedAt: DateTime | null;
  role: AdminRole;
  tokenPreview: string;
}

/** The admin token making the request. */
export interface Viewer {
  name: string;
  role: AdminRole;
  tokenId: ID;
}

// ---- Inputs (nullable input fields may be left out or sent as null, as GraphQL allows) ----

/** A header or env var. `value` may be `env.NAME`; on update, leave it out to keep the stored value. */
export interface SecretInput {
  name: string;
  value?: string | null;
}

export interface StdioInput {
  args?: string[] | null;
  command: string;
  /** Values are secret (write-only). */
  env?: SecretInput[] | null;
}

export interface CreateMcpServerInput {
  allowedExtraHeaders?: string[] | null;
  /** Default NONE. */
  authType?: AuthType | null;
  /** URL (http/https) or env.NAME; required for HTTP and SSE, not allowed for STDIO. */
  connectionString?: string | null;
  connectionType: ConnectionType;
  disabled?: boolean | null;
  /** Values are secret (write-only). */
  headers?: SecretInput[] | null;
  /** Unique; letters, digits and underscores (no hyphen). */
  name: string;
  perUserHeaderKeys?: string[] | null;
  /** Required for STDIO. */
  stdio?: StdioInput | null;
  /** 1 to 600000; default 30000. */
  toolTimeoutMs?: number | null;
  /** `["*"]` = every tool, `[]` = none (the default: deny by default). */
  toolsToExecute?: string[] | null;
}

/** Fields left out (or null) stay as they are; a list given replaces the stored list. */
export interface UpdateMcpServerInput {
  allowedExtraHeaders?: string[] | null;
  authType?: AuthType | null;
  connectionString?: string | null;
  connectionType?: ConnectionType | null;
  disabled?: boolean | null;
  /** Replaces the header set; an entry without value keeps its stored value. */
  headers?: SecretInput[] | null;
  /** The server to update. */
  name: string;
  /** Renames the server (and every virtual key grant naming it). */
  newName?: string | null;
  perUserHeaderKeys?: string[] | null;
  stdio?: StdioInput | null;
  toolTimeoutMs?: number | null;
  toolsToExecute?: string[] | null;
}

export interface DeleteMcpServerInput {
  name: string;
}

export interface CreateUserInput {
  /** Unique; stored lower-cased. */
  email: string;
  name?: string | null;
}

export interface UpdateUserInput {
  email?: string | null;
  id: ID;
  /** An empty string clears the name. */
  name?: string | null;
}

export interface DeleteUserInput {
  id: ID;
}

export interface KeyServerGrantInput {
  /** An existing server name. */
  server: string;
  /** Tool names, or `["*"]`; must not be empty. */
  tools: string[];
}

export interface CreateVirtualKeyInput {
  /** In the future; leave out for a key that does not expire. */
  expiresAt?: DateTime | null;
  name: string;
  servers: KeyServerGrantInput[];
  userId: ID;
}

/** Fields left out stay as they are. `expiresAt: null` removes the expiry. */
export interface UpdateVirtualKeyInput {
  expiresAt?: DateTime | null;
  id: ID;
  name?: string | null;
  servers?: KeyServerGrantInput[] | null;
}

export interface RevokeVirtualKeyInput {
  id: ID;
}

export interface RotateVirtualKeyInput {
  id: ID;
}

export interface DeleteVirtualKeyInput {
  id: ID;
}

export interface CreateAdminTokenInput {
  name: string;
  role: AdminRole;
}

export interface RevokeAdminTokenInput {
  id: ID;
}

// ---- Mutation payloads: the entity (null when the mutation failed) plus the user errors ----

export interface CreateMcpServerPayload {
  errors: UserError[];
  mcpServer: McpServer | null;
}

export interface UpdateMcpServerPayload {
  errors: UserError[];
  mcpServer: McpServer | null;
}

/** `mcpServer` is the server as it was before deletion. */
export interface DeleteMcpServerPayload {
  errors: UserError[];
  mcpServer: McpServer | null;
}

export interface CreateUserPayload {
  errors: UserError[];
  user: User | null;
}

export interface UpdateUserPayload {
  errors: UserError[];
  user: User | null;
}

/** `user` is the user as they were before deletion (their keys are deleted too). */
export interface DeleteUserPayload {
  errors: UserError[];
  user: User | null;
}

export interface CreateVirtualKeyPayload {
  errors: UserError[];
  /** The key value (gk_…). Shown this once: only its hash is stored. */
  key: string | null;
  virtualKey: VirtualKey | null;
}

export interface RotateVirtualKeyPayload {
  errors: UserError[];
  /** The new key value (gk_…). Shown this once; the old value stops working. */
  key: string | null;
  virtualKey: VirtualKey | null;
}

export interface RevokeVirtualKeyPayload {
  errors: UserError[];
  virtualKey: VirtualKey | null;
}

export interface UpdateVirtualKeyPayload {
  errors: UserError[];
  virtualKey: VirtualKey | null;
}

export interface DeleteVirtualKeyPayload {
  errors: UserError[];
  virtualKey: VirtualKey | null;
}

export interface CreateAdminTokenPayload {
  adminToken: AdminToken | null;
  errors: UserError[];
  /** The token value (gha_…). Shown this once. */
  token: string | null;
}

export interface RevokeAdminTokenPayload {
  adminToken: AdminToken | null;
  errors: UserError[];
}
