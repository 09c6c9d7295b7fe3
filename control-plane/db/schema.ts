/**
 * Table types for kysely: one interface per table, shared by every repository.
 *
 * Portable on purpose: timestamps are ISO-8601 text, booleans are 0/1 integers and lists/maps are JSON
 * text, so the same queries run on SQLite and PostgreSQL. Secret columns hold `secret-box` ciphertext
 * (`enc:v1:…`) or an `env.NAME` reference, never a plaintext value. Migrations do not import this file.
 */
import type { ColumnType, Generated, Insertable, Selectable, Updateable } from 'kysely';

/** JSON text in the database; repositories parse and serialise it. */
export type JsonText = string;
/** ISO-8601 instant as text. */
export type IsoTime = string;

export interface ConfigStateTable {
  id: number;
  /** Bumped in the same transaction as every change that alters what nodes serve. */
  version: number;
  /** Moves when a node is revoked: the publisher then seals under a new data key (0005_node_identity). */
  seal_epoch: Generated<number>;
  /** Tombstones at or below this version were pruned: changes are computable only from here on (0018_tombstone_floor). */
  tombstone_floor: Generated<number>;
}

/**
 * The config version at which each row of a snapshot table last changed, kept by triggers
 * (0004_change_tracking): read-only for repositories, which never set it.
 */
export type ChangeVersion = Generated<number>;

/** Rows deleted from snapshot tables, with the config version of the delete (0004_change_tracking). */
export interface ChangeTombstonesTable {
  table_name: string;
  row_id: string;
  change_version: number;
}

export interface UsersTable {
  id: string;
  email: string;
  name: string | null;
  /** JSON KeyBudget[]: budgets over every key the user owns (0012_governance). */
  budgets: ColumnType<JsonText, JsonText | undefined, JsonText>;
  created_at: IsoTime;
  updated_at: IsoTime;
  change_version: ChangeVersion;
}

export interface McpServersTable {
  id: string;
  name: string;
  connection_type: 'HTTP' | 'SSE' | 'STDIO';
  /** URL or `env.NAME`; null for STDIO. A credential-bearing URL is stored redacted (`***`, 0020). */
  connection_string: string | null;
  /** 0020: the whole credential-bearing URL, secret-box sealed (AAD serverConnectionAad); else null. */
  connection_secret: string | null;
  stdio_command: string | null;
  /** JSON string[] */
  stdio_args: JsonText;
  /** JSON Record<string, StoredSecret> */
  stdio_env: JsonText;
  auth_type: 'NONE' | 'HEADERS' | 'OAUTH' | 'PER_USER_OAUTH' | 'PER_USER_HEADERS';
  /** JSON Record<string, StoredSecret> */
  headers: JsonText;
  /** JSON string[] */
  per_user_header_keys: JsonText;
  /** JSON string[]; ["*"] = all, [] = none */
  tools_to_execute: JsonText;
  /** JSON string[], lower-cased */
  allowed_extra_headers: JsonText;
  tool_timeout_ms: number;
  disabled: number;
  status: string;
  /** JSON array of synced tool descriptors ({name, description}) or null before the first sync. */
  tools: JsonText | null;
  /** JSON Record<tool, USD per call> (0012_governance_tool_pricing): charged to the caller's budgets. */
  tool_pricing: ColumnType<JsonText, JsonText | undefined, JsonText>;
  created_at: IsoTime;
  updated_at: IsoTime;
  change_version: ChangeVersion;
}

export interface VirtualKeysTable {
  id: string;
  name: string;
  user_id: string;
  /** base64url(SHA-256(key)) */
  key_hash: string;
  /** e.g. `gk_Ab…x9f2`: enough to recognise, not to use */
  key_preview: string;
  /** JSON KeyServerGrant[] */
  servers: JsonText;
  expires_at: IsoTime | null;
  revoked_at: IsoTime | null;
  last_used_at: IsoTime | null;
  created_at: IsoTime;
  updated_at: IsoTime;
  change_version: ChangeVersion;
  /** JSON KeyBudget[] (0012_governance). */
  budgets: ColumnType<JsonText, JsonText | undefined, JsonText>;
  /** JSON KeyRateLimit or null. */
  rate_limit: JsonText | null;
  /** What nodes do while the shared counters are unreachable: FAIL_CLOSED or LOCAL_ALLOWANCE. */
  limits_fallback: ColumnType<LimitsFallback, LimitsFallback | undefined, LimitsFallback>;
  /** The profile the key was allocated from: its edits are copied to the key (repos/access-profiles.ts). */
  access_profile_id: ColumnType<string | null, string | null | undefined, string | null>;
}

