/**
 * Reads what nodes need from the database and produces the payloads the publisher signs and sends:
 * a whole snapshot (every server, user and key, secrets sealed under the snapshot's data key) or, from
 * per-row change versions and tombstones (0004_change_tracking), the changes since a version, costing a
 * read of the changed rows only. Each read runs in one repeatable-read transaction, so it matches exactly
 * one config version. It does not sign, send, or decide when to compile (the publisher does).
 */
import { createHash } from 'node:crypto';
import type { Kysely } from 'kysely';
import { sealValue } from '../../data-plane/snapshot/seal.js';
import { GuardrailPolicySchema, type AuditSettingEntry } from '../../data-plane/snapshot/schema.js';
import {
  SNAPSHOT_FORMAT,
  sessionSecretAad,
  type KeyEntry,
  type KeyLimitsEntry,
  type KeyServerGrant,
  type ProviderEntry,
  type PublicJwk,
  type ServerEntry,
  type SessionSecrets,
  type SnapshotDelta,
  type SnapshotPayload,
  type UserEntry,
  type ValueRef,
} from '../../data-plane/snapshot/schema.js';
import { parseEnvRef, type SecretBox, type StoredSecret } from '../crypto/secret-box.js';
import type { Database, LimitsFallback, McpServerRow, ProviderRow, SessionSecretRow } from '../db/schema.js';
import { auditSettingSignature } from '../audit/settings.js';
import { limitsEntry, parseBudgets } from '../repos/limits.js';
import { baseUrlText, parsePrices, parseProviderApiKey, providerApiKeyAad } from '../repos/providers.js';
import type { Db, Trx } from '../repos/transaction.js';
import { serverConnectionAad, serverHeaderAad, serverStdioEnvAad } from '../repos/mcp-servers.js';
import { openSessionSecretRow, readSessionSecretRows } from '../repos/session-secrets.js';

/**
 * Server id → digest of its configuration columns: equal digests mean nodes would get the same entry.
 * Providers are in the same map under `provider:<id>` (they carry a sealed key too, so a change to one
 * needs a whole snapshot exactly as a server change does).
 */
export type ServerSignatures = ReadonlyMap<string, string>;

export interface CompiledSnapshot {
  payload: SnapshotPayload;
  sealEpoch: number;
  serverSignatures: ServerSignatures;
  /** Which session secrets hold which role (see `sessionSecretsDigest`). */
  sessionSecretsDigest: string;
}

/** What changed after `sinceVersion`, up to `version`. */
export interface ConfigChanges {
  sinceVersion: number;
  version: number;
  /**
   * `sinceVersion` is below the tombstone floor (`pruneTombstones`): the rows deleted since then are no
   * longer all known, so no delta can be made from it and the lists below are empty: a whole snapshot is needed.
   */
  beforeFloor: boolean;
  sealEpoch: number;
  /** A server was added, removed or reconfigured: nodes need a whole snapshot (servers carry sealed secrets). */
  serversChanged: boolean;
  /** The session secrets were rotated (or first created): sealed too, so also a whole snapshot. */
  sessionSecretsChanged: boolean;
  sessionSecretsDigest: string;
  upsertKeys: KeyEntry[];
  removeKeyIds: string[];
  upsertUsers: UserEntry[];
  removeUserIds: string[];
}

interface SealInput {
  box: SecretBox;
  dataKey: Uint8Array;
}

function sealSecrets(input: SealInput, row: McpServerRow, field: 'headers' | 'stdio_env', stored: Record<string, StoredSecret>): Record<string, ValueRef> {
  const out: Record<string, ValueRef> = {};
  for (const [name, secret] of Object.entries(stored)) {
    if (secret.kind === 'env') {
      out[name] = { kind: 'env', name: secret.name };
    } else {
      const aad = field === 'headers' ? serverHeaderAad(row.id, name) : serverStdioEnvAad(row.id, name);
      const plaintext = input.box.open(secret.ciphertext, aad);
      out[name] = sealValue(input.dataKey, plaintext, `server:${row.name}:${field}:${name}`);
    }
  }
  return out;
}

