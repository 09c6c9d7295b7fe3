/**
 * Reads what nodes need from the database (SPEC §3): every server, user and key, in one transaction so it
 * matches exactly one config version; and seals server secrets and session secrets for a snapshot (opened
 * under the master key, sealed under the snapshot's data key). The publisher assembles, diffs, signs and sends.
 */
import { createHash } from 'node:crypto';
import type { Kysely } from 'kysely';
import { sealValue } from '../../data-plane/snapshot/seal.js';
import {
  sessionSecretAad,
  type KeyEntry,
  type KeyServerGrant,
  type ServerEntry,
  type SessionSecrets,
  type UserEntry,
  type ValueRef,
} from '../../data-plane/snapshot/schema.js';
import { parseEnvRef, type SecretBox, type StoredSecret } from '../crypto/secret-box.js';
import type { Database, McpServerRow, SessionSecretRow } from '../db/schema.js';
import { serverHeaderAad, serverStdioEnvAad } from '../repos/mcp-servers.js';
import { openSessionSecretRow, readSessionSecretRows } from '../repos/session-secrets.js';

interface SealInput {
  box: SecretBox;
  dataKey: Uint8Array;
}

function sealSecrets(
  input: SealInput,
  row: McpServerRow,
  field: 'headers' | 'stdio_env',
  stored: Record<string, StoredSecret>,
): Record<string, ValueRef> {
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

function connectionRef(value: string | null): ValueRef | null {
  if (value === null) return null;
  const env = parseEnvRef(value);
  return env ? { kind: 'env', name: env } : { kind: 'plain', value };
}

function compileServer(input: SealInput, row: McpServerRow): ServerEntry {
  return {
    id: row.id,
    name: row.name,
    connectionType: row.connection_type,
    url: row.connection_type === 'STDIO' ? null : connectionRef(row.connection_string),
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
  };
}

/** Everything nodes get, as read from the database at one config version, before any secret is sealed. */
export interface ConfigRead {
  version: number;
  serverRows: McpServerRow[];
  /** Digest of the server rows as stored: equal digests mean the servers (and their secrets) did not change. */
  serversDigest: string;
  users: UserEntry[];
  /** Key rows as stored: parsed into `KeyEntry`s only when needed (changed keys, or a whole snapshot). */
  keyRows: KeyRow[];
  /** Session secrets as stored (sealed under the master key). */
  sessionSecretRows: SessionSecretRow[];
  /** Which session secrets hold which role: equal digests mean no rotation since the last read. */
  sessionSecretsDigest: string;
}

export interface KeyRow {
  id: string;
  name: string;
  key_hash: string;
  user_id: string;
  servers: string;
  expires_at: string | null;
  revoked_at: string | null;
}

export function keyEntry(row: KeyRow): KeyEntry {
  return {
    id: row.id,
    name: row.name,
    hash: row.key_hash,
    userId: row.user_id,
    servers: JSON.parse(row.servers) as KeyServerGrant[],
    expiresAt: row.expires_at,
    revoked: row.revoked_at !== null,
  };
}

/**
 * Everything of a key row that its `KeyEntry` depends on, as one string: equal strings mean an unchanged
 * entry, so diffing 100,000 keys needs no JSON parsing or serialising.
 */
export function keyRowSignature(row: KeyRow): string {
  return `${row.name}\u0000${row.key_hash}\u0000${row.user_id}\u0000${row.servers}\u0000${row.expires_at ?? ''}\u0000${row.revoked_at === null ? 0 : 1}`;
}

export async function readConfig(db: Kysely<Database>): Promise<ConfigRead> {
  // Repeatable read: on PostgreSQL every statement then sees the same commit, so the rows match the
  // version read first (SQLite's single writer gives this anyway).
  return db.transaction().setIsolationLevel('repeatable read').execute(async (trx) => {
    const state = await trx.selectFrom('config_state').select('version').where('id', '=', 1).executeTakeFirstOrThrow();
    const serverRows = await trx.selectFrom('mcp_servers').selectAll().orderBy('name').execute();
    const users = await trx.selectFrom('users').select(['id', 'email']).orderBy('id').execute();
    const keys = await trx
      .selectFrom('virtual_keys')
      .select(['id', 'name', 'key_hash', 'user_id', 'servers', 'expires_at', 'revoked_at'])
      .orderBy('id')
      .execute();
    const sessionSecretRows = await readSessionSecretRows(trx);
    // The synced tool catalog and timestamps are not configuration: leave them out of the digest.
    const configColumns = serverRows.map(({ tools: _tools, created_at: _c, updated_at: _u, status: _s, ...rest }) => rest);
    return {
      version: Number(state.version),
      serverRows,
      serversDigest: createHash('sha256').update(JSON.stringify(configColumns)).digest('base64url'),
      users,
      keyRows: keys,
      sessionSecretRows,
      sessionSecretsDigest: sessionSecretRows.map((r) => `${r.role}:${r.id}`).join(','),
    };
  });
}

/** Opens each server secret with the master key and seals it under the snapshot's data key. */
export function sealServers(rows: readonly McpServerRow[], box: SecretBox, dataKey: Uint8Array): ServerEntry[] {
  return rows.map((row) => compileServer({ box, dataKey }, row));
}

/** Opens the session secrets with the master key and seals them under the snapshot's data key. */
export function sealSessionSecrets(rows: readonly SessionSecretRow[], box: SecretBox, dataKey: Uint8Array): SessionSecrets | null {
  const seal = (row: SessionSecretRow): SessionSecrets['current'] => {
    const opened = openSessionSecretRow(box, row);
    return { id: opened.id, secret: sealValue(dataKey, opened.secret, sessionSecretAad(opened.id)) };
  };
  const current = rows.find((r) => r.role === 'current');
  const previous = rows.find((r) => r.role === 'previous');
  return current ? { current: seal(current), previous: previous ? seal(previous) : null } : null;
}
