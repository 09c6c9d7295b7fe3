/**
 * Storage for the per-user connect flow (0011_oauth): one-time connect links (hash only; spent in one
 * statement so a replayed link fails), the short browser sessions a spent link becomes (cookie value
 * hashed, with the form's CSRF token), and per-user header sets (values sealed as one JSON object).
 * It renders nothing and checks no upstream.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Selectable } from 'kysely';
import type { ConnectKind, ConnectSessionsTable, HeaderSetStatus, UserHeaderSetsTable } from '../db/schema.js';
import { bumpConfigVersion } from './config-state.js';
import { nowIso, type Db, type Trx } from './transaction.js';

export const CONNECT_LINK_TTL_MS = 15 * 60_000;
export const CONNECT_SESSION_TTL_MS = 15 * 60_000;

export type ConnectSessionRow = Selectable<ConnectSessionsTable>;
export type HeaderSetRow = Selectable<UserHeaderSetsTable>;

function hash(value: string): string {
  return createHash('sha256').update(value).digest('base64url');
}

function randomToken(prefix: string): string {
  return prefix + randomBytes(32).toString('base64url');
}

export function headerSetAad(serverId: string, userId: string): string {
  return `user_header_sets:${serverId}:${userId}`;
}

/** A fresh one-time link token for (user, server); only its hash is stored. */
export async function createConnectLink(db: Db, userId: string, serverId: string, kind: ConnectKind): Promise<string> {
  const token = randomToken('ghc_');
  const now = Date.now();
  await db
    .insertInto('connect_links')
    .values({
      token_hash: hash(token),
      user_id: userId,
      server_id: serverId,
      kind,
      created_at: new Date(now).toISOString(),
      expires_at: new Date(now + CONNECT_LINK_TTL_MS).toISOString(),
      used_at: null,
    })
    .execute();
  // Old links are kept a day (so a late click says "expired" rather than "unknown"), then dropped.
  await db.deleteFrom('connect_links').where('expires_at', '<', new Date(now - 86_400_000).toISOString()).execute();
  return token;
}

export type SpentLink = { ok: true; userId: string; serverId: string; kind: ConnectKind } | { ok: false; reason: 'invalid' | 'used' | 'expired' };

export type LinkState = { ok: true } | { ok: false; reason: 'invalid' | 'used' | 'expired' };

/**
 * What spending the link now would say, without spending it: the GET of a link only shows a page, so link
 * previews (chat unfurlers, mail scanners) that fetch it neither use it up nor act on it.
 */
export async function peekConnectLink(db: Db, token: string): Promise<LinkState> {
  const row = await db.selectFrom('connect_links').select(['used_at', 'expires_at']).where('token_hash', '=', hash(token)).executeTakeFirst();
  if (!row) return { ok: false, reason: 'invalid' };
  if (row.used_at !== null) return { ok: false, reason: 'used' };
  return row.expires_at > nowIso() ? { ok: true } : { ok: false, reason: 'expired' };
}

/** Spends a link: only the first use of an unexpired link succeeds (one conditional UPDATE). */
export async function spendConnectLink(db: Db, token: string): Promise<SpentLink> {
  const tokenHash = hash(token);
  const now = nowIso();
  const result = await db
    .updateTable('connect_links')
    .set({ used_at: now })
    .where('token_hash', '=', tokenHash)
    .where('used_at', 'is', null)
    .where('expires_at', '>', now)
    .executeTakeFirst();
  const row = await db.selectFrom('connect_links').selectAll().where('token_hash', '=', tokenHash).executeTakeFirst();
  if (!row) return { ok: false, reason: 'invalid' };
  if (Number(result.numUpdatedRows) === 1) return { ok: true, userId: row.user_id, serverId: row.server_id, kind: row.kind };
  return { ok: false, reason: row.used_at !== null ? 'used' : 'expired' };
}

export interface NewConnectSession {
  /** The cookie value (shown once, stored hashed). */
  sessionId: string;
  csrfToken: string;
}