function plainOrEnvRef(value: string): ValueRef {
  const env = parseEnvRef(value);
  return env ? { kind: 'env', name: env } : { kind: 'plain', value };
}

/** The URL nodes connect to: sealed whole when it carries a credential (reads show it redacted), else as is. */
function connectionRef(input: SealInput, row: McpServerRow): ValueRef | null {
  const value = row.connection_string;
  if (value === null) return null;
  if (row.connection_secret !== null) {
    return sealValue(input.dataKey, input.box.open(row.connection_secret, serverConnectionAad(row.id)), `server:${row.name}:url`);
  }
  return plainOrEnvRef(value);
}

function compileServer(input: SealInput, row: McpServerRow): ServerEntry {
  return {
    id: row.id,
    name: row.name,
    connectionType: row.connection_type,
    url: row.connection_type === 'STDIO' ? null : connectionRef(input, row),
    stdio:
      row.connection_type === 'STDIO' && row.stdio_command
        ? {
            command: row.stdio_command,
            args: JSON.parse(row.stdio_args) as string[],
            env: sealSecrets(input, row, 'stdio_env', JSON.parse(row.stdio_env) as Record<string, StoredSecret>),
          }
        : null,
    authType: row.auth_type,
    headers: sealSecrets(input, row, 'headers', JSON.parse(row.headers) as Record<string, StoredSecret>),
    perUserHeaderKeys: JSON.parse(row.per_user_header_keys) as string[],
    toolsToExecute: JSON.parse(row.tools_to_execute) as string[],
    allowedExtraHeaders: (JSON.parse(row.allowed_extra_headers) as string[]).map((h) => h.toLowerCase()),
    toolTimeoutMs: row.tool_timeout_ms,
    disabled: row.disabled !== 0,
    ...(row.tool_pricing !== '{}' ? { toolPricing: JSON.parse(row.tool_pricing) as Record<string, number> } : {}),
  };
}

/** The synced tool catalog, status and timestamps are not configuration: a catalog sync changes no signature. */
function serverSignature(row: McpServerRow): string {
  const { tools: _t, created_at: _c, updated_at: _u, status: _s, ...config } = row;
  return createHash('sha256').update(JSON.stringify(config)).digest('base64url');
}

const KEY_COLUMNS = ['id', 'name', 'key_hash', 'user_id', 'servers', 'expires_at', 'revoked_at', 'budgets', 'rate_limit', 'limits_fallback'] as const;

interface KeyRow {
  id: string;
  name: string;
  key_hash: string;
  user_id: string;
  servers: string;
  expires_at: string | null;
  revoked_at: string | null;
  budgets: string;
  rate_limit: string | null;
  limits_fallback: LimitsFallback;
}

// Most keys have no limits: skip parsing the default column values.
function keyLimits(row: KeyRow): KeyLimitsEntry | undefined {
  if (row.budgets === '[]' && row.rate_limit === null) return undefined;
  return limitsEntry(row.budgets, row.rate_limit, row.limits_fallback);
}

function keyEntry(row: KeyRow): KeyEntry {
  const limits = keyLimits(row);
  return {
    id: row.id,
    name: row.name,
    hash: row.key_hash,
    userId: row.user_id,
    servers: JSON.parse(row.servers) as KeyServerGrant[],
    expiresAt: row.expires_at,
    revoked: row.revoked_at !== null,
    ...(limits !== undefined ? { limits } : {}),
  };
}

const AUDIT_SETTING_COLUMNS = ['id', 'scope', 'target', 'content_logging', 'guardrail'] as const;

function auditSettingEntry(row: { scope: 'key' | 'server'; target: string; content_logging: number; guardrail: string }): AuditSettingEntry {
  return { scope: row.scope, target: row.target, contentLogging: row.content_logging === 1, guardrail: GuardrailPolicySchema.catch('off').parse(row.guardrail) };
}

/** A user as nodes see it; budgets only when the user has some (most have none). */
function userEntry(row: { id: string; email: string; budgets: string }): UserEntry {
  return row.budgets === '[]' ? { id: row.id, email: row.email } : { id: row.id, email: row.email, budgets: parseBudgets(row.budgets) };
}

