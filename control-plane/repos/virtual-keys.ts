/**
 * Virtual keys: issuing (the `gk_` value is returned once; only its SHA-256 hash is stored), rotating,
 * revoking and editing grants. Every write bumps the config version in its transaction. It does not
 * authenticate requests (nodes do, from the snapshot) or meter usage.
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { Budget, KeyServerGrant, LimitsFallback, RateLimit } from '../../data-plane/snapshot/schema.js';
import { issueToken, VIRTUAL_KEY_PREFIX } from '../crypto/tokens.js';
import type { VirtualKeyRow } from '../db/schema.js';
import { bumpConfigVersion } from './config-state.js';
import { InputError, IssueList } from './errors.js';
import { parseGrants, serializeGrants } from './key-grants.js';
import {
  normaliseBudgets,
  normaliseRateLimit,
  parseBudgets,
  parseRateLimit,
  serializeBudgets,
  serializeRateLimit,
  type BudgetInput,
  type RateLimitInput,
} from './limits.js';
import { getMcpServersByNamesIgnoringCase, normaliseToolList } from './mcp-servers.js';
import { applyKeysetPage, encodeCursor, type PageRequest } from './pagination.js';
import { inTransaction, nowIso, type Db, type Trx } from './transaction.js';

export interface VirtualKey {
  id: string;
  name: string;
  userId: string;
  /** e.g. `gk_Ab…x9f2`: enough to recognise the key, not to use it. */
  keyPreview: string;
  servers: KeyServerGrant[];
  expiresAt: string | null;
  revokedAt: string | null;
  lastUsedAt: string | null;
  createdAt: string;
  updatedAt: string;
  budgets: Budget[];
  rateLimit: RateLimit | null;
  limitsFallback: LimitsFallback;
  /** The access profile the key was allocated from (its edits reach the key), or null. */
  accessProfileId: string | null;
}

/** Limits a key's create/update input may carry; on update, absent fields stay as they are. */
export interface KeyLimitsInput {
  budgets?: readonly BudgetInput[] | null;
  /** null removes the rate limit. */
  rateLimit?: RateLimitInput | null;
  limitsFallback?: LimitsFallback | null;
}

export interface KeyGrantInput {
  server: string;
  tools: readonly string[];
}

export interface CreateVirtualKeyInput extends KeyLimitsInput {
  userId: string;
  name: string;
  servers: readonly KeyGrantInput[];
  /** ISO-8601 instant in the future, or null/absent for a key that does not expire. */
  expiresAt?: string | null;
  /** A key with no servers can call nothing, so an empty `servers` is refused unless this says it is meant. */
  allowNoServers?: boolean | null;
  /** Set by provisionUser only (not in the GraphQL input): the profile the key follows. */
  accessProfileId?: string | null;
}

export interface UpdateVirtualKeyInput extends KeyLimitsInput {
  id: string;
  name?: string | null;
  servers?: readonly KeyGrantInput[] | null;
  /** Absent leaves it; null removes the expiry; a value must be in the future. */
  expiresAt?: string | null;
  /** As for create: needed to set `servers` to an empty list. */
  allowNoServers?: boolean | null;
}

/** A key and its plaintext value, which exists only in this result: the database keeps the hash. */
export interface IssuedVirtualKey {
  virtualKey: VirtualKey;
  key: string;
}

function toVirtualKey(row: VirtualKeyRow): VirtualKey {
  return {
    id: row.id,
    name: row.name,
    userId: row.user_id,
    keyPreview: row.key_preview,
    servers: parseGrants(row.servers),
    expiresAt: row.expires_at,
    revokedAt: row.revoked_at,
    lastUsedAt: row.last_used_at,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    budgets: parseBudgets(row.budgets),
    rateLimit: parseRateLimit(row.rate_limit),
    limitsFallback: row.limits_fallback,
    accessProfileId: row.access_profile_id,
  };
}

/** The limit columns an input sets (only those it names). */
export function keyLimitColumns(input: KeyLimitsInput, issues: IssueList): { budgets?: string; rate_limit?: string | null; limits_fallback?: LimitsFallback } {
  const out: { budgets?: string; rate_limit?: string | null; limits_fallback?: LimitsFallback } = {};
  if (input.budgets != null) out.budgets = serializeBudgets(normaliseBudgets(input.budgets, 'budgets', issues));
  if (input.rateLimit !== undefined) out.rate_limit = serializeRateLimit(normaliseRateLimit(input.rateLimit, 'rateLimit', issues));
  if (input.limitsFallback != null) out.limits_fallback = input.limitsFallback;
  return out;
}

// ---- Validation ----

const IsoInstantSchema = z.iso.datetime({ offset: true });

function normaliseKeyName(raw: string, issues: IssueList): string {
  const name = raw.trim();
  if (name.length === 0) issues.add('REQUIRED', 'name', 'name must not be empty');
  else if (name.length > 200) issues.add('INVALID_VALUE', 'name', 'name must be at most 200 characters');
  return name;
}

