/**
 * Data-plane nodes as the control plane knows them: reports (applied version, missing env vars, last
 * rejected snapshot, health), stream connection state with last seen, and per-node identity: one-time
 * enrollment tokens, enrollment of a node's public keys, approval, revocation (which moves the seal epoch
 * so the next data key is new) and forgetting. Reports are not config changes. It does not verify a
 * request's credential (http/node-auth.ts does) or decide what nodes receive.
 */
import { randomUUID } from 'node:crypto';
import type { JWK } from 'jose';
import { z } from 'zod';
import { canonicalPublicJwk, nodeFingerprint } from '../../data-plane/snapshot/node-credential.js';
import type { NodeEnrollment as NodeEnrollmentBody, NodeReport } from '../../data-plane/snapshot/stream-protocol.js';
import { constantTimeEqual, hashToken, issueToken } from '../crypto/tokens.js';
import type { NodeEnrollment, NodeRow } from '../db/schema.js';
import { InputError } from './errors.js';
import { takeLock } from './locks.js';
import { applyKeysetPage, encodeCursor, type PageRequest } from './pagination.js';
import { inTransaction, nowIso, type Db } from './transaction.js';

export const ENROLLMENT_TOKEN_PREFIX = 'ghe_';
/** A node is CONNECTED while its stream is open and a replica vouched for it this recently. */
export const CONNECTED_WITHIN_MS = 60_000;
/** Unauthenticated enrollments awaiting approval are capped, so nobody can fill the table. */
export const MAX_PENDING_NODES = 100;

export interface DataPlaneNode {
  id: string;
  appliedVersion: number | null;
  missingEnv: Array<{ name: string; servers: string[] }>;
  lastRejection: { code: string; message: string; at: string } | null;
  health: string;
  connected: boolean;
  startedAt: string | null;
  lastSeenAt: string;
  /** CONNECTED: a stream is open and was vouched for within CONNECTED_WITHIN_MS; else DISCONNECTED. */
  state: 'CONNECTED' | 'DISCONNECTED';
  enrollment: NodeEnrollment;
  identityJwk: JWK | null;
  sealingJwk: JWK | null;
  enrolledAt: string | null;
  approvedAt: string | null;
  revokedAt: string | null;
}

const MissingEnvSchema = z.array(z.object({ name: z.string(), servers: z.array(z.string()) }));
const RejectionSchema = z.object({ code: z.string(), message: z.string(), at: z.string() });

function parseJwk(text: string | null): JWK | null {
  return text === null ? null : (JSON.parse(text) as JWK);
}

function toNode(row: NodeRow, now: number = Date.now()): DataPlaneNode {
  const connected = row.connected !== 0;
  return {
    id: row.id,
    appliedVersion: row.applied_version === null ? null : Number(row.applied_version),
    missingEnv: MissingEnvSchema.parse(JSON.parse(row.missing_env)),
    lastRejection: row.last_rejection === null ? null : RejectionSchema.parse(JSON.parse(row.last_rejection)),
    health: row.health,
    connected: row.connected !== 0,
    startedAt: row.started_at,
    lastSeenAt: row.last_seen_at,
    state: connected && now - Date.parse(row.last_seen_at) <= CONNECTED_WITHIN_MS ? 'CONNECTED' : 'DISCONNECTED',
    enrollment: row.enrollment,
    identityJwk: parseJwk(row.identity_jwk),
    sealingJwk: parseJwk(row.sealing_jwk),
    enrolledAt: row.enrolled_at,
    approvedAt: row.approved_at,
    revokedAt: row.revoked_at,
  };
}

/** The fingerprint an admin compares before approving (null for shared-token nodes). */
export async function fingerprintOf(node: DataPlaneNode): Promise<string | null> {
  return node.identityJwk && node.sealingJwk ? nodeFingerprint(node.identityJwk, node.sealingJwk) : null;
}