export type LimitsFallback = 'FAIL_CLOSED' | 'LOCAL_ALLOWANCE';

export interface AccessProfilesTable {
  id: string;
  name: string;
  description: string | null;
  /** JSON KeyServerGrant[] */
  servers: JsonText;
  /** JSON KeyBudget[] */
  budgets: JsonText;
  /** JSON KeyRateLimit or null */
  rate_limit: JsonText | null;
  limits_fallback: LimitsFallback;
  /** Lifetime of keys allocated from the profile; null = they do not expire. */
  key_lifetime_days: number | null;
  created_at: IsoTime;
  updated_at: IsoTime;
}

export interface ProvidersTable {
  id: string;
  /** Unique; the route segment nodes serve it under (`anthropic`). */
  name: string;
  kind: 'ANTHROPIC';
  /** URL or `env.NAME`. A credential-bearing URL is stored redacted (`***`, 0021, repos/url-secrets.ts). */
  base_url: string;
  /** 0021: the whole credential-bearing base URL, secret-box sealed (AAD providerBaseUrlAad); else null. */
  base_url_secret: string | null;
  /** JSON StoredSecret */
  api_key: JsonText;
  /** JSON ModelPrice[] */
  prices: JsonText;
  created_at: IsoTime;
  updated_at: IsoTime;
  change_version: ChangeVersion;
}

/** One priced request reported by a node; the primary key makes reports idempotent. */
export interface SpendEventsTable {
  request_id: string;
  key_id: string;
  user_id: string;
  node_id: string;
  kind: 'llm' | 'tool';
  model: string | null;
  input_tokens: number;
  output_tokens: number;
  cache_creation_tokens: number;
  cache_read_tokens: number;
  /** Cost in nano-USD (1e-9 USD): integer sums are exact. */
  cost_nanos: number;
  /** When the request finished (node clock). */
  at: IsoTime;
  recorded_at: IsoTime;
}

export interface AdminTokensTable {
  id: string;
  name: string;
  role: 'ADMIN' | 'VIEWER';
  token_hash: string;
  token_preview: string;
  created_at: IsoTime;
  revoked_at: IsoTime | null;
  last_used_at: IsoTime | null;
}

export interface NodesTable {
  id: string;
  applied_version: number | null;
  /** JSON NodeReport['missingEnv'] */
  missing_env: JsonText;
  /** JSON NodeReport['lastRejection'] */
  last_rejection: JsonText | null;
  health: string;
  connected: number;
  started_at: IsoTime | null;
  last_seen_at: IsoTime;
  /** SHARED_TOKEN (authenticated by the shared node token), PENDING, APPROVED or REVOKED (0005_node_identity). */
  enrollment: ColumnType<NodeEnrollment, NodeEnrollment | undefined, NodeEnrollment>;
  /** The node's Ed25519 public JWK (JSON): it signs the node's requests. */
  identity_jwk: JsonText | null;
  /** The node's X25519 public JWK (JSON): data keys are wrapped only for this key. */
  sealing_jwk: JsonText | null;
  enrolled_at: IsoTime | null;
  approved_at: IsoTime | null;
  revoked_at: IsoTime | null;
}

export type NodeEnrollment = 'SHARED_TOKEN' | 'PENDING' | 'APPROVED' | 'REVOKED';

/** The latest upstream health any node reported for a server (0016_upstream_health). */
export interface McpServerHealthTable {
  server_id: string;
  /** A NodeReport upstream status: reachable, credentials_refused, unreachable, timeout. */
  status: string;
  /** Scrubbed on the node; null when reachable. */
  reason: string | null;
  observed_at: IsoTime;
  node_id: string;
}

export interface NodeEnrollmentTokensTable {
  id: string;
  /** base64url(SHA-256(token)); the `ghe_` value is shown once. */
  token_hash: string;
  /** When set, only a node with this id may use the token. */
  node_id: string | null;
  created_at: IsoTime;
  expires_at: IsoTime;
  used_at: IsoTime | null;
  used_by: string | null;
}

/** Named rows a transaction updates first, to serialise a check-then-write across replicas (repos/locks.ts). */
export interface AppLocksTable {
  name: string;
  taken_at: IsoTime | null;
}

/** Session secrets (issue 9): at most a `current` and a `previous` row. */
export interface SessionSecretsTable {
  role: 'current' | 'previous';
  /** Short URL-safe id; every sealed session id names it. */
  id: string;
  /** secret-box ciphertext of base64url(32 random bytes); AAD `session_secrets:<id>`. */
  secret: string;
  created_at: IsoTime;
}

