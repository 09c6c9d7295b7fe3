/**
 * Access profiles (SPEC §2): reusable templates of servers with tool filters, budgets, a rate limit and a
 * key lifetime, and `provisionUser`, which finds or creates a user and allocates a key from a profile.
 *
 * A key allocated from a profile follows it: editing the profile rewrites the grants and limits of every
 * such key in the same transaction (bumping the config version once), so the change reaches nodes with the
 * next snapshot as ordinary key changes (deltas, change tracking on `virtual_keys`). An edited key lifetime
 * applies to keys allocated afterwards; existing expiries stay. A profile that keys follow cannot be
 * deleted (PROFILE_IN_USE). It does not enforce anything (nodes do).
 */
import { randomUUID } from 'node:crypto';
import type { Budget, KeyServerGrant, LimitsFallback, RateLimit } from '../../data-plane/snapshot/schema.js';
import type { AccessProfileRow } from '../db/schema.js';
import { bumpConfigVersion } from './config-state.js';
import { InputError, IssueList, isUniqueViolation } from './errors.js';
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
import { applyKeysetPage, encodeCursor, type PageRequest } from './pagination.js';
import { inTransaction, nowIso, type Db, type Trx } from './transaction.js';
import { createUser, findUserByEmail, type User } from './users.js';
import { createVirtualKey, normaliseGrants, resolveGrantServers, type IssuedVirtualKey, type KeyGrantInput } from './virtual-keys.js';

export interface AccessProfile {
  id: string;
  name: string;
  description: string | null;
  servers: KeyServerGrant[];
  budgets: Budget[];
  rateLimit: RateLimit | null;
  limitsFallback: LimitsFallback;
  keyLifetimeDays: number | null;
  createdAt: string;
  updatedAt: string;
}

export interface CreateAccessProfileInput {
  name: string;
  description?: string | null;
  servers: readonly KeyGrantInput[];
  budgets?: readonly BudgetInput[] | null;
  rateLimit?: RateLimitInput | null;
  limitsFallback?: LimitsFallback | null;
  /** Whole days; null/absent = keys do not expire. */
  keyLifetimeDays?: number | null;
  allowNoServers?: boolean | null;
}

/** Fields left out stay as they are; `rateLimit: null` / `keyLifetimeDays: null` remove them. */
export interface UpdateAccessProfileInput {
  id: string;
  name?: string | null;
  description?: string | null;
  servers?: readonly KeyGrantInput[] | null;
  budgets?: readonly BudgetInput[] | null;
  rateLimit?: RateLimitInput | null;
  limitsFallback?: LimitsFallback | null;
  keyLifetimeDays?: number | null;
  allowNoServers?: boolean | null;
}