export async function createConnectSession(db: Db, userId: string, serverId: string, kind: ConnectKind): Promise<NewConnectSession> {
  const sessionId = randomToken('ghs_');
  const csrfToken = randomBytes(32).toString('base64url');
  const now = Date.now();
  await db
    .insertInto('connect_sessions')
    .values({
      id_hash: hash(sessionId),
      user_id: userId,
      server_id: serverId,
      kind,
      csrf_token: csrfToken,
      created_at: new Date(now).toISOString(),
      expires_at: new Date(now + CONNECT_SESSION_TTL_MS).toISOString(),
    })
    .execute();
  await db.deleteFrom('connect_sessions').where('expires_at', '<', new Date(now).toISOString()).execute();
  return { sessionId, csrfToken };
}

export async function getConnectSession(db: Db, sessionId: string): Promise<ConnectSessionRow | null> {
  const row = await db.selectFrom('connect_sessions').selectAll().where('id_hash', '=', hash(sessionId)).executeTakeFirst();
  if (!row || row.expires_at <= nowIso()) return null;
  return row;
}

export async function endConnectSession(db: Db, sessionId: string): Promise<void> {
  await db.deleteFrom('connect_sessions').where('id_hash', '=', hash(sessionId)).execute();
}

// ---- Per-user header sets ----

export async function getHeaderSet(db: Db, serverId: string, userId: string): Promise<HeaderSetRow | null> {
  return (await db.selectFrom('user_header_sets').selectAll().where('server_id', '=', serverId).where('user_id', '=', userId).executeTakeFirst()) ?? null;
}

/** Stores (or replaces) a user's header values, already sealed under headerSetAad. */
export async function saveHeaderSet(db: Db, serverId: string, userId: string, sealedValues: string, keys: readonly string[]): Promise<void> {
  const now = nowIso();
  await db
    .insertInto('user_header_sets')
    .values({ server_id: serverId, user_id: userId, header_values: sealedValues, header_keys: JSON.stringify(keys), status: 'ACTIVE', created_at: now, updated_at: now })
    .onConflict((oc) =>
      oc.columns(['server_id', 'user_id']).doUpdateSet((eb) => ({
        header_values: sealedValues,
        header_keys: JSON.stringify(keys),
        status: 'ACTIVE' as HeaderSetStatus,
        generation: eb('user_header_sets.generation', '+', 1),
        updated_at: now,
      })),
    )
    .execute();
}

export async function deleteHeaderSet(db: Db, serverId: string, userId: string): Promise<boolean> {
  const result = await db.deleteFrom('user_header_sets').where('server_id', '=', serverId).where('user_id', '=', userId).executeTakeFirst();
  return Number(result.numDeletedRows) > 0;
}

export async function markHeaderSet(db: Db, serverId: string, userId: string, status: HeaderSetStatus): Promise<void> {
  await db
    .updateTable('user_header_sets')
    .set((eb) => ({ status, generation: eb('generation', '+', 1), updated_at: nowIso() }))
    .where('server_id', '=', serverId)
    .where('user_id', '=', userId)
    .where('status', '!=', status)
    .execute();
}

export async function listUserHeaderSets(db: Db, userId: string): Promise<HeaderSetRow[]> {
  return db.selectFrom('user_header_sets').selectAll().where('user_id', '=', userId).orderBy('created_at').execute();
}

export async function listServerHeaderSets(db: Db, serverId: string): Promise<HeaderSetRow[]> {
  return db.selectFrom('user_header_sets').selectAll().where('server_id', '=', serverId).orderBy('created_at').execute();
}

/** Whether a stored set still matches the server's keys (changing perUserHeaderKeys makes sets NEEDS_UPDATE). */
export function headerSetCurrent(row: HeaderSetRow, perUserHeaderKeys: readonly string[]): boolean {
  const stored = (JSON.parse(row.header_keys) as string[]).map((k) => k.toLowerCase()).sort();
  const wanted = perUserHeaderKeys.map((k) => k.toLowerCase()).sort();
  return row.status === 'ACTIVE' && stored.length === wanted.length && stored.every((k, i) => k === wanted[i]);
}

/**
 * Tells nodes a user's credentials changed (revoked, replaced, cleared): the user row is touched in a
 * config change, so every node receives a delta for that user and drops the credentials it cached.
 * Per-user credentials themselves never ride in snapshots; only this nudge does.
 */
export async function announceCredentialChange(trx: Trx, userId: string): Promise<void> {
  await bumpConfigVersion(trx);
  await trx.updateTable('users').set({ updated_at: nowIso() }).where('id', '=', userId).execute();
}