/** An admin's OAuth settings for a server (0011_oauth); anything left null is discovered. */
export interface ServerOAuthSettingsTable {
  server_id: string;
  client_id: string | null;
  /** secret-box ciphertext; AAD `server_oauth_settings:<server id>:client_secret`. */
  client_secret: string | null;
  /** The URL columns show a credential-bearing URL redacted (`***`, 0021, repos/url-secrets.ts)... */
  authorize_url: string | null;
  token_url: string | null;
  registration_url: string | null;
  /** JSON string[] */
  scopes: JsonText;
  resource: string | null;
  /** ...and the `*_secret` column beside each holds it whole, secret-box sealed (AAD settingsUrlAad); else null. */
  authorize_url_secret: string | null;
  token_url_secret: string | null;
  registration_url_secret: string | null;
  resource_secret: string | null;
  updated_at: IsoTime;
}

/** The OAuth client Gatehouse is at one authorization server, per server (credentials keyed by issuer). */
export interface OAuthClientsTable {
  id: string;
  server_id: string;
  issuer: string;
  client_id: string;
  /** secret-box ciphertext, or null for a public client. */
  client_secret: string | null;
  registration: 'PRE_REGISTERED' | 'METADATA_DOCUMENT' | 'DYNAMIC';
  token_endpoint_auth_method: string;
  redirect_uri: string;
  created_at: IsoTime;
}

export type OAuthCredentialStatus = 'CONNECTED' | 'NEEDS_REAUTH';

/** Tokens (sealed) for a server's shared credential (user_id null) or one user's (0011_oauth). */
export interface OAuthCredentialsTable {
  id: string;
  server_id: string;
  user_id: string | null;
  /** user_id, or '' for the shared credential. */
  owner_key: string;
  issuer: string;
  /** The RFC 8707 resource indicator, redacted when credential-bearing (`***`, 0022, repos/url-secrets.ts)... */
  resource: string;
  /** ...and then whole here, secret-box sealed (AAD credentialResourceAad); else null. */
  resource_secret: ColumnType<string | null, string | null | undefined, string | null>;
  access_token: string;
  refresh_token: string | null;
  token_type: string;
  expires_at: IsoTime | null;
  /** JSON string[] */
  scopes: JsonText;
  status: OAuthCredentialStatus;
  /** Moves on every change of the tokens: nodes drop cached copies of older generations. */
  generation: Generated<number>;
  /** Why the last refresh failed (never a token), for status pages. */
  last_error: string | null;
  created_at: IsoTime;
  updated_at: IsoTime;
}

/** A pending authorization request: found by the hash of its `state`, spent once. */
export interface OAuthFlowsTable {
  state_hash: string;
  server_id: string;
  user_id: string | null;
  issuer: string;
  client_row_id: string;
  /** secret-box ciphertext of the PKCE code verifier. */
  code_verifier: string;
  /** The RFC 8707 resource indicator, redacted when credential-bearing (`***`, 0022, repos/url-secrets.ts)... */
  resource: string;
  /** ...and then whole here, secret-box sealed (AAD flowResourceAad); else null. */
  resource_secret: ColumnType<string | null, string | null | undefined, string | null>;
  /** JSON string[] */
  scopes: JsonText;
  created_at: IsoTime;
  expires_at: IsoTime;
  used_at: IsoTime | null;
  /** Hash of the cookie of the browser that started a per-user flow (0011_oauth_flow_binding); null for admin flows. */
  browser_binding: ColumnType<string | null, string | null | undefined, string | null>;
  /** Hash of the admin flow's one-time start link token (0015_oauth_start_links); null for per-user flows. */
  start_link_hash: ColumnType<string | null, string | null | undefined, string | null>;
  /** secret-box ciphertext of the authorization URL the start link redirects to (it carries the state). */
  start_url: ColumnType<string | null, string | null | undefined, string | null>;
  /** When the start link was opened (each works once). */
  start_link_used_at: ColumnType<string | null, string | null | undefined, string | null>;
}

export type ConnectKind = 'oauth' | 'headers';

/** One-time links in `mcp_auth_required` answers, bound to a user and server (hash only). */
export interface ConnectLinksTable {
  token_hash: string;
  user_id: string;
  server_id: string;
  kind: ConnectKind;
  created_at: IsoTime;
  expires_at: IsoTime;
  used_at: IsoTime | null;
}

