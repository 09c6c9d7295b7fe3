/**
 * Transaction plumbing shared by the repositories: run work in the caller's transaction if it passed one,
 * else open one. It does not retry, and it does not know about config versions (see config-state.ts).
 */
import { Transaction, type Kysely } from 'kysely';
import type { Database } from '../db/schema.js';

export type Db = Kysely<Database> | Transaction<Database>;
export type Trx = Transaction<Database>;

/**
 * Kysely cannot nest transactions, so a repository function that must be atomic joins the caller's
 * transaction when given one (applyConfig runs many changes in one) and opens its own otherwise.
 */
export async function inTransaction<T>(db: Db, fn: (trx: Trx) => Promise<T>): Promise<T> {
  if (db instanceof Transaction) return fn(db);
  return db.transaction().execute(fn);
}

/** Timestamps are ISO-8601 text (see db/schema.ts); millisecond precision sorts correctly as text. */
export function nowIso(): string {
  return new Date().toISOString();
}
