/**
 * MCP server registrations: validation, storage (secrets sealed with secret-box or kept as `env.NAME`
 * references), and reads that never open a secret. Every write bumps the config version in its
 * transaction. It does not talk to upstream servers, sync tool catalogs or run OAuth.
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import {
  SERVER_NAME_PATTERN,
  type AuthType,
  type ConnectionType,
} from '../../data-plane/snapshot/schema.js';
import type { McpServerRow, NewMcpServer } from '../db/schema.js';
import { ENV_NAME_PATTERN, headerNameProblem, headerValueProblem, type HeaderUse } from '../../data-plane/snapshot/rules.js';
import { displaySecret, parseEnvRef, redactedPreview, storeSecret, type SecretBox, type StoredSecret } from '../crypto/secret-box.js';
import { bumpConfigVersion } from './config-state.js';
import { carriesCredential, containsRedaction, keptSealedUrl, redactUrl, shownUrl, storeUrl, urlProblem } from './url-secrets.js';
import { scrubbedName, showableDescription, toolNameProblem, type ToolNameProblem } from '../../data-plane/snapshot/tool-names.js';
import { InputError, IssueList, isUniqueViolation } from './errors.js';
import { removeServerFromGrants, renameServerInGrants, renameServerInProfiles } from './key-grants.js';
import { applyKeysetPage, encodeCursor, type PageRequest } from './pagination.js';
import { inTransaction, nowIso, type Db } from './transaction.js';

export type McpServerStatus = 'ACTIVE' | 'NEEDS_AUTH' | 'NEEDS_REAUTH' | 'ERROR';

export const DEFAULT_TOOL_TIMEOUT_MS = 30_000;
export const MAX_TOOL_TIMEOUT_MS = 600_000;

export interface SyncedTool {
  name: string;
  description: string | null;
}

/** A server as stored, with JSON columns parsed. Secret values are `StoredSecret`s: never plaintext. */
export interface McpServer {
  id: string;
  name: string;
  connectionType: ConnectionType;
  /** URL or `env.NAME`; null for STDIO. Credential-bearing parts show as `***` (url-secrets.ts). */
  connectionString: string | null;
  /** The whole URL sealed (secret-box ciphertext, never plaintext) when it carries a credential, else null. */
  connectionSecret: string | null;
  stdio: { command: string; args: string[]; env: Record<string, StoredSecret> } | null;
  authType: AuthType;
  /** Header name (as the operator wrote it) → stored value. */
  headers: Record<string, StoredSecret>;
  perUserHeaderKeys: string[];
  toolsToExecute: string[];
  /** Lower-cased. */
  allowedExtraHeaders: string[];
  toolTimeoutMs: number;
  disabled: boolean;
  status: string;
  tools: SyncedTool[] | null;
  createdAt: string;
  updatedAt: string;
}

/** A write-only secret entry: a header or stdio env variable. A missing `value` on update keeps the stored one. */
export interface NameValueInput {
  name: string;
  value?: string | null;
}

export interface StdioInput {
  command: string;
  args?: readonly string[] | null;
  env?: readonly NameValueInput[] | null;
}

export interface CreateMcpServerInput {
  name: string;
  connectionType: ConnectionType;
  connectionString?: string | null;
  stdio?: StdioInput | null;
  authType?: AuthType | null;
  headers?: readonly NameValueInput[] | null;
  perUserHeaderKeys?: readonly string[] | null;
  toolsToExecute?: readonly string[] | null;
  allowedExtraHeaders?: readonly string[] | null;
  toolTimeoutMs?: number | null;
  disabled?: boolean | null;
}

/** Patch: absent or null fields stay as they are; lists given replace the stored list. */
export type UpdateMcpServerInput = {
  /** Identifies the server. */
  name: string;
  newName?: string | null;
} & { [K in Exclude<keyof CreateMcpServerInput, 'name'>]?: CreateMcpServerInput[K] | null };

// ---- AAD: the compiler that opens these secrets must use the same strings. ----

export function serverConnectionAad(serverId: string): string {
  return `mcp_servers:${serverId}:connection_string`;
}

export function serverHeaderAad(serverId: string, headerName: string): string {
  return `mcp_servers:${serverId}:headers:${headerName}`;
}

export function serverStdioEnvAad(serverId: string, envName: string): string {
  return `mcp_servers:${serverId}:stdio_env:${envName}`;
}

// ---- Reading rows ----

const StoredSecretSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('enc'), ciphertext: z.string(), preview: z.string() }),
  z.object({ kind: z.literal('env'), name: z.string() }),
]);
const SecretMapSchema = z.record(z.string(), StoredSecretSchema);
const StringListSchema = z.array(z.string());
const ToolsSchema = z
  .array(z.looseObject({ name: z.string(), description: z.string().nullish() }).transform((t) => ({ name: t.name, description: t.description ?? null })))
  // A catalog stored before tool-names.ts's rule is shown by it too.
  .transform((tools) => showableCatalog(tools).tools);

/**
 * A catalog as it may be stored and shown (tool-names.ts): tools whose name cannot be one dropped, with
 * why; each description's unshowable characters (but tab and newline) replaced by U+FFFD.
 */