export async function getNode(db: Db, id: string): Promise<DataPlaneNode | null> {
  const row = await db.selectFrom('nodes').selectAll().where('id', '=', id).executeTakeFirst();
  return row ? toNode(row) : null;
}

/** Ordered by node id: nodes have no creation time of their own. */
export async function listNodes(db: Db, page: PageRequest): Promise<DataPlaneNode[]> {
  const rows = await applyKeysetPage(db.selectFrom('nodes').selectAll(), ['id'], page).execute();
  return rows.map(toNode);
}

export function nodeCursor(node: DataPlaneNode): string {
  return encodeCursor([node.id]);
}

/** Upserts what a node reported (a validated `NodeReport`); the node counts as seen now. */
export async function recordNodeReport(db: Db, report: NodeReport, at: string = nowIso()): Promise<void> {
  const values = {
    applied_version: report.appliedVersion,
    missing_env: JSON.stringify(report.missingEnv),
    last_rejection: report.lastRejection === null ? null : JSON.stringify(report.lastRejection),
    health: report.health,
    started_at: report.startedAt,
    last_seen_at: at,
  };
  await db
    .insertInto('nodes')
    .values({ id: report.nodeId, connected: 0, ...values })
    .onConflict((oc) => oc.column('id').doUpdateSet(values))
    .execute();
}

/** Marks a node's stream as open or closed; a node first seen by its stream starts as UNKNOWN health. */
export async function setNodeConnected(db: Db, id: string, connected: boolean, at: string = nowIso()): Promise<void> {
  await db
    .insertInto('nodes')
    .values({ id, connected: connected ? 1 : 0, health: 'UNKNOWN', missing_env: '[]', last_seen_at: at })
    .onConflict((oc) => oc.column('id').doUpdateSet({ connected: connected ? 1 : 0, last_seen_at: at }))
    .execute();
}

/** Which of these nodes are revoked (their streams must close). */
export async function revokedNodeIds(db: Db, ids: readonly string[]): Promise<string[]> {
  if (ids.length === 0) return [];
  const rows = await db.selectFrom('nodes').select('id').where('id', 'in', [...ids]).where('enrollment', '=', 'REVOKED').execute();
  return rows.map((r) => r.id);
}

/** Every open stream on one replica, vouched for in one statement (the heartbeat that keeps them CONNECTED). */
export async function touchConnectedNodes(db: Db, ids: readonly string[], at: string = nowIso()): Promise<void> {
  if (ids.length === 0) return;
  await db.updateTable('nodes').set({ connected: 1, last_seen_at: at }).where('id', 'in', [...ids]).execute();
}

// ---- Identity ----

export interface NodeCredentials {
  id: string;
  enrollment: NodeEnrollment;
  identityJwk: JWK | null;
  sealingJwk: JWK | null;
}

export async function getNodeCredentials(db: Db, id: string): Promise<NodeCredentials | null> {
  const row = await db.selectFrom('nodes').select(['id', 'enrollment', 'identity_jwk', 'sealing_jwk']).where('id', '=', id).executeTakeFirst();
  return row ? { id: row.id, enrollment: row.enrollment, identityJwk: parseJwk(row.identity_jwk), sealingJwk: parseJwk(row.sealing_jwk) } : null;
}

export interface IssuedEnrollmentToken {
  token: string;
  nodeId: string | null;
  expiresAt: string;
}

/** A one-time token a node presents with its public keys to be enrolled and approved at once. */
export async function issueEnrollmentToken(db: Db, input: { nodeId?: string | null; ttlMinutes?: number | null }, now: Date = new Date()): Promise<IssuedEnrollmentToken> {
  const ttl = input.ttlMinutes ?? 60;
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > 7 * 24 * 60) throw new InputError('INVALID_VALUE', 'ttlMinutes', 'ttlMinutes must be an integer from 1 to 10080 (a week)');
  const nodeId = input.nodeId?.trim() || null;
  if (nodeId !== null && !/^[A-Za-z0-9._:-]{1,200}$/.test(nodeId)) {
    throw new InputError('INVALID_VALUE', 'nodeId', 'a node id is 1-200 of [A-Za-z0-9._:-]');
  }
  const token = issueToken(ENROLLMENT_TOKEN_PREFIX);
  const expiresAt = new Date(now.getTime() + ttl * 60_000).toISOString();
  await db
    .insertInto('node_enrollment_tokens')
    .values({ id: randomUUID(), token_hash: token.hash, node_id: nodeId, created_at: now.toISOString(), expires_at: expiresAt, used_at: null, used_by: null })
    .execute();
  return { token: token.value, nodeId, expiresAt };
}