const PROVIDER_COLUMNS = ['id', 'name', 'kind', 'base_url', 'base_url_secret', 'api_key', 'prices', 'created_at', 'updated_at'] as const;

/** The provider's configuration digest, in the server-signature map under `provider:<id>`. */
function providerSignature(row: ProviderRow): string {
  const { created_at: _c, updated_at: _u, ...config } = row;
  return createHash('sha256').update(JSON.stringify(config)).digest('base64url');
}

function providerSignatureId(id: string): string {
  return `provider:${id}`;
}

function compileProvider(input: SealInput, row: ProviderRow): ProviderEntry {
  const stored = parseProviderApiKey(row.api_key);
  return {
    id: row.id,
    name: row.name,
    kind: row.kind,
    // Sealed whole when it carries a credential (reads show it redacted), else as is.
    baseUrl: row.base_url_secret !== null ? sealValue(input.dataKey, baseUrlText(input.box, row), `provider:${row.name}:base_url`) : plainOrEnvRef(row.base_url),
    apiKey:
      stored.kind === 'env'
        ? { kind: 'env', name: stored.name }
        : sealValue(input.dataKey, input.box.open(stored.ciphertext, providerApiKeyAad(row.id)), `provider:${row.name}:api_key`),
    prices: parsePrices(row.prices),
  };
}

// Repeatable read: on PostgreSQL every statement then sees the same commit, so the rows match the
// version read first (SQLite's single writer gives this anyway).
function readOnce<T>(db: Kysely<Database>, work: (trx: Trx) => Promise<T>): Promise<T> {
  return db.transaction().setIsolationLevel('repeatable read').execute(work);
}

async function readState(trx: Db): Promise<{ version: number; sealEpoch: number; tombstoneFloor: number }> {
  const state = await trx.selectFrom('config_state').select(['version', 'seal_epoch', 'tombstone_floor']).where('id', '=', 1).executeTakeFirstOrThrow();
  return { version: Number(state.version), sealEpoch: Number(state.seal_epoch), tombstoneFloor: Number(state.tombstone_floor) };
}

/** The stored config version and seal epoch: one cheap read, to skip work when nothing moved. */
export async function readConfigState(db: Kysely<Database>): Promise<{ version: number; sealEpoch: number; tombstoneFloor: number }> {
  return readState(db);
}

/**
 * The whole snapshot at the current version, every secret opened with the master key and sealed under
 * `dataKey`. Costs a read of every row: the publisher calls it for a new node, a gap or a server change.
 */