export function showableCatalog(tools: readonly { name: unknown; description: string | null }[]): { tools: SyncedTool[]; dropped: Array<{ name: string; problem: ToolNameProblem }> } {
  const kept: SyncedTool[] = [];
  const dropped: Array<{ name: string; problem: ToolNameProblem }> = [];
  for (const tool of tools) {
    const problem = toolNameProblem(tool.name);
    if (problem !== null) dropped.push({ name: scrubbedName(tool.name), problem });
    else kept.push({ name: tool.name as string, description: tool.description === null ? null : showableDescription(tool.description) });
  }
  return { tools: kept, dropped };
}

/**
 * Auth types whose credential is each user's own. What such a server's upstream lists depends on whose
 * credential asks (the names and descriptions can tell what that user may reach), so it has no catalog of
 * its own: `McpServer.tools` is null for it, and no catalog listed for one user is ever stored as it.
 */
const PER_USER_AUTH_TYPES = ['PER_USER_OAUTH', 'PER_USER_HEADERS'] as const satisfies readonly McpServerRow['auth_type'][];

function isPerUserAuth(authType: McpServerRow['auth_type']): boolean {
  return (PER_USER_AUTH_TYPES as readonly string[]).includes(authType);
}

export function toMcpServer(row: McpServerRow): McpServer {
  return {
    id: row.id,
    name: row.name,
    connectionType: row.connection_type,
    connectionString: row.connection_string,
    connectionSecret: row.connection_secret,
    stdio:
      row.connection_type === 'STDIO' && row.stdio_command !== null
        ? {
            command: row.stdio_command,
            args: StringListSchema.parse(JSON.parse(row.stdio_args)),
            env: SecretMapSchema.parse(JSON.parse(row.stdio_env)),
          }
        : null,
    authType: row.auth_type,
    headers: SecretMapSchema.parse(JSON.parse(row.headers)),
    perUserHeaderKeys: StringListSchema.parse(JSON.parse(row.per_user_header_keys)),
    toolsToExecute: StringListSchema.parse(JSON.parse(row.tools_to_execute)),
    allowedExtraHeaders: StringListSchema.parse(JSON.parse(row.allowed_extra_headers)),
    toolTimeoutMs: row.tool_timeout_ms,
    disabled: row.disabled !== 0,
    status: row.status,
    // Per-user: also hides a catalog stored while the server had a shared credential (or by a release
    // that recorded one user's catalog as the server's): it is not what the server's users see.
    tools: row.tools === null || isPerUserAuth(row.auth_type) ? null : ToolsSchema.parse(JSON.parse(row.tools)),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

export async function getMcpServerByName(db: Db, name: string): Promise<McpServer | null> {
  const row = await db.selectFrom('mcp_servers').selectAll().where('name', '=', name).executeTakeFirst();
  return row ? toMcpServer(row) : null;
}

export async function getMcpServerById(db: Db, id: string): Promise<McpServer | null> {
  const row = await db.selectFrom('mcp_servers').selectAll().where('id', '=', id).executeTakeFirst();
  return row ? toMcpServer(row) : null;
}

export async function getMcpServersByNames(db: Db, names: readonly string[]): Promise<McpServer[]> {
  if (names.length === 0) return [];
  const rows = await db.selectFrom('mcp_servers').selectAll().where('name', 'in', [...names]).execute();
  return rows.map(toMcpServer);
}

/** Servers whose names equal these ignoring case (names are unique that way). */
export async function getMcpServersByNamesIgnoringCase(db: Db, names: readonly string[]): Promise<McpServer[]> {
  if (names.length === 0) return [];
  const lower = [...new Set(names.map((n) => n.toLowerCase()))];
  const rows = await db
    .selectFrom('mcp_servers')
    .selectAll()
    .where((eb) => eb(eb.fn('lower', ['name']), 'in', lower))
    .execute();
  return rows.map(toMcpServer);
}

/** One page in (created_at, id) order; see pagination.ts. */
export async function listMcpServers(db: Db, page: PageRequest): Promise<McpServer[]> {
  const rows = await applyKeysetPage(db.selectFrom('mcp_servers').selectAll(), ['created_at', 'id'], page).execute();
  return rows.map(toMcpServer);
}

/** Every server, for the snapshot compiler (hundreds, not millions). */
export async function listAllMcpServers(db: Db): Promise<McpServer[]> {
  const rows = await db.selectFrom('mcp_servers').selectAll().orderBy('created_at').orderBy('id').execute();
  return rows.map(toMcpServer);
}

export function mcpServerCursor(server: McpServer): string {
  return encodeCursor([server.createdAt, server.id]);
}

// ---- Validation ----

/** A secret entry after merging with what is stored: either a new value, or a stored one kept. */
interface SecretDraft {
  name: string;
  value: string | null;
  kept: { name: string; secret: StoredSecret } | null;
}

/** The complete desired state of a server, before secrets are sealed. */
interface ServerDraft {
  name: string;
  connectionType: ConnectionType;
  connectionString: string | null;
  /** The stored sealed URL, kept when the input gives back the redacted form reads show. */
  keptConnectionSecret: string | null;
  stdio: { command: string; args: string[]; env: SecretDraft[] } | null;
  authType: AuthType;
  headers: SecretDraft[];
  perUserHeaderKeys: string[];
  toolsToExecute: string[];
  allowedExtraHeaders: string[];
  toolTimeoutMs: number;
  disabled: boolean;
}

function checkName(name: string, field: string, issues: IssueList): void {
  if (!SERVER_NAME_PATTERN.test(name)) {
    issues.add(
      'INVALID_NAME',
      field,
      `"${name}" is not a valid server name: use letters, digits and underscores, not starting with a digit (no hyphen: tools are named {server}-{tool})`,
    );
  } else if (name.length > 64) {
    issues.add('INVALID_NAME', field, 'server name must be at most 64 characters');
  }
}

function checkConnectionString(value: string, field: string, issues: IssueList, kept: boolean): void {
  if (value.startsWith('env.')) {
    // Not echoed: a URL pasted after `env.` may carry a credential (url-secrets.ts).
    if (!parseEnvRef(value)) issues.add('INVALID_VALUE', field, 'connectionString starts with env. but is not an env.NAME reference (NAME: letters, digits and _, not starting with a digit)');
    return;
  }
  const problem = urlProblem(value, { requireHttps: false });
  if (problem === 'not_a_url') {
    issues.add('INVALID_URL', field, 'connectionString must be an http(s) URL or an env.NAME reference');
  } else if (problem === 'not_http') {
    issues.add('INVALID_URL', field, 'connectionString must use http or https');
  } else if (problem === 'credentials') {
    // The one rule for every stored URL (url-secrets.ts); headers are the write-only place for these.
    issues.add('INVALID_URL', field, 'connectionString must not embed credentials; put them in headers');
  } else if (!kept && containsRedaction(value)) {
    // `***` is what reads show for a hidden part: given back with other changes, the real value is unknown.
    issues.add('INVALID_URL', field, 'connectionString contains *** (a hidden part as reads show it): give the whole URL, or the stored value unchanged');
  }
}

/** A secret value: no control characters that could split a header, and `env.` only as a valid reference. */
function checkSecretValue(value: string, field: string, issues: IssueList, isHeader: boolean): void {
  const headerProblem = isHeader ? headerValueProblem(value) : null;
  if (value.startsWith('env.') && !parseEnvRef(value)) {
    // Not echoed: this is a write-only value.
    issues.add('INVALID_VALUE', field, 'value starts with env. but is not an env.NAME reference (NAME: letters, digits and _, not starting with a digit)');
  } else if (value.includes('\0')) {
    issues.add('INVALID_VALUE', field, 'value contains characters not allowed here');
  } else if (headerProblem !== null) {
    issues.add('INVALID_VALUE', field, headerProblem);
  } else if (isHeader && value.length === 0) {
    issues.add('REQUIRED', field, 'header value must not be empty');
  }
}

/**
 * A list of tool names: "*" alone means all, [] means none; duplicates are dropped. Also used for key grants.
 * Lists are checked against a Set, as every list below: a list is caller input up to the body limit, and a
 * scan of what was kept per entry made one 1 MB request (100,000 names) hold the event loop for seconds
 * (50,000 header names: over a minute), stopping every other request and node stream meanwhile.
 */
export function normaliseToolList(tools: readonly string[], field: string, issues: IssueList): string[] {
  if (!issues.withinListLimit(tools, field)) return [];
  const out = new Set<string>();
  tools.forEach((tool, i) => {
    const t = typeof tool === 'string' ? tool.trim() : tool;
    // The rule of tool-names.ts; the message never echoes the name (it may hold a control character).
    if (toolNameProblem(t) !== null) issues.add('INVALID_VALUE', `${field}.${i}`, 'tool names must be 1 to 128 characters, without control or format characters');
    else out.add(t);
  });
  if (out.has('*') && out.size > 1) issues.add('INVALID_VALUE', field, '"*" (all tools) must be the only entry');
  return [...out];
}

/** Header names for `use`, checked by the rules the node applies too (`data-plane/snapshot/rules.ts`). */
function normaliseHeaderNames(names: readonly string[], field: string, issues: IssueList, use: HeaderUse): string[] {
  if (!issues.withinListLimit(names, field)) return [];
  // Lower-cased name → the first spelling given (header names are case-insensitive).
  const out = new Map<string, string>();
  names.forEach((raw, i) => {
    const name = raw.trim();
    const problem = headerNameProblem(name, use);
    if (problem !== null) issues.add('INVALID_VALUE', `${field}.${i}`, problem);
    else if (!out.has(name.toLowerCase())) out.set(name.toLowerCase(), name);
  });
  return [...out.values()];
}

/**
 * Turns write-only entries into drafts, matching stored ones by name (case-insensitively for headers)
 * when the caller leaves a value out.
 */
function secretDrafts(
  entries: readonly NameValueInput[],
  stored: Record<string, StoredSecret>,
  field: string,
  issues: IssueList,
  kind: 'header' | 'env',
): SecretDraft[] {
  if (!issues.withinListLimit(entries, field)) return [];
  const out: SecretDraft[] = [];
  // Names compare case-insensitively for headers; both lookups are by this key (no scan per entry).
  const keyOf = (name: string) => (kind === 'header' ? name.toLowerCase() : name);
  const given = new Set<string>();
  const storedByKey = new Map<string, [string, StoredSecret]>();
  for (const [storedName, secret] of Object.entries(stored)) if (!storedByKey.has(keyOf(storedName))) storedByKey.set(keyOf(storedName), [storedName, secret]);
  entries.forEach((entry, i) => {
    const name = entry.name.trim();
    const path = `${field}.${i}`;
    const headerProblem = kind === 'header' ? headerNameProblem(name, 'configured') : null;
    if (headerProblem !== null) {
      issues.add('INVALID_VALUE', `${path}.name`, headerProblem);
      return;
    }
    if (kind === 'env' && !ENV_NAME_PATTERN.test(name)) {
      issues.add('INVALID_VALUE', `${path}.name`, `"${entry.name}" is not a valid environment variable name`);
      return;
    }
    if (given.has(keyOf(name))) {
      issues.add('DUPLICATE', `${path}.name`, `${kind === 'header' ? 'header' : 'variable'} "${name}" is given twice`);
      return;
    }
    if (entry.value === undefined || entry.value === null) {
      const match = storedByKey.get(keyOf(name));
      if (!match) {
        issues.add('REQUIRED', `${path}.value`, `a value is required for "${name}"`);
        return;
      }
      given.add(keyOf(name));
      out.push({ name, value: null, kept: { name: match[0], secret: match[1] } });
      return;
    }
    checkSecretValue(entry.value, `${path}.value`, issues, kind === 'header');
    given.add(keyOf(name));
    out.push({ name, value: entry.value, kept: null });
  });
  return out;
}

function keptDrafts(stored: Record<string, StoredSecret>): SecretDraft[] {
  return Object.entries(stored).map(([name, secret]) => ({ name, value: null, kept: { name, secret } }));
}

/** Checks that only make sense on the whole merged server (type-dependent requirements). */
function checkDraft(d: ServerDraft, issues: IssueList): void {
  checkName(d.name, 'name', issues);
  if (d.connectionType === 'STDIO') {
    if (!d.stdio) issues.add('REQUIRED', 'stdio', 'stdio {command, args, env} is required for STDIO servers');
    else if (d.stdio.command.trim().length === 0) issues.add('REQUIRED', 'stdio.command', 'stdio.command must not be empty');
  } else if (d.connectionString === null || d.connectionString.trim() === '') {
    issues.add('REQUIRED', 'connectionString', `connectionString is required for ${d.connectionType} servers`);
  } else {
    checkConnectionString(d.connectionString, 'connectionString', issues, d.keptConnectionSecret !== null);
  }
  if (!Number.isInteger(d.toolTimeoutMs) || d.toolTimeoutMs < 1 || d.toolTimeoutMs > MAX_TOOL_TIMEOUT_MS) {
    issues.add('INVALID_VALUE', 'toolTimeoutMs', `toolTimeoutMs must be an integer from 1 to ${MAX_TOOL_TIMEOUT_MS}`);
  }
  // A requirement is reported only when nothing more specific was said about the same field: a header with
  // an invalid name is not a missing header, and saying so would send the operator looking in the wrong place.
  if (d.authType === 'HEADERS' && d.headers.length === 0 && !issues.hasAt('headers')) {
    issues.add('REQUIRED', 'headers', 'authType HEADERS needs at least one header');
  }
  if (d.authType === 'PER_USER_HEADERS' && d.perUserHeaderKeys.length === 0 && !issues.hasAt('perUserHeaderKeys')) {
    issues.add('REQUIRED', 'perUserHeaderKeys', 'authType PER_USER_HEADERS needs at least one perUserHeaderKeys entry');
  }
}

/**
 * The complete desired server from a create-shaped input. With `current`, secret entries without a value
 * keep the stored value of the same name (what a declarative apply needs); without, they are required.
 */
function draftFromCreate(input: CreateMcpServerInput, issues: IssueList, current: McpServer | null = null): ServerDraft {
  const type = input.connectionType;
  if (type === 'STDIO' && input.connectionString != null) {
    issues.add('INVALID_VALUE', 'connectionString', 'STDIO servers take stdio {command, args, env}, not a connectionString');
  }
  if (type !== 'STDIO' && input.stdio != null) {
    issues.add('INVALID_VALUE', 'stdio', `stdio is only for STDIO servers, not ${type}`);
  }
  return {
    name: input.name.trim(),
    connectionType: type,
    connectionString: type === 'STDIO' ? null : (input.connectionString?.trim() ?? null),
    keptConnectionSecret: type === 'STDIO' ? null : keptConnection(current, input.connectionString?.trim() ?? null),
    stdio:
      type === 'STDIO' && input.stdio
        ? {
            command: input.stdio.command,
            args: [...(input.stdio.args ?? [])],
            env: secretDrafts(input.stdio.env ?? [], current?.stdio?.env ?? {}, 'stdio.env', issues, 'env'),
          }
        : null,
    authType: input.authType ?? 'NONE',
    headers: secretDrafts(input.headers ?? [], current?.headers ?? {}, 'headers', issues, 'header'),
    perUserHeaderKeys: normaliseHeaderNames(input.perUserHeaderKeys ?? [], 'perUserHeaderKeys', issues, 'configured'),
    toolsToExecute: normaliseToolList(input.toolsToExecute ?? [], 'toolsToExecute', issues),
    allowedExtraHeaders: normaliseHeaderNames(
      input.allowedExtraHeaders ?? [],
      'allowedExtraHeaders',
      issues,
      'forwarded',
    ).map((h) => h.toLowerCase()),
    toolTimeoutMs: input.toolTimeoutMs ?? DEFAULT_TOOL_TIMEOUT_MS,
    disabled: input.disabled ?? false,
  };
}

function draftFromUpdate(current: McpServer, patch: UpdateMcpServerInput, issues: IssueList): ServerDraft {
  const type = patch.connectionType ?? current.connectionType;
  if (type === 'STDIO' && patch.connectionString != null) {
    issues.add('INVALID_VALUE', 'connectionString', 'STDIO servers take stdio {command, args, env}, not a connectionString');
  }
  if (type !== 'STDIO' && patch.stdio != null) {
    issues.add('INVALID_VALUE', 'stdio', `stdio is only for STDIO servers, not ${type}`);
  }
  let stdio: ServerDraft['stdio'] = null;
  if (type === 'STDIO') {
    if (patch.stdio) {
      stdio = {
        command: patch.stdio.command,
        args: [...(patch.stdio.args ?? [])],
        env: secretDrafts(patch.stdio.env ?? [], current.stdio?.env ?? {}, 'stdio.env', issues, 'env'),
      };
    } else if (current.stdio) {
      stdio = { command: current.stdio.command, args: current.stdio.args, env: keptDrafts(current.stdio.env) };
    }
  }
  return {
    name: patch.newName != null ? patch.newName.trim() : current.name,
    connectionType: type,
    connectionString: type === 'STDIO' ? null : (patch.connectionString?.trim() ?? current.connectionString),
    keptConnectionSecret: type === 'STDIO' ? null : keptConnection(current, patch.connectionString?.trim() ?? current.connectionString),
    stdio,
    authType: patch.authType ?? current.authType,
    headers: patch.headers != null ? secretDrafts(patch.headers, current.headers, 'headers', issues, 'header') : keptDrafts(current.headers),
    perUserHeaderKeys:
      patch.perUserHeaderKeys != null
        ? normaliseHeaderNames(patch.perUserHeaderKeys, 'perUserHeaderKeys', issues, 'configured')
        : current.perUserHeaderKeys,
    toolsToExecute: patch.toolsToExecute != null ? normaliseToolList(patch.toolsToExecute, 'toolsToExecute', issues) : current.toolsToExecute,
    allowedExtraHeaders:
      patch.allowedExtraHeaders != null
        ? normaliseHeaderNames(
            patch.allowedExtraHeaders,
            'allowedExtraHeaders',
            issues,
            'forwarded',
          ).map((h) => h.toLowerCase())
        : current.allowedExtraHeaders,
    toolTimeoutMs: patch.toolTimeoutMs ?? current.toolTimeoutMs,
    disabled: patch.disabled ?? current.disabled,
  };
}

/** The stored sealed URL when `given` is exactly what reads show for it (an unchanged value given back). */
function keptConnection(current: McpServer | null, given: string | null): string | null {
  return current?.connectionString == null ? null : keptSealedUrl({ shown: current.connectionString, sealed: current.connectionSecret }, given);
}

/** Column values for a connection string: a credential-bearing URL is stored redacted, its whole text sealed. */
function connectionColumns(box: SecretBox, id: string, d: ServerDraft): { connection_string: string | null; connection_secret: string | null } {
  if (d.connectionString === null || parseEnvRef(d.connectionString) !== null) return { connection_string: d.connectionString, connection_secret: null };
  if (d.keptConnectionSecret !== null) return { connection_string: d.connectionString, connection_secret: d.keptConnectionSecret };
  const stored = storeUrl(box, d.connectionString, serverConnectionAad(id));
  return { connection_string: stored.shown, connection_secret: stored.sealed };
}

/** What reads would show for a draft's connection string (never a hidden part). */
function shownConnection(d: ServerDraft): string | null {
  if (d.connectionString === null || d.keptConnectionSecret !== null || parseEnvRef(d.connectionString) !== null) return d.connectionString;
  // Not a URL: refused by checkDraft; shownUrl shows nothing of it.
  return shownUrl(d.connectionString);
}

/**
 * The URL to connect to, in this process only: the sealed whole URL opened, or an `env.NAME` resolved
 * from `env`; null for STDIO or an unset variable. Callers must not log or show it.
 */
export function connectionUrlText(box: SecretBox, server: McpServer, env: NodeJS.ProcessEnv): string | null {
  if (server.connectionString === null) return null;
  if (server.connectionSecret !== null) return box.open(server.connectionSecret, serverConnectionAad(server.id));
  const envName = parseEnvRef(server.connectionString);
  return envName ? (env[envName] ?? null) : server.connectionString;
}

/** NEEDS_AUTH until a shared OAuth grant exists; per-user and static auth are usable at once. */
function initialStatus(authType: AuthType): McpServerStatus {
  return authType === 'OAUTH' ? 'NEEDS_AUTH' : 'ACTIVE';
}

/** Seals new values; keeps stored ones, re-sealing only when a rename changed the AAD they are bound to. */
function sealDrafts(
  box: SecretBox,
  drafts: readonly SecretDraft[],
  aad: (name: string) => string,
): Record<string, StoredSecret> {
  const out: Record<string, StoredSecret> = {};
  for (const d of drafts) {
    if (d.value !== null) out[d.name] = storeSecret(box, d.value, aad(d.name));
    else if (d.kept === null) throw new Error('secret draft without value or stored secret');
    else if (d.kept.secret.kind === 'env' || d.kept.name === d.name) out[d.name] = d.kept.secret;
    else out[d.name] = storeSecret(box, box.open(d.kept.secret.ciphertext, aad(d.kept.name)), aad(d.name));
  }
  return out;
}

function draftColumns(box: SecretBox, id: string, d: ServerDraft) {
  return {
    name: d.name,
    connection_type: d.connectionType,
    ...connectionColumns(box, id, d),
    stdio_command: d.stdio?.command ?? null,
    stdio_args: JSON.stringify(d.stdio?.args ?? []),
    stdio_env: JSON.stringify(d.stdio ? sealDrafts(box, d.stdio.env, (n) => serverStdioEnvAad(id, n)) : {}),
    auth_type: d.authType,
    headers: JSON.stringify(sealDrafts(box, d.headers, (n) => serverHeaderAad(id, n))),
    per_user_header_keys: JSON.stringify(d.perUserHeaderKeys),
    tools_to_execute: JSON.stringify(d.toolsToExecute),
    allowed_extra_headers: JSON.stringify(d.allowedExtraHeaders),
    tool_timeout_ms: d.toolTimeoutMs,
    disabled: d.disabled ? 1 : 0,
  } satisfies Partial<NewMcpServer>;
}

/**
 * Server names are unique ignoring case: `GitHub` and `github` side by side would confuse every reader.
 * Returns the stored spelling of the server that holds the name, or null when it is free.
 */
async function nameHolder(db: Db, name: string, exceptId: string | null): Promise<string | null> {
  let q = db
    .selectFrom('mcp_servers')
    .select('name')
    .where((eb) => eb(eb.fn('lower', ['name']), '=', name.toLowerCase()));
  if (exceptId !== null) q = q.where('id', '!=', exceptId);
  return (await q.executeTakeFirst())?.name ?? null;
}

/** Names the server as stored, which is the one the operator will find in listings. */
function nameTakenError(stored: string, wanted: string, field: string): InputError {
  const caseNote = stored === wanted ? '' : ` (names are unique ignoring case, so "${wanted}" is taken)`;
  return new InputError('NAME_TAKEN', field, `a server named "${stored}" already exists${caseNote}`);
}

// ---- Planning (declarative apply) ----

/** One field a write would change, shown to people: secrets only as previews or `env.NAME` references. */
export interface FieldChange {
  field: string;
  /** null when the entity does not exist yet. */
  before: string | null;
  /** null when the entity is deleted. */
  after: string | null;
}

function listText(values: readonly string[]): string {
  return JSON.stringify(values);
}

/**
 * Compares secret drafts with what is stored. A new plaintext value is compared by opening the stored one
 * (in this process, as the snapshot compiler does), so applying the same document twice changes nothing.
 */
function secretsChange(
  box: SecretBox,
  stored: Record<string, StoredSecret>,
  drafts: readonly SecretDraft[],
  aad: (name: string) => string,
): { changed: boolean; before: string; after: string } {
  let changed = Object.keys(stored).length !== drafts.length;
  const after = drafts.map((d) => {
    const same = stored[d.name];
    if (d.value === null) {
      if (d.kept?.name !== d.name) changed = true;
      return `${d.name}=${d.kept === null ? '?' : displaySecret(d.kept.secret)}`;
    }
    const envName = parseEnvRef(d.value);
    const unchanged =
      same !== undefined &&
      (same.kind === 'env' ? envName === same.name : envName === null && openOrNull(box, same.ciphertext, aad(d.name)) === d.value);
    if (!unchanged) changed = true;
    const shown = envName !== null ? d.value : redactedPreview(d.value);
    return `${d.name}=${shown}${unchanged ? '' : ' (new value)'}`;
  });
  const before = Object.entries(stored).map(([name, secret]) => `${name}=${displaySecret(secret)}`);
  return { changed, before: before.join(', '), after: after.join(', ') };
}

/** A stored ciphertext that no longer opens (say, a rotated master key) compares as different. */
function openOrNull(box: SecretBox, ciphertext: string, aad: string): string | null {
  try {
    return box.open(ciphertext, aad);
  } catch {
    return null;
  }
}

/**
 * What making `current` (null: a new server) equal to `input` would change, field by field; `input` is the
 * whole desired server (fields left out take their defaults) and header or env entries without a value keep
 * the stored value of that name. Problems with the input are added to `issues` (fields relative to the
 * input); the database is not touched, so a caller can plan a whole document before writing anything.
 */
export function planMcpServer(box: SecretBox, current: McpServer | null, input: CreateMcpServerInput, issues: IssueList): FieldChange[] {
  const d = draftFromCreate(input, issues, current);
  checkDraft(d, issues);
  const changes: FieldChange[] = [];
  const compare = (field: string, before: string | null, after: string | null) => {
    if (current === null || before !== after) changes.push({ field, before: current === null ? null : before, after });
  };
  compare('name', current?.name ?? null, d.name);
  compare('connectionType', current?.connectionType ?? null, d.connectionType);
  // Shown redacted; a new whole URL equal to the stored one (opened here, as for headers) is no change.
  const sameSealedUrl =
    current?.connectionSecret != null && d.connectionString !== null && d.keptConnectionSecret === null && openOrNull(box, current.connectionSecret, serverConnectionAad(current.id)) === d.connectionString;
  compare('connectionString', current?.connectionString ?? null, sameSealedUrl ? (current?.connectionString ?? null) : shownConnection(d));
  const stdioText = (s: { command: string; args: readonly string[] } | null | undefined) => (s ? [s.command, ...s.args].join(' ') : null);
  compare('stdio', stdioText(current?.stdio), stdioText(d.stdio));
  compare('authType', current?.authType ?? null, d.authType);
  const id = current?.id ?? '';
  const headers = secretsChange(box, current?.headers ?? {}, d.headers, (n) => serverHeaderAad(id, n));
  if (current === null || headers.changed) changes.push({ field: 'headers', before: current === null ? null : headers.before, after: headers.after });
  if (d.stdio || current?.stdio) {
    const env = secretsChange(box, current?.stdio?.env ?? {}, d.stdio?.env ?? [], (n) => serverStdioEnvAad(id, n));
    if (current === null || env.changed) changes.push({ field: 'stdio.env', before: current === null ? null : env.before, after: env.after });
  }
  compare('perUserHeaderKeys', current ? listText(current.perUserHeaderKeys) : null, listText(d.perUserHeaderKeys));
  compare('toolsToExecute', current ? listText(current.toolsToExecute) : null, listText(d.toolsToExecute));
  compare('allowedExtraHeaders', current ? listText(current.allowedExtraHeaders) : null, listText(d.allowedExtraHeaders));
  compare('toolTimeoutMs', current ? String(current.toolTimeoutMs) : null, String(d.toolTimeoutMs));
  compare('disabled', current ? String(current.disabled) : null, String(d.disabled));
  return changes;
}

/** Every field of a server, for "this is what gets deleted" in a plan. */
export function describeMcpServer(server: McpServer): FieldChange[] {
  return [
    { field: 'connectionType', before: server.connectionType, after: null },
    { field: 'connectionString', before: server.connectionString, after: null },
    { field: 'authType', before: server.authType, after: null },
    { field: 'toolsToExecute', before: listText(server.toolsToExecute), after: null },
  ];
}

/**
 * The server with exactly this name. When there is none but one differs only in case, the error names it as
 * stored, so the operator sees the spelling to use instead of a bare "not found".
 */
async function requireServer(db: Db, name: string): Promise<McpServer> {
  const exact = await getMcpServerByName(db, name);
  if (exact) return exact;
  const holder = await nameHolder(db, name, null);
  throw new InputError('NOT_FOUND', 'name', `no server named "${name}"${holder !== null ? ` (did you mean "${holder}"?)` : ''}`);
}

// ---- Writes ----

export async function createMcpServer(db: Db, box: SecretBox, input: CreateMcpServerInput): Promise<McpServer> {
  const issues = new IssueList();
  const draft = draftFromCreate(input, issues);
  checkDraft(draft, issues);
  issues.throwIfAny();

  return inTransaction(db, async (trx) => {
    await bumpConfigVersion(trx);
    const holder = await nameHolder(trx, draft.name, null);
    if (holder !== null) throw nameTakenError(holder, draft.name, 'name');
    const id = randomUUID();
    const now = nowIso();
    const row: NewMcpServer = {
      id,
      ...draftColumns(box, id, draft),
      status: initialStatus(draft.authType),
      tools: null,
      created_at: now,
      updated_at: now,
    };
    try {
      await trx.insertInto('mcp_servers').values(row).execute();
    } catch (error) {
      // A lost race: the transaction is aborted (PostgreSQL), so the holder's spelling cannot be read now.
      if (isUniqueViolation(error)) throw nameTakenError(draft.name, draft.name, 'name');
      throw error;
    }
    return toMcpServer(fullRowDefaults(row));
  });
}

/** Fills the columns with database defaults so an inserted row can be returned without re-reading it. */
function fullRowDefaults(row: NewMcpServer): McpServerRow {
  return {
    ...row,
    connection_string: row.connection_string ?? null,
    connection_secret: row.connection_secret ?? null,
    stdio_command: row.stdio_command ?? null,
    stdio_args: row.stdio_args ?? '[]',
    stdio_env: row.stdio_env ?? '{}',
    headers: row.headers ?? '{}',
    per_user_header_keys: row.per_user_header_keys ?? '[]',
    tools_to_execute: row.tools_to_execute ?? '[]',
    allowed_extra_headers: row.allowed_extra_headers ?? '[]',
    disabled: row.disabled ?? 0,
    tools: row.tools ?? null,
    tool_pricing: row.tool_pricing ?? '{}',
  };
}

export async function updateMcpServer(db: Db, box: SecretBox, input: UpdateMcpServerInput): Promise<McpServer> {
  return inTransaction(db, async (trx) => {
    await bumpConfigVersion(trx);
    const current = await requireServer(trx, input.name);

    const issues = new IssueList();
    const draft = draftFromUpdate(current, input, issues);
    checkDraft(draft, issues);
    issues.throwIfAny();

    const renamed = draft.name !== current.name;
    const holder = renamed ? await nameHolder(trx, draft.name, current.id) : null;
    if (holder !== null) throw nameTakenError(holder, draft.name, 'newName');

    // Switching auth type resets status to what the new type starts with; otherwise status is kept.
    const status = draft.authType !== current.authType ? initialStatus(draft.authType) : current.status;
    try {
      await trx
        .updateTable('mcp_servers')
        .set({ ...draftColumns(box, current.id, draft), status, updated_at: nowIso() })
        .where('id', '=', current.id)
        .execute();
    } catch (error) {
      if (isUniqueViolation(error)) throw nameTakenError(draft.name, draft.name, 'newName');
      throw error;
    }
    if (renamed) {
      await renameServerInGrants(trx, current.name, draft.name);
      await renameServerInProfiles(trx, current.name, draft.name);
    }
    const updated = await getMcpServerById(trx, current.id);
    if (!updated) throw new Error('server vanished inside its own transaction');
    return updated;
  });
}

/**
 * Seals the credential-bearing connection URLs of rows written before 0020_connection_secret (stored and
 * shown whole then), so reads and snapshots stop carrying them in clear. Idempotent; run at startup, where
 * the master key is at hand. Returns how many rows it sealed.
 */
export async function sealConnectionSecrets(db: Db, box: SecretBox): Promise<number> {
  const rows = await db
    .selectFrom('mcp_servers')
    .select(['id', 'connection_string'])
    .where('connection_secret', 'is', null)
    .where('connection_string', 'is not', null)
    .execute();
  const found = rows.flatMap((row) =>
    row.connection_string === null || parseEnvRef(row.connection_string) !== null || !carriesCredential(row.connection_string)
      ? []
      : [{ id: row.id, whole: row.connection_string, shown: redactUrl(new URL(row.connection_string)).shown }],
  );
  if (found.length === 0) return 0;
  await inTransaction(db, async (trx) => {
    await bumpConfigVersion(trx);
    for (const row of found) {
      await trx
        .updateTable('mcp_servers')
        .set({ connection_string: row.shown, connection_secret: box.seal(row.whole, serverConnectionAad(row.id)) })
        .where('id', '=', row.id)
        .where('connection_secret', 'is', null)
        .execute();
    }
  });
  return found.length;
}

/** Deletes the server and every key grant naming it; returns the server as it was. */
export async function deleteMcpServer(db: Db, name: string): Promise<McpServer> {
  return inTransaction(db, async (trx) => {
    await bumpConfigVersion(trx);
    const current = await requireServer(trx, name);
    await trx.deleteFrom('mcp_servers').where('id', '=', current.id).execute();
    await removeServerFromGrants(trx, current.name);
    await renameServerInProfiles(trx, current.name, null);
    return current;
  });
}

/**
 * Stores the tool catalogs nodes reported (`McpServer.tools`): each listed with the server's shared
 * credential. Not a config change: nodes serve the same thing before and after, so the config version is
 * not bumped. Unknown server names are ignored, and a row is written only when its catalog differs. A
 * per-user server's is never stored, whoever reports it (a node of an older release reported the catalog
 * one user's credential listed): see `PER_USER_AUTH_TYPES`.
 */
export async function recordToolCatalogs(
  db: Db,
  catalogs: readonly { server: string; tools: readonly SyncedTool[] }[],
  log?: { warn(fields: object, message?: string): void },
): Promise<void> {
  for (const catalog of catalogs) {
    // An upstream chose these names: one that cannot be a tool name is left out, and said so (scrubbed).
    const showable = showableCatalog(catalog.tools);
    if (showable.dropped.length > 0) log?.warn({ server: scrubbedName(catalog.server), dropped: showable.dropped }, 'left tools out of a reported catalog: their names are not tool names (tool-names.ts)');
    const tools = JSON.stringify(showable.tools);
    await db
      .updateTable('mcp_servers')
      .set({ tools, updated_at: nowIso() })
      .where('name', '=', catalog.server)
      .where('auth_type', 'not in', PER_USER_AUTH_TYPES)
      .where((eb) => eb.or([eb('tools', 'is', null), eb('tools', '!=', tools)]))
      .execute();
  }
}