export type EnrollOutcome =
  | { ok: true; status: 'PENDING' | 'APPROVED'; fingerprint: string }
  | { ok: false; code: 'enrollment_token_invalid' | 'node_exists' | 'node_revoked' | 'too_many_pending_nodes' };

function sameKey(stored: string | null, jwk: JWK): boolean {
  return stored !== null && stored === JSON.stringify(canonicalPublicJwk(jwk));
}

/**
 * A node presents its public keys. With a valid one-time token it is APPROVED at once (the token is spent
 * in the same transaction); without one it is PENDING until an admin approves its fingerprint. A node id
 * enrolled with other keys is refused unless the token was issued for that node id (re-keying).
 */
export async function enrollNode(db: Db, body: NodeEnrollmentBody, presentedToken: string | null, now: Date = new Date()): Promise<EnrollOutcome> {
  const identity = JSON.stringify(canonicalPublicJwk(body.identityJwk));
  const sealing = JSON.stringify(canonicalPublicJwk(body.sealingJwk));
  const fingerprint = await nodeFingerprint(body.identityJwk, body.sealingJwk);
  const at = now.toISOString();
  return inTransaction(db, async (trx): Promise<EnrollOutcome> => {
    await takeLock(trx, 'nodes');
    const existing = await trx.selectFrom('nodes').selectAll().where('id', '=', body.nodeId).executeTakeFirst();
    const sameKeys = existing !== undefined && sameKey(existing.identity_jwk, body.identityJwk) && sameKey(existing.sealing_jwk, body.sealingJwk);
    const values = { enrollment: 'APPROVED' as NodeEnrollment, identity_jwk: identity, sealing_jwk: sealing, enrolled_at: at, approved_at: at, revoked_at: null };

    if (presentedToken !== null) {
      const hash = hashToken(presentedToken);
      const token = await trx.selectFrom('node_enrollment_tokens').selectAll().where('token_hash', '=', hash).executeTakeFirst();
      if (!token || !constantTimeEqual(token.token_hash, hash) || token.used_at !== null || token.expires_at <= at || (token.node_id !== null && token.node_id !== body.nodeId)) {
        return { ok: false, code: 'enrollment_token_invalid' };
      }
      const boundHere = token.node_id === body.nodeId;
      if (existing && existing.enrollment !== 'SHARED_TOKEN' && existing.enrollment !== 'PENDING' && !sameKeys && !boundHere) return { ok: false, code: 'node_exists' };
      if (existing?.enrollment === 'REVOKED' && !boundHere) return { ok: false, code: 'node_revoked' };
      const spent = await trx.updateTable('node_enrollment_tokens').set({ used_at: at, used_by: body.nodeId }).where('id', '=', token.id).where('used_at', 'is', null).executeTakeFirst();
      if (Number(spent.numUpdatedRows) !== 1) return { ok: false, code: 'enrollment_token_invalid' };
      await upsertNode(trx, body.nodeId, values, at);
      return { ok: true, status: 'APPROVED', fingerprint };
    }

    if (existing?.enrollment === 'REVOKED') return { ok: false, code: 'node_revoked' };
    if (existing?.enrollment === 'APPROVED') return sameKeys ? { ok: true, status: 'APPROVED', fingerprint } : { ok: false, code: 'node_exists' };
    if (existing?.enrollment !== 'PENDING') {
      const pending = await trx.selectFrom('nodes').select((eb) => eb.fn.countAll<number>().as('n')).where('enrollment', '=', 'PENDING').executeTakeFirstOrThrow();
      if (Number(pending.n) >= MAX_PENDING_NODES) return { ok: false, code: 'too_many_pending_nodes' };
    }
    // A pending node may present new keys (it restarted without its state dir): the admin approves a fingerprint.
    await upsertNode(trx, body.nodeId, { ...values, enrollment: 'PENDING', approved_at: null }, at);
    return { ok: true, status: 'PENDING', fingerprint };
  });
}