/**
 * Parses to a canonical UTC ISO string (so stored instants compare correctly as text). With `now` null the
 * instant may be in the past (an unchanged expiry re-applied from an exported document).
 */
export function normaliseExpiry(raw: string, now: Date | null, issues: IssueList): string | null {
  if (!IsoInstantSchema.safeParse(raw).success) {
    issues.add('INVALID_DATETIME', 'expiresAt', `"${raw}" is not an ISO-8601 date-time (e.g. 2030-01-31T00:00:00Z)`);
    return null;
  }
  const at = new Date(raw);
  if (now !== null && at.getTime() <= now.getTime()) {
    issues.add('EXPIRES_IN_PAST', 'expiresAt', 'expiresAt must be in the future');
    return null;
  }
  return at.toISOString();
}

/** Shape checks that need no database: tool lists, duplicates, and a refused empty list. */
export function normaliseGrants(grants: readonly KeyGrantInput[], allowNoServers: boolean, issues: IssueList): KeyServerGrant[] {
  if (grants.length === 0 && !allowNoServers) {
    issues.add('NO_SERVERS', 'servers', 'a key with no servers can call nothing: grant at least one server, or set allowNoServers to create it anyway');
  }
  if (!issues.withinListLimit(grants, 'servers')) return [];
  const out: KeyServerGrant[] = [];
  // A Set, not a scan of `out` per grant (see normaliseToolList: lists are caller input).
  const seen = new Set<string>();
  grants.forEach((grant, i) => {
    const server = grant.server.trim();
    // Server names are unique ignoring case, so two spellings of one name are the same server twice.
    if (seen.has(server.toLowerCase())) {
      issues.add('DUPLICATE', `servers.${i}.server`, `server "${server}" is listed twice`);
      return;
    }
    if (grant.tools.length === 0) {
      issues.add('REQUIRED', `servers.${i}.tools`, 'tools must list tool names, or ["*"] for every tool the server allows');
      return;
    }
    seen.add(server.toLowerCase());
    out.push({ server, tools: normaliseToolList(grant.tools, `servers.${i}.tools`, issues) });
  });
  return out;
}

/**
 * Every granted server must exist now; keys cannot reserve access to a server created later. Names match
 * ignoring case (as their uniqueness does) and grants are returned with the stored spelling, which is the
 * one nodes match on.
 */
export async function resolveGrantServers(db: Db, grants: readonly KeyServerGrant[], issues: IssueList): Promise<KeyServerGrant[]> {
  const servers = await getMcpServersByNamesIgnoringCase(db, grants.map((g) => g.server));
  const stored = new Map(servers.map((s) => [s.name.toLowerCase(), s.name]));
  return grants.map((g, i) => {
    const name = stored.get(g.server.toLowerCase());
    if (name === undefined) issues.add('UNKNOWN_SERVER', `servers.${i}.server`, `no server named "${g.server}"`);
    return { ...g, server: name ?? g.server };
  });
}

async function requireUser(trx: Trx, userId: string, field: string): Promise<void> {
  const user = await trx.selectFrom('users').select('id').where('id', '=', userId).executeTakeFirst();
  if (!user) throw new InputError('NOT_FOUND', field, `no user with id "${userId}"`);
}

async function requireKey(db: Db, id: string): Promise<VirtualKey> {
  const key = await getVirtualKey(db, id);
  if (!key) throw new InputError('NOT_FOUND', 'id', `no virtual key with id "${id}"`);
  return key;
}

// ---- Reads ----

export async function getVirtualKey(db: Db, id: string): Promise<VirtualKey | null> {
  const row = await db.selectFrom('virtual_keys').selectAll().where('id', '=', id).executeTakeFirst();
  return row ? toVirtualKey(row) : null;
}

export interface VirtualKeyFilter {
  userId?: string | null;
}

export async function listVirtualKeys(db: Db, page: PageRequest, filter: VirtualKeyFilter = {}): Promise<VirtualKey[]> {
  let q = db.selectFrom('virtual_keys').selectAll();
  if (filter.userId != null) q = q.where('user_id', '=', filter.userId);
  const rows = await applyKeysetPage(q, ['created_at', 'id'], page).execute();
  return rows.map(toVirtualKey);
}

export function virtualKeyCursor(key: VirtualKey): string {
  return encodeCursor([key.createdAt, key.id]);
}

/** Every key (no hashes), for a whole-configuration export or apply. */
export async function listAllVirtualKeys(db: Db): Promise<VirtualKey[]> {
  const rows = await db.selectFrom('virtual_keys').selectAll().orderBy('created_at').orderBy('id').execute();
  return rows.map(toVirtualKey);
}

/** Every key with its hash, for the snapshot compiler. */
export async function listAllVirtualKeysForSnapshot(db: Db): Promise<Array<VirtualKey & { keyHash: string }>> {
  const rows = await db.selectFrom('virtual_keys').selectAll().orderBy('created_at').orderBy('id').execute();
  return rows.map((row) => ({ ...toVirtualKey(row), keyHash: row.key_hash }));
}

// ---- Writes ----

