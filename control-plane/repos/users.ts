/**
 * Users (owners of virtual keys): validation and storage. Creating or deleting a user bumps the config
 * version (users and their keys are in snapshots). It does not hold per-user OAuth or header credentials.
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { UserRow } from '../db/schema.js';
import { bumpConfigVersion } from './config-state.js';
import { InputError, IssueList, isUniqueViolation } from './errors.js';
import { applyKeysetPage, encodeCursor, type PageRequest } from './pagination.js';
import { inTransaction, nowIso, type Db } from './transaction.js';

export interface User {
  id: string;
  email: string;
  name: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface CreateUserInput {
  email: string;
  name?: string | null;
}

export interface UpdateUserInput {
  id: string;
  email?: string | null;
  /** Absent leaves the name; an empty string clears it. */
  name?: string | null;
}

function toUser(row: UserRow): User {
  return { id: row.id, email: row.email, name: row.name, createdAt: row.created_at, updatedAt: row.updated_at };
}

const EmailSchema = z.email();

/**
 * Emails are stored lower-cased: mailboxes are case-insensitive in practice, and two users that differ
 * only by case would be the same person.
 */
function normaliseEmail(raw: string, field: string, issues: IssueList): string {
  const email = raw.trim().toLowerCase();
  if (email.length > 320 || !EmailSchema.safeParse(email).success) issues.add('INVALID_EMAIL', field, `"${raw}" is not a valid email address`);
  return email;
}

function normaliseName(raw: string | null | undefined, field: string, issues: IssueList): string | null {
  const name = raw?.trim() ?? '';
  if (name.length > 200) issues.add('INVALID_VALUE', field, 'name must be at most 200 characters');
  return name === '' ? null : name;
}

function emailTaken(email: string): InputError {
  return new InputError('EMAIL_TAKEN', 'email', `a user with email "${email}" already exists`);
}

export async function getUser(db: Db, id: string): Promise<User | null> {
  const row = await db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
  return row ? toUser(row) : null;
}

export async function getUsersByIds(db: Db, ids: readonly string[]): Promise<User[]> {
  if (ids.length === 0) return [];
  const rows = await db.selectFrom('users').selectAll().where('id', 'in', [...ids]).execute();
  return rows.map(toUser);
}

export async function findUserByEmail(db: Db, email: string): Promise<User | null> {
  const row = await db.selectFrom('users').selectAll().where('email', '=', email.trim().toLowerCase()).executeTakeFirst();
  return row ? toUser(row) : null;
}

export async function listUsers(db: Db, page: PageRequest): Promise<User[]> {
  const rows = await applyKeysetPage(db.selectFrom('users').selectAll(), ['created_at', 'id'], page).execute();
  return rows.map(toUser);
}

/** Every user, for a whole-configuration export or apply. */
export async function listAllUsers(db: Db): Promise<User[]> {
  const rows = await db.selectFrom('users').selectAll().orderBy('created_at').orderBy('id').execute();
  return rows.map(toUser);
}

export function userCursor(user: User): string {
  return encodeCursor([user.createdAt, user.id]);
}

export async function createUser(db: Db, input: CreateUserInput): Promise<User> {
  const issues = new IssueList();
  const email = normaliseEmail(input.email, 'email', issues);
  const name = normaliseName(input.name, 'name', issues);
  issues.throwIfAny();

  return inTransaction(db, async (trx) => {
    await bumpConfigVersion(trx);
    if (await findUserByEmail(trx, email)) throw emailTaken(email);
    const now = nowIso();
    const row: UserRow = { id: randomUUID(), email, name, budgets: '[]', created_at: now, updated_at: now };
    try {
      await trx.insertInto('users').values(row).execute();
    } catch (error) {
      if (isUniqueViolation(error)) throw emailTaken(email);
      throw error;
    }
    return toUser(row);
  });
}

export async function updateUser(db: Db, input: UpdateUserInput): Promise<User> {
  const issues = new IssueList();
  const email = input.email != null ? normaliseEmail(input.email, 'email', issues) : undefined;
  const name = input.name !== undefined ? normaliseName(input.name, 'name', issues) : undefined;
  issues.throwIfAny();

  return inTransaction(db, async (trx) => {
    await bumpConfigVersion(trx);
    const current = await getUser(trx, input.id);
    if (!current) throw new InputError('NOT_FOUND', 'id', `no user with id "${input.id}"`);
    if (email !== undefined && email !== current.email) {
      const other = await findUserByEmail(trx, email);
      if (other && other.id !== current.id) throw emailTaken(email);
    }
    const updated: User = {
      ...current,
      email: email ?? current.email,
      name: name === undefined ? current.name : name,
      updatedAt: nowIso(),
    };
    try {
      await trx
        .updateTable('users')
        .set({ email: updated.email, name: updated.name, updated_at: updated.updatedAt })
        .where('id', '=', current.id)
        .execute();
    } catch (error) {
      if (isUniqueViolation(error)) throw emailTaken(updated.email);
      throw error;
    }
    return updated;
  });
}

/** Deletes the user and (by foreign-key cascade) every key they own; returns the user as they were. */
export async function deleteUser(db: Db, id: string): Promise<User> {
  return inTransaction(db, async (trx) => {
    await bumpConfigVersion(trx);
    const current = await getUser(trx, id);
    if (!current) throw new InputError('NOT_FOUND', 'id', `no user with id "${id}"`);
    // Explicit, not only the FK cascade: SQLite enforces foreign keys only when the pragma is on.
    await trx.deleteFrom('virtual_keys').where('user_id', '=', id).execute();
    await trx.deleteFrom('users').where('id', '=', id).execute();
    return current;
  });
}