async function upsertNode(
  trx: Db,
  id: string,
  values: { enrollment: NodeEnrollment; identity_jwk: string; sealing_jwk: string; enrolled_at: string; approved_at: string | null; revoked_at: null },
  at: string,
): Promise<void> {
  await trx
    .insertInto('nodes')
    .values({ id, connected: 0, health: 'UNKNOWN', missing_env: '[]', last_seen_at: at, ...values })
    .onConflict((oc) => oc.column('id').doUpdateSet(values))
    .execute();
}

async function requireNode(db: Db, id: string): Promise<DataPlaneNode> {
  const node = await getNode(db, id);
  if (!node) throw new InputError('NOT_FOUND', 'id', `no node with id "${id}"`);
  return node;
}

/** Approves a PENDING node whose keys have exactly this fingerprint (what the node printed). */
export async function approveNode(db: Db, id: string, fingerprint: string, now: Date = new Date()): Promise<DataPlaneNode> {
  return inTransaction(db, async (trx) => {
    await takeLock(trx, 'nodes');
    const node = await requireNode(trx, id);
    if (node.enrollment === 'APPROVED') return node;
    if (node.enrollment !== 'PENDING') throw new InputError('NOT_PENDING', 'id', `node "${id}" is ${node.enrollment}, not awaiting approval`);
    const actual = await fingerprintOf(node);
    if (actual === null || !constantTimeEqual(actual, fingerprint.trim().toLowerCase())) {
      throw new InputError('FINGERPRINT_MISMATCH', 'fingerprint', `the fingerprint does not match the keys node "${id}" presented`);
    }
    await trx.updateTable('nodes').set({ enrollment: 'APPROVED', approved_at: now.toISOString() }).where('id', '=', id).execute();
    return requireNode(trx, id);
  });
}

/**
 * Revokes a node: its streams close on every replica and the seal epoch moves, so everything sealed from
 * now on is under a data key it never gets. Idempotent.
 */
export async function revokeNode(db: Db, id: string, now: Date = new Date()): Promise<DataPlaneNode> {
  return inTransaction(db, async (trx) => {
    await takeLock(trx, 'nodes');
    const node = await requireNode(trx, id);
    if (node.enrollment === 'REVOKED') return node;
    await trx.updateTable('config_state').set((eb) => ({ seal_epoch: eb('seal_epoch', '+', 1) })).where('id', '=', 1).execute();
    await trx.updateTable('nodes').set({ enrollment: 'REVOKED', revoked_at: now.toISOString() }).where('id', '=', id).execute();
    return requireNode(trx, id);
  });
}

/**
 * Removes a node that is not connected (it went away for good), with its enrolled keys: if it comes back
 * it must enroll again (with a new token, or awaiting an admin's approval as any unknown node does).
 */
export async function forgetNode(db: Db, id: string, now: number = Date.now()): Promise<DataPlaneNode> {
  return inTransaction(db, async (trx) => {
    await takeLock(trx, 'nodes');
    const row = await trx.selectFrom('nodes').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw new InputError('NOT_FOUND', 'id', `no node with id "${id}"`);
    const node = toNode(row, now);
    if (node.state === 'CONNECTED') throw new InputError('NODE_CONNECTED', 'id', `node "${id}" is connected; stop it first (or revokeNode)`);
    await trx.deleteFrom('nodes').where('id', '=', id).execute();
    return node;
  });
}