export async function compileSnapshot(
  db: Kysely<Database>,
  options: { box: SecretBox; dataKey: Uint8Array; trustedKeys: PublicJwk[]; issuedAt: string },
): Promise<CompiledSnapshot> {
  return readOnce(db, async (trx) => {
    const state = await readState(trx);
    const serverRows = await trx
      .selectFrom('mcp_servers')
      .select(['id', 'name', 'connection_type', 'connection_string', 'connection_secret', 'stdio_command', 'stdio_args', 'stdio_env', 'auth_type', 'headers', 'per_user_header_keys', 'tools_to_execute', 'allowed_extra_headers', 'tool_timeout_ms', 'disabled', 'status', 'tools', 'tool_pricing', 'created_at', 'updated_at'])
      .orderBy('name')
      .execute();
    const users = (await trx.selectFrom('users').select(['id', 'email', 'budgets']).orderBy('id').execute()).map(userEntry);
    const keys = await trx.selectFrom('virtual_keys').select(KEY_COLUMNS).orderBy('id').execute();
    const sessionSecretRows = await readSessionSecretRows(trx);
    const providerRows = await trx.selectFrom('providers').select(PROVIDER_COLUMNS).orderBy('name').execute();
    const auditRows = await trx.selectFrom('audit_settings').select(AUDIT_SETTING_COLUMNS).orderBy('id').execute();
    const input = { box: options.box, dataKey: options.dataKey };
    const limits: Record<string, KeyLimitsEntry> = {};
    // The compact key table: grant lists deduplicated by their stored text, parsed once each.
    const grants: KeyServerGrant[][] = [];
    const grantIndex = new Map<string, number>();
    const rows: Array<string | number | null> = [];
    for (const k of keys) {
      let g = grantIndex.get(k.servers);
      if (g === undefined) {
        g = grants.length;
        grants.push(JSON.parse(k.servers) as KeyServerGrant[]);
        grantIndex.set(k.servers, g);
      }
      rows.push(k.id, k.name, k.key_hash, k.user_id, g, k.expires_at, k.revoked_at === null ? 0 : 1);
      const l = keyLimits(k);
      if (l !== undefined) limits[k.id] = l;
    }
    return {
      sealEpoch: state.sealEpoch,
      serverSignatures: new Map([
        ...serverRows.map((r): [string, string] => [r.id, serverSignature(r)]),
        ...providerRows.map((r): [string, string] => [providerSignatureId(r.id), providerSignature(r)]),
        ...auditRows.map((r): [string, string] => [`audit:${r.id}`, auditSettingSignature(r)]),
      ]),
      sessionSecretsDigest: sessionSecretsDigest(sessionSecretRows),
      payload: {
        format: SNAPSHOT_FORMAT,
        version: state.version,
        issuedAt: options.issuedAt,
        trustedKeys: options.trustedKeys,
        servers: serverRows.map((r) => compileServer(input, r)),
        users,
        keys: [],
        keyTable: { grants, rows },
        keyLimits: limits,
        providers: providerRows.map((r) => compileProvider(input, r)),
        sessionSecrets: sealSessionSecrets(sessionSecretRows, options.box, options.dataKey),
        auditSettings: auditRows.map(auditSettingEntry),
      },
    };
  });
}

async function tombstones(trx: Trx, table: string, since: number): Promise<string[]> {
  const rows = await trx
    .selectFrom('change_tombstones')
    .select('row_id')
    .where('table_name', '=', table)
    .where('change_version', '>', since)
    .execute();
  return rows.map((r) => r.row_id);
}

/**
 * The keys and users changed after `sinceVersion` (deleted rows from tombstones), and whether any server
 * changed its configuration compared with `knownServers`. Costs the changed rows only.
 */
