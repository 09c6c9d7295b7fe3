/**
 * Session secrets (issue 9 item 2): the control plane generates the secret nodes derive the sealed MCP
 * session key from, keeps it encrypted at rest (secret-box under the master key), keeps it stable across
 * snapshot versions, and rotates it on request: the new secret becomes `current` (sealing new session ids)
 * and the old one `previous` (still opening ids issued before), so a rotation breaks no live session; a
 * second rotation retires the oldest. Creating or rotating changes what nodes serve, so it bumps the
 * config version. It does not seal secrets into snapshots (snapshot/compile.ts does).
 */
import { randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { SecretBox } from '../crypto/secret-box.js';
import type { Database, SessionSecretRow } from '../db/schema.js';
import { bumpConfigVersion } from './config-state.js';
import { inTransaction, nowIso, type Db } from './transaction.js';

export interface SessionSecretInfo {
  id: string;
  createdAt: string;
}

export interface SessionSecretsInfo {
  current: SessionSecretInfo | null;
  previous: SessionSecretInfo | null;
}

/** A secret opened for sealing into a snapshot: never logged, never returned by the API. */
export interface OpenedSessionSecret {
  id: string;
  /** base64url of 32 random bytes. */
  secret: string;
}

function aad(id: string): string {
  return `session_secrets:${id}`;
}

function newRow(box: SecretBox): SessionSecretRow {
  // 9 random bytes → 12 URL-safe characters: unique enough for at most two live ids, short in every session id.
  const id = randomBytes(9).toString('base64url');
  return { role: 'current', id, secret: box.seal(randomBytes(32).toString('base64url'), aad(id)), created_at: nowIso() };
}

/**
 * Makes sure a current secret exists (at control-plane start). Returns whether this call created it; when
 * two replicas race, the primary key on `role` lets exactly one insert win.
 */
export async function ensureSessionSecret(db: Kysely<Database>, box: SecretBox): Promise<boolean> {
  const existing = await db.selectFrom('session_secrets').select('id').where('role', '=', 'current').executeTakeFirst();
  if (existing) return false;
  return db.transaction().execute(async (trx) => {
    await bumpConfigVersion(trx);
    const result = await trx
      .insertInto('session_secrets')
      .values(newRow(box))
      .onConflict((oc) => oc.column('role').doNothing())
      .executeTakeFirst();
    return Number(result.numInsertedOrUpdatedRows ?? 0) > 0;
  });
}

/** New current secret; the old current one becomes previous; the old previous one is dropped. */
export async function rotateSessionSecret(db: Db, box: SecretBox): Promise<SessionSecretsInfo> {
  return inTransaction(db, async (trx) => {
    // The config lock first (one lock order for every config change), which also serialises rotations.
    await bumpConfigVersion(trx);
    await trx.deleteFrom('session_secrets').where('role', '=', 'previous').execute();
    await trx.updateTable('session_secrets').set({ role: 'previous' }).where('role', '=', 'current').execute();
    await trx.insertInto('session_secrets').values(newRow(box)).execute();
    return getSessionSecretsInfo(trx);
  });
}

export async function readSessionSecretRows(db: Db): Promise<SessionSecretRow[]> {
  return db.selectFrom('session_secrets').selectAll().orderBy('role').execute();
}

/** Ids and ages only: what the API may show. */
export async function getSessionSecretsInfo(db: Db): Promise<SessionSecretsInfo> {
  const rows = await db.selectFrom('session_secrets').select(['role', 'id', 'created_at']).execute();
  const info = (role: SessionSecretRow['role']): SessionSecretInfo | null => {
    const row = rows.find((r) => r.role === role);
    return row ? { id: row.id, createdAt: row.created_at } : null;
  };
  return { current: info('current'), previous: info('previous') };
}

export function openSessionSecretRow(box: SecretBox, row: SessionSecretRow): OpenedSessionSecret {
  return { id: row.id, secret: box.open(row.secret, aad(row.id)) };
}