function toProfile(row: AccessProfileRow): AccessProfile {
  return {
    id: row.id,
    name: row.name,
    description: row.description,
    servers: parseGrants(row.servers),
    budgets: parseBudgets(row.budgets),
    rateLimit: parseRateLimit(row.rate_limit),
    limitsFallback: row.limits_fallback,
    keyLifetimeDays: row.key_lifetime_days,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

const PROFILE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;

function normaliseProfileName(raw: string, issues: IssueList): string {
  const name = raw.trim();
  if (!PROFILE_NAME.test(name)) issues.add('INVALID_NAME', 'name', 'name must be 1-100 letters, digits, "_", "." or "-", starting with a letter or digit');
  return name;
}

function normaliseLifetime(days: number, issues: IssueList): number | null {
  if (!Number.isInteger(days) || days < 1 || days > 3650) {
    issues.add('INVALID_VALUE', 'keyLifetimeDays', 'keyLifetimeDays must be a whole number of days from 1 to 3650');
    return null;
  }
  return days;
}

function nameTaken(name: string): InputError {
  return new InputError('NAME_TAKEN', 'name', `an access profile named "${name}" already exists`);
}

// ---- Reads ----

export async function getAccessProfile(db: Db, id: string): Promise<AccessProfile | null> {
  const row = await db.selectFrom('access_profiles').selectAll().where('id', '=', id).executeTakeFirst();
  return row ? toProfile(row) : null;
}

export async function getAccessProfileByName(db: Db, name: string): Promise<AccessProfile | null> {
  const row = await db.selectFrom('access_profiles').selectAll().where('name', '=', name.trim()).executeTakeFirst();
  return row ? toProfile(row) : null;
}

/** By id or by name: automation scripts know profiles by name. */
export async function findAccessProfile(db: Db, idOrName: string): Promise<AccessProfile | null> {
  return (await getAccessProfile(db, idOrName)) ?? getAccessProfileByName(db, idOrName);
}

export async function listAccessProfiles(db: Db, page: PageRequest): Promise<AccessProfile[]> {
  const rows = await applyKeysetPage(db.selectFrom('access_profiles').selectAll(), ['created_at', 'id'], page).execute();
  return rows.map(toProfile);
}

export async function listAllAccessProfiles(db: Db): Promise<AccessProfile[]> {
  const rows = await db.selectFrom('access_profiles').selectAll().orderBy('created_at').orderBy('id').execute();
  return rows.map(toProfile);
}

export function accessProfileCursor(profile: AccessProfile): string {
  return encodeCursor([profile.createdAt, profile.id]);
}

export async function countKeysOfProfile(db: Db, id: string): Promise<number> {
  const row = await db
    .selectFrom('virtual_keys')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('access_profile_id', '=', id)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

// ---- Writes ----

async function requireProfile(db: Db, id: string): Promise<AccessProfile> {
  const profile = await getAccessProfile(db, id);
  if (!profile) throw new InputError('NOT_FOUND', 'id', `no access profile with id "${id}"`);
  return profile;
}

export async function createAccessProfile(db: Db, input: CreateAccessProfileInput): Promise<AccessProfile> {
  const issues = new IssueList();
  const name = normaliseProfileName(input.name, issues);
  const normalised = normaliseGrants(input.servers, input.allowNoServers === true, issues);
  const budgets = normaliseBudgets(input.budgets ?? [], 'budgets', issues);
  const rateLimit = normaliseRateLimit(input.rateLimit ?? null, 'rateLimit', issues);
  const lifetime = input.keyLifetimeDays != null ? normaliseLifetime(input.keyLifetimeDays, issues) : null;
  issues.throwIfAny();

  // Not a config change by itself (no key follows a new profile yet), so no version bump.
  return inTransaction(db, async (trx) => {
    const grants = await resolveGrantServers(trx, normalised, issues);
    issues.throwIfAny();
    if (await getAccessProfileByName(trx, name)) throw nameTaken(name);
    const at = nowIso();
    const row: AccessProfileRow = {
      id: randomUUID(),
      name,
      description: input.description?.trim() || null,
      servers: serializeGrants(grants),
      budgets: serializeBudgets(budgets),
      rate_limit: serializeRateLimit(rateLimit),
      limits_fallback: input.limitsFallback ?? 'FAIL_CLOSED',
      key_lifetime_days: lifetime,
      created_at: at,
      updated_at: at,
    };
    try {
      await trx.insertInto('access_profiles').values(row).execute();
    } catch (error) {
      if (isUniqueViolation(error)) throw nameTaken(name);
      throw error;
    }
    return toProfile(row);
  });
}

export async function updateAccessProfile(db: Db, input: UpdateAccessProfileInput): Promise<AccessProfile> {
  const issues = new IssueList();
  const name = input.name != null ? normaliseProfileName(input.name, issues) : undefined;
  const normalised = input.servers != null ? normaliseGrants(input.servers, input.allowNoServers === true, issues) : undefined;
  const budgets = input.budgets != null ? normaliseBudgets(input.budgets, 'budgets', issues) : undefined;
  const rateLimit = input.rateLimit !== undefined ? normaliseRateLimit(input.rateLimit, 'rateLimit', issues) : undefined;
  const lifetime =
    input.keyLifetimeDays === undefined ? undefined : input.keyLifetimeDays === null ? null : normaliseLifetime(input.keyLifetimeDays, issues);
  issues.throwIfAny();

  return inTransaction(db, async (trx) => {
    // Bumped first (one lock order); the keys rewritten below are then tracked at this version.
    await bumpConfigVersion(trx);
    const current = await requireProfile(trx, input.id);
    const grants = normalised ? await resolveGrantServers(trx, normalised, issues) : undefined;
    issues.throwIfAny();
    if (name !== undefined && name !== current.name) {
      const other = await getAccessProfileByName(trx, name);
      if (other && other.id !== current.id) throw nameTaken(name);
    }
    const columns = {
      ...(name !== undefined ? { name } : {}),
      ...(input.description !== undefined ? { description: input.description?.trim() || null } : {}),
      ...(grants !== undefined ? { servers: serializeGrants(grants) } : {}),
      ...(budgets !== undefined ? { budgets: serializeBudgets(budgets) } : {}),
      ...(rateLimit !== undefined ? { rate_limit: serializeRateLimit(rateLimit) } : {}),
      ...(input.limitsFallback != null ? { limits_fallback: input.limitsFallback } : {}),
      ...(lifetime !== undefined ? { key_lifetime_days: lifetime } : {}),
    };
    const at = nowIso();
    try {
      await trx.updateTable('access_profiles').set({ ...columns, updated_at: at }).where('id', '=', current.id).execute();
    } catch (error) {
      if (isUniqueViolation(error)) throw nameTaken(name ?? current.name);
      throw error;
    }
    await syncKeysOfProfile(trx, await requireProfile(trx, current.id));
    return requireProfile(trx, current.id);
  });
}

/** Copies the profile's grants and limits onto every key allocated from it (one UPDATE). */
async function syncKeysOfProfile(trx: Trx, profile: AccessProfile): Promise<void> {
  await trx
    .updateTable('virtual_keys')
    .set({
      servers: serializeGrants(profile.servers),
      budgets: serializeBudgets(profile.budgets),
      rate_limit: serializeRateLimit(profile.rateLimit),
      limits_fallback: profile.limitsFallback,
      updated_at: nowIso(),
    })
    .where('access_profile_id', '=', profile.id)
    .execute();
}

export async function deleteAccessProfile(db: Db, id: string): Promise<AccessProfile> {
  return inTransaction(db, async (trx) => {
    const current = await requireProfile(trx, id);
    const keys = await countKeysOfProfile(trx, id);
    if (keys > 0) {
      throw new InputError('PROFILE_IN_USE', 'id', `access profile "${current.name}" has ${keys} key(s) allocated from it; delete or revoke them first`);
    }
    await trx.deleteFrom('access_profiles').where('id', '=', id).execute();
    return current;
  });
}

export interface ProvisionUserInput {
  email: string;
  /** Profile id or name. */
  profile: string;
  /** Used only when the user is created. */
  name?: string | null;
  /** Defaults to the profile's name. */
  keyName?: string | null;
}

export interface ProvisionedUser extends IssuedVirtualKey {
  user: User;
  profile: AccessProfile;
  userCreated: boolean;
}

/** Finds (or creates) the user by email and allocates a key from the profile; the key value is shown once. */
export async function provisionUser(db: Db, input: ProvisionUserInput, now: Date = new Date()): Promise<ProvisionedUser> {
  return inTransaction(db, async (trx) => {
    const profile = await findAccessProfile(trx, input.profile);
    if (!profile) throw new InputError('NOT_FOUND', 'profile', `no access profile "${input.profile}"`);
    const existing = await findUserByEmail(trx, input.email);
    const user = existing ?? (await createUser(trx, { email: input.email, name: input.name ?? null }));
    const expiresAt = profile.keyLifetimeDays === null ? null : new Date(now.getTime() + profile.keyLifetimeDays * 86_400_000).toISOString();
    const issued = await createVirtualKey(
      trx,
      {
        userId: user.id,
        name: input.keyName?.trim() || profile.name,
        servers: profile.servers,
        allowNoServers: true,
        expiresAt,
        budgets: profile.budgets,
        rateLimit: profile.rateLimit,
        limitsFallback: profile.limitsFallback,
        accessProfileId: profile.id,
      },
      now,
    );
    return { ...issued, user, profile, userCreated: existing === null };
  });
}
