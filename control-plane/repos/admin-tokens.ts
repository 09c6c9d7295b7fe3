/**
 * Admin tokens for the GraphQL API (`gha_…`, ADMIN or VIEWER): issuing (value returned once, hash stored),
 * revoking, verifying a presented token, and the bootstrap token at first start. Not a config change:
 * nothing here reaches nodes. It does not parse HTTP headers or answer 401s (graphql/context.ts does).
 */
import { randomUUID } from 'node:crypto';
import { ADMIN_TOKEN_PREFIX, constantTimeEqual, hashToken, issueToken, previewToken } from '../crypto/tokens.js';
import type { AdminTokenRow } from '../db/schema.js';
import { InputError, IssueList, isUniqueViolation } from './errors.js';
import { applyKeysetPage, encodeCursor, type PageRequest } from './pagination.js';
import { takeLock } from './locks.js';
import { inTransaction, nowIso, type Db } from './transaction.js';

export type AdminRole = 'ADMIN' | 'VIEWER';

export interface AdminToken {
  id: string;
  name: string;
  role: AdminRole;
  tokenPreview: string;
  createdAt: string;
  revokedAt: string | null;
  lastUsedAt: string | null;
}

/** Who is calling the API, once their token is verified. */
export interface AdminPrincipal {
  tokenId: string;
  name: string;
  role: AdminRole;
}

export interface CreateAdminTokenInput {
  name: string;
  role: AdminRole;
}

export interface IssuedAdminToken {
  adminToken: AdminToken;
  /** The plaintext, shown once. */
  token: string;
}

export const BOOTSTRAP_TOKEN_NAME = 'bootstrap';
/** A bootstrap token from the environment grants full control; refuse one short enough to guess. */
export const MIN_ENV_TOKEN_LENGTH = 16;
/** `last_used_at` is advisory; writing it at most once a minute keeps reads from becoming writes. */
const LAST_USED_RESOLUTION_MS = 60_000;

function toAdminToken(row: AdminTokenRow): AdminToken {
  return {
    id: row.id,
    name: row.name,
    role: row.role,
    tokenPreview: row.token_preview,
    createdAt: row.created_at,
    revokedAt: row.revoked_at,
    lastUsedAt: row.last_used_at,
  };
}

export async function getAdminToken(db: Db, id: string): Promise<AdminToken | null> {
  const row = await db.selectFrom('admin_tokens').selectAll().where('id', '=', id).executeTakeFirst();
  return row ? toAdminToken(row) : null;
}

export async function listAdminTokens(db: Db, page: PageRequest): Promise<AdminToken[]> {
  const rows = await applyKeysetPage(db.selectFrom('admin_tokens').selectAll(), ['created_at', 'id'], page).execute();
  return rows.map(toAdminToken);
}

export function adminTokenCursor(token: AdminToken): string {
  return encodeCursor([token.createdAt, token.id]);
}

/**
 * Verifies a presented token: looked up by its SHA-256 hash (so the lookup reveals nothing about the
 * value) and compared in constant time. Revoked tokens fail. Pure of HTTP: callers map null to a 401.
 */
export async function authenticateAdminToken(db: Db, presented: string, now: Date = new Date()): Promise<AdminPrincipal | null> {
  if (presented.length === 0 || presented.length > 512) return null;
  const hash = hashToken(presented);
  const row = await db
    .selectFrom('admin_tokens')
    .select(['id', 'name', 'role', 'token_hash', 'revoked_at', 'last_used_at'])
    .where('token_hash', '=', hash)
    .executeTakeFirst();
  if (!row || row.revoked_at !== null || !constantTimeEqual(row.token_hash, hash)) return null;
  if (row.last_used_at === null || now.getTime() - Date.parse(row.last_used_at) > LAST_USED_RESOLUTION_MS) {
    await db.updateTable('admin_tokens').set({ last_used_at: now.toISOString() }).where('id', '=', row.id).execute();
  }
  return { tokenId: row.id, name: row.name, role: row.role };
}

function normaliseTokenName(raw: string): string {
  const issues = new IssueList();
  const name = raw.trim();
  if (name.length === 0) issues.add('REQUIRED', 'name', 'name must not be empty');
  else if (name.length > 200) issues.add('INVALID_VALUE', 'name', 'name must be at most 200 characters');
  issues.throwIfAny();
  return name;
}

async function insertToken(db: Db, name: string, role: AdminRole, hash: string, preview: string): Promise<AdminToken> {
  const row: AdminTokenRow = {
    id: randomUUID(),
    name,
    role,
    token_hash: hash,
    token_preview: preview,
    created_at: nowIso(),
    revoked_at: null,
    last_used_at: null,
  };
  await db.insertInto('admin_tokens').values(row).execute();
  return toAdminToken(row);
}