/** The browser session a spent link turns into (cookie value hashed), with its CSRF token. */
export interface ConnectSessionsTable {
  id_hash: string;
  user_id: string;
  server_id: string;
  kind: ConnectKind;
  csrf_token: string;
  created_at: IsoTime;
  expires_at: IsoTime;
}

export type HeaderSetStatus = 'ACTIVE' | 'NEEDS_UPDATE';

/** One user's header values for a PER_USER_HEADERS server (sealed JSON object). */
export interface UserHeaderSetsTable {
  server_id: string;
  user_id: string;
  /** secret-box ciphertext of a JSON Record<string, string>; AAD `user_header_sets:<server>:<user>`. */
  header_values: string;
  /** JSON string[]: the keys stored, to compare with the server's perUserHeaderKeys. */
  header_keys: JsonText;
  status: HeaderSetStatus;
  generation: Generated<number>;
  created_at: IsoTime;
  updated_at: IsoTime;
}

export interface Database {
  server_oauth_settings: ServerOAuthSettingsTable;
  oauth_clients: OAuthClientsTable;
  oauth_credentials: OAuthCredentialsTable;
  oauth_flows: OAuthFlowsTable;
  connect_links: ConnectLinksTable;
  connect_sessions: ConnectSessionsTable;
  user_header_sets: UserHeaderSetsTable;
  config_state: ConfigStateTable;
  users: UsersTable;
  mcp_servers: McpServersTable;
  mcp_server_health: McpServerHealthTable;
  virtual_keys: VirtualKeysTable;
  admin_tokens: AdminTokensTable;
  nodes: NodesTable;
  session_secrets: SessionSecretsTable;
  change_tombstones: ChangeTombstonesTable;
  node_enrollment_tokens: NodeEnrollmentTokensTable;
  app_locks: AppLocksTable;
  access_profiles: AccessProfilesTable;
  providers: ProvidersTable;
  spend_events: SpendEventsTable;
  audit_events: AuditEventsTable;
  audit_checkpoints: AuditCheckpointsTable;
  audit_settings: AuditSettingsTable;
  node_credential_uses: NodeCredentialUsesTable;
}

/** A per-node credential already used (0017): refused if presented again before `expires_at`. */
export interface NodeCredentialUsesTable {
  node_id: string;
  jti: string;
  expires_at: IsoTime;
}

/** One stored audit event (0013_audit): append-only, chained by `prev_hash`/`hash` within its partition. */
export interface AuditEventsTable {
  row_id: Generated<number>;
  id: string;
  partition: string;
  seq: number;
  time: IsoTime;
  received_at: IsoTime;
  node: string;
  key_id: string | null;
  user_id: string | null;
  server: string | null;
  tool: string | null;
  outcome: string;
  /** The whole event as canonical JSON: what the hash covers. */
  event: JsonText;
  prev_hash: string;
  hash: string;
}

/** A signed head of one partition's chain (0013_audit). */
export interface AuditCheckpointsTable {
  partition: string;
  seq: number;
  hash: string;
  created_at: IsoTime;
  kid: string;
  /** Flattened JWS (JSON) over {partition, seq, hash, createdAt, previous}. */
  jws: JsonText;
}

/** Per key / per server audit settings (0013_audit), shipped to nodes in snapshots. */
export interface AuditSettingsTable {
  /** `key:<key id>` or `server:<server name>`. */
  id: string;
  scope: 'key' | 'server';
  target: string;
  content_logging: Generated<number>;
  guardrail: Generated<string>;
  updated_at: IsoTime;
  change_version: ChangeVersion;
}

// Row types for repositories leave out `change_version`: triggers own it (0004_change_tracking).
export type UserRow = Omit<Selectable<UsersTable>, 'change_version'>;
export type NewUser = Insertable<UsersTable>;
export type McpServerRow = Omit<Selectable<McpServersTable>, 'change_version'>;
export type NewMcpServer = Insertable<McpServersTable>;
export type McpServerUpdate = Updateable<McpServersTable>;
export type VirtualKeyRow = Omit<Selectable<VirtualKeysTable>, 'change_version'>;
export type NewVirtualKey = Insertable<VirtualKeysTable>;
export type AdminTokenRow = Selectable<AdminTokensTable>;
export type NodeRow = Selectable<NodesTable>;
export type SessionSecretRow = Selectable<SessionSecretsTable>;
export type NodeEnrollmentTokenRow = Selectable<NodeEnrollmentTokensTable>;
export type AccessProfileRow = Selectable<AccessProfilesTable>;
export type ProviderRow = Omit<Selectable<ProvidersTable>, 'change_version'>;
export type SpendEventRow = Selectable<SpendEventsTable>;