export async function createVirtualKey(db: Db, input: CreateVirtualKeyInput, now: Date = new Date()): Promise<IssuedVirtualKey> {
  const issues = new IssueList();
  const name = normaliseKeyName(input.name, issues);
  const normalised = normaliseGrants(input.servers, input.allowNoServers === true, issues);
  const expiresAt = input.expiresAt != null ? normaliseExpiry(input.expiresAt, now, issues) : null;
  const limits = keyLimitColumns(input, issues);
  issues.throwIfAny();

  return inTransaction(db, async (trx) => {
    await bumpConfigVersion(trx);
    await requireUser(trx, input.userId, 'userId');
    const grants = await resolveGrantServers(trx, normalised, issues);
    issues.throwIfAny();

    const token = issueToken(VIRTUAL_KEY_PREFIX);
    const at = nowIso();
    const row: VirtualKeyRow = {
      id: randomUUID(),
      name,
      user_id: input.userId,
      key_hash: token.hash,
      key_preview: token.preview,
      servers: serializeGrants(grants),
      expires_at: expiresAt,
      revoked_at: null,
      last_used_at: null,
      created_at: at,
      updated_at: at,
      budgets: limits.budgets ?? '[]',
      rate_limit: limits.rate_limit ?? null,
      limits_fallback: limits.limits_fallback ?? 'FAIL_CLOSED',
      access_profile_id: input.accessProfileId ?? null,
    };
    await trx.insertInto('virtual_keys').values(row).execute();
    return { virtualKey: toVirtualKey(row), key: token.value };
  });
}

export async function updateVirtualKey(db: Db, input: UpdateVirtualKeyInput, now: Date = new Date()): Promise<VirtualKey> {
  const issues = new IssueList();
  const name = input.name != null ? normaliseKeyName(input.name, issues) : undefined;
  const normalised = input.servers != null ? normaliseGrants(input.servers, input.allowNoServers === true, issues) : undefined;
  const expiresAt =
    input.expiresAt === undefined ? undefined : input.expiresAt === null ? null : normaliseExpiry(input.expiresAt, now, issues);
  const limits = keyLimitColumns(input, issues);
  issues.throwIfAny();

  return inTransaction(db, async (trx) => {
    await bumpConfigVersion(trx);
    const current = await requireKey(trx, input.id);
    const grants = normalised ? await resolveGrantServers(trx, normalised, issues) : undefined;
    issues.throwIfAny();
    await trx
      .updateTable('virtual_keys')
      .set({
        ...(name !== undefined ? { name } : {}),
        ...(grants !== undefined ? { servers: serializeGrants(grants) } : {}),
        ...(expiresAt !== undefined ? { expires_at: expiresAt } : {}),
        ...limits,
        updated_at: nowIso(),
      })
      .where('id', '=', current.id)
      .execute();
    return requireKey(trx, current.id);
  });
}

/** A new value for the key; the old one stops working with the next snapshot. Revoked keys stay revoked. */
export async function rotateVirtualKey(db: Db, id: string): Promise<IssuedVirtualKey> {
  return inTransaction(db, async (trx) => {
    await bumpConfigVersion(trx);
    const current = await requireKey(trx, id);
    if (current.revokedAt !== null) throw new InputError('KEY_REVOKED', 'id', 'a revoked key cannot be rotated; create a new one');
    const token = issueToken(VIRTUAL_KEY_PREFIX);
    await trx
      .updateTable('virtual_keys')
      .set({ key_hash: token.hash, key_preview: token.preview, updated_at: nowIso() })
      .where('id', '=', id)
      .execute();
    return { virtualKey: await requireKey(trx, id), key: token.value };
  });
}

/** Idempotent: revoking a revoked key changes nothing (and bumps nothing). */
export async function revokeVirtualKey(db: Db, id: string): Promise<VirtualKey> {
  const existing = await requireKey(db, id);
  if (existing.revokedAt !== null) return existing;
  return inTransaction(db, async (trx) => {
    await bumpConfigVersion(trx);
    const at = nowIso();
    await trx
      .updateTable('virtual_keys')
      .set({ revoked_at: at, updated_at: at })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .execute();
    return requireKey(trx, id);
  });
}

export async function deleteVirtualKey(db: Db, id: string): Promise<VirtualKey> {
  return inTransaction(db, async (trx) => {
    await bumpConfigVersion(trx);
    const current = await requireKey(trx, id);
    await trx.deleteFrom('virtual_keys').where('id', '=', id).execute();
    return current;
  });
}

/**
 * Records use reported by nodes. Not a config change (no bump), and it only moves `last_used_at` forward,
 * since reports from several nodes arrive out of order.
 */
export async function markVirtualKeysUsed(db: Db, uses: ReadonlyArray<{ id: string; at: string }>): Promise<void> {
  for (const use of uses) {
    await db
      .updateTable('virtual_keys')
      .set({ last_used_at: use.at })
      .where('id', '=', use.id)
      .where((eb) => eb.or([eb('last_used_at', 'is', null), eb('last_used_at', '<', use.at)]))
      .execute();
  }
}