export async function createAdminToken(db: Db, input: CreateAdminTokenInput): Promise<IssuedAdminToken> {
  const name = normaliseTokenName(input.name);
  const token = issueToken(ADMIN_TOKEN_PREFIX);
  return { adminToken: await insertToken(db, name, input.role, token.hash, token.preview), token: token.value };
}

/**
 * Idempotent. Refuses to revoke the last active ADMIN token, which would leave no way to administer the
 * control plane short of a restart with a new bootstrap token.
 */
export async function revokeAdminToken(db: Db, id: string): Promise<AdminToken> {
  return inTransaction(db, async (trx) => {
    // Two revocations of the last two ADMIN tokens would each see the other one active: serialised here.
    await takeLock(trx, 'admin_tokens');
    const current = await getAdminToken(trx, id);
    if (!current) throw new InputError('NOT_FOUND', 'id', `no admin token with id "${id}"`);
    if (current.revokedAt !== null) return current;
    if (current.role === 'ADMIN') {
      const others = await trx
        .selectFrom('admin_tokens')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('role', '=', 'ADMIN')
        .where('revoked_at', 'is', null)
        .where('id', '!=', id)
        .executeTakeFirstOrThrow();
      if (Number(others.n) === 0) {
        throw new InputError('LAST_ADMIN_TOKEN', 'id', 'this is the last active ADMIN token; create another before revoking it');
      }
    }
    const at = nowIso();
    await trx.updateTable('admin_tokens').set({ revoked_at: at }).where('id', '=', id).execute();
    return { ...current, revokedAt: at };
  });
}

/**
 * First-start access. With `envToken` (e.g. GATEHOUSE_ADMIN_TOKEN): make sure it exists as an ADMIN token
 * named "bootstrap" (unless an operator revoked it: a restart must not undo a revocation). A new value is a
 * rotation: the bootstrap tokens before it (an earlier value, or the one generated at first start, which the
 * environment's replaces) are revoked with its insert, so changing the variable after a leak takes the old
 * value away instead of leaving it an ADMIN token nobody sees; tokens made with createAdminToken stay.
 * Without it: when no active ADMIN token exists, issue one and return its value for the caller to print once.
 */
export async function ensureBootstrapAdminToken(
  db: Db,
  envToken: string | undefined,
): Promise<{ created: boolean; token?: string; revokedBootstrapTokens?: number }> {
  if (envToken !== undefined && envToken !== '') {
    if (envToken.length < MIN_ENV_TOKEN_LENGTH) {
      throw new Error(`the bootstrap admin token from the environment must be at least ${MIN_ENV_TOKEN_LENGTH} characters`);
    }
    const hash = hashToken(envToken);
    const existing = await db.selectFrom('admin_tokens').select('id').where('token_hash', '=', hash).executeTakeFirst();
    if (existing) return { created: false };
    // A preview shows 10 characters: fine for a 43-character random token, too much of a short chosen one.
    const preview = envToken.length >= 32 ? previewToken(envToken) : '••••';
    try {
      // Under the lock: replicas starting with two different values at once leave exactly one of them (the
      // later insert revokes the earlier), never both revoked by each other.
      return await inTransaction(db, async (trx) => {
        await takeLock(trx, 'admin_tokens');
        const inserted = await insertToken(trx, BOOTSTRAP_TOKEN_NAME, 'ADMIN', hash, preview);
        const revoked = await trx
          .updateTable('admin_tokens')
          .set({ revoked_at: nowIso() })
          .where('name', '=', BOOTSTRAP_TOKEN_NAME)
          .where('revoked_at', 'is', null)
          .where('id', '!=', inserted.id)
          .executeTakeFirst();
        return { created: true, revokedBootstrapTokens: Number(revoked.numUpdatedRows) };
      });
    } catch (error) {
      // Another replica inserted the same token at the same moment.
      if (isUniqueViolation(error)) return { created: false };
      throw error;
    }
  }
  // Replicas starting together would each find no ADMIN token and each print one: the check and the
  // insert run under one lock, so the second replica sees the first one's token.
  return inTransaction(db, async (trx) => {
    await takeLock(trx, 'admin_tokens');
    const active = await trx
      .selectFrom('admin_tokens')
      .select('id')
      .where('role', '=', 'ADMIN')
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    if (active) return { created: false };
    const token = issueToken(ADMIN_TOKEN_PREFIX);
    await insertToken(trx, BOOTSTRAP_TOKEN_NAME, 'ADMIN', token.hash, token.preview);
    return { created: true, token: token.value };
  });
}