export async function readChanges(
  db: Kysely<Database>,
  sinceVersion: number,
  knownServers: ServerSignatures,
  /** The session-secrets digest the caller has published; leave out to ignore rotations (keys and users only). */
  knownSessionSecrets?: string,
): Promise<ConfigChanges> {
  return readOnce(db, async (trx) => {
    // The floor is read in the same transaction as the tombstones below: a prune committing meanwhile is seen by both or neither.
    const state = await readState(trx);
    if (sinceVersion < state.tombstoneFloor) {
      return {
        sinceVersion,
        version: state.version,
        sealEpoch: state.sealEpoch,
        beforeFloor: true,
        serversChanged: false,
        sessionSecretsChanged: false,
        sessionSecretsDigest: knownSessionSecrets ?? '',
        upsertKeys: [],
        removeKeyIds: [],
        upsertUsers: [],
        removeUserIds: [],
      };
    }
    const changedServers = await trx
      .selectFrom('mcp_servers')
      .select(['id', 'name', 'connection_type', 'connection_string', 'connection_secret', 'stdio_command', 'stdio_args', 'stdio_env', 'auth_type', 'headers', 'per_user_header_keys', 'tools_to_execute', 'allowed_extra_headers', 'tool_timeout_ms', 'disabled', 'status', 'tools', 'tool_pricing', 'created_at', 'updated_at'])
      .where('change_version', '>', sinceVersion)
      .execute();
    const removedServers = (await tombstones(trx, 'mcp_servers', sinceVersion)).filter((id) => knownServers.has(id));
    const liveServerIds = new Set(changedServers.map((r) => r.id));
    const changedProviders = await trx.selectFrom('providers').select(PROVIDER_COLUMNS).where('change_version', '>', sinceVersion).execute();
    const liveProviderIds = new Set(changedProviders.map((r) => r.id));
    const removedProviders = (await tombstones(trx, 'providers', sinceVersion)).filter((id) => knownServers.has(providerSignatureId(id)) && !liveProviderIds.has(id));
    // Audit settings travel in whole snapshots only (few rows; nodes index them when a snapshot applies).
    const changedAudit = await trx.selectFrom('audit_settings').select(AUDIT_SETTING_COLUMNS).where('change_version', '>', sinceVersion).execute();
    const liveAuditIds = new Set(changedAudit.map((r) => r.id));
    const removedAudit = (await tombstones(trx, 'audit_settings', sinceVersion)).filter((id) => knownServers.has(`audit:${id}`) && !liveAuditIds.has(id));
    const serversChanged =
      removedAudit.length > 0 ||
      changedAudit.some((r) => knownServers.get(`audit:${r.id}`) !== auditSettingSignature(r)) ||
      removedServers.some((id) => !liveServerIds.has(id)) ||
      changedServers.some((r) => knownServers.get(r.id) !== serverSignature(r)) ||
      removedProviders.length > 0 ||
      changedProviders.some((r) => knownServers.get(providerSignatureId(r.id)) !== providerSignature(r));

    // No ORDER BY: with one, SQLite's planner may walk the primary key (every row) to avoid a sort, where
    // the change_version index reads the changed rows only.
    const users = (await trx.selectFrom('users').select(['id', 'email', 'budgets']).where('change_version', '>', sinceVersion).execute()).map(userEntry);
    const keys = await trx.selectFrom('virtual_keys').select(KEY_COLUMNS).where('change_version', '>', sinceVersion).execute();
    // A row deleted and then created again under the same id is an upsert, not a removal.
    const userIds = new Set(users.map((u) => u.id));
    const keyIds = new Set(keys.map((k) => k.id));
    // At most two rows: read whole rather than tracked per row.
    const secretsDigest = sessionSecretsDigest(await readSessionSecretRows(trx));
    return {
      sinceVersion,
      version: state.version,
      sealEpoch: state.sealEpoch,
      beforeFloor: false,
      serversChanged,
      sessionSecretsChanged: knownSessionSecrets !== undefined && secretsDigest !== knownSessionSecrets,
      sessionSecretsDigest: secretsDigest,
      upsertUsers: users,
      removeUserIds: (await tombstones(trx, 'users', sinceVersion)).filter((id) => !userIds.has(id)),
      upsertKeys: keys.map(keyEntry),
      removeKeyIds: (await tombstones(trx, 'virtual_keys', sinceVersion)).filter((id) => !keyIds.has(id)),
    };
  });
}

/** The signed-delta payload for `changes` (keys and users only; server changes travel as whole snapshots). */
export function deltaPayload(changes: ConfigChanges, trustedKeys: PublicJwk[], issuedAt: string): SnapshotDelta {
  return {
    format: SNAPSHOT_FORMAT,
    kind: 'delta',
    baseVersion: changes.sinceVersion,
    version: changes.version,
    issuedAt,
    trustedKeys,
    upsertKeys: changes.upsertKeys,
    removeKeyIds: changes.removeKeyIds,
    upsertUsers: changes.upsertUsers,
    removeUserIds: changes.removeUserIds,
  };
}

/** Which secret holds which role: equal digests mean no rotation since (the secrets themselves never change). */
function sessionSecretsDigest(rows: readonly SessionSecretRow[]): string {
  return rows.map((r) => `${r.role}:${r.id}`).sort().join(',');
}

/** Opens the session secrets with the master key and seals them under the snapshot's data key. */
function sealSessionSecrets(rows: readonly SessionSecretRow[], box: SecretBox, dataKey: Uint8Array): SessionSecrets | null {
  const seal = (row: SessionSecretRow): SessionSecrets['current'] => {
    const opened = openSessionSecretRow(box, row);
    return { id: opened.id, secret: sealValue(dataKey, opened.secret, sessionSecretAad(opened.id)) };
  };
  const current = rows.find((r) => r.role === 'current');
  const previous = rows.find((r) => r.role === 'previous');
  return current ? { current: seal(current), previous: previous ? seal(previous) : null } : null;
}
