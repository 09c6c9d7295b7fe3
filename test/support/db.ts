/**
 * Real test databases for both dialects: a fresh SQLite file under os.tmpdir() always, and a fresh
 * PostgreSQL schema when TEST_DATABASE_URL (or DATABASE_URL) is set, so parallel test files never share
 * tables. Migrated to the latest schema; `close()` destroys the pool and removes the file or schema.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Kysely } from 'kysely';
import pg from 'pg';
import { migrateToLatest, openDatabase, type Dialect } from '../../control-plane/db/database.js';
import type { Database } from '../../control-plane/db/schema.js';

export interface TestDatabase {
  dialect: Dialect;
  db: Kysely<Database>;
  /** The URL the database was opened with (for PostgreSQL, without the schema: see `searchPath`). */
  url: string;
  /** PostgreSQL only: the per-test schema; pass it to openDatabase(url, { searchPath }) for more pools. */
  searchPath?: string;
  close(): Promise<void>;
}

/** The PostgreSQL server to test against, if any. */
export const postgresUrl: string | undefined = process.env.TEST_DATABASE_URL ?? process.env.DATABASE_URL;

/**
 * The dialects this run covers, for `describe.each(testDialects)`. PostgreSQL joins when a URL is set;
 * CI sets one, so a dialect is never silently skipped there.
 */
export const testDialects: Dialect[] = postgresUrl ? ['sqlite', 'postgres'] : ['sqlite'];

export async function openTestDatabase(dialect: Dialect): Promise<TestDatabase> {
  return dialect === 'sqlite' ? openSqlite() : openPostgres();
}

async function openSqlite(): Promise<TestDatabase> {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-test-'));
  const url = join(dir, 'test.db');
  const { db } = openDatabase(url);
  await migrateToLatest(db);
  return {
    dialect: 'sqlite',
    db,
    url,
    async close() {
      await db.destroy();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function withAdminClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

async function openPostgres(): Promise<TestDatabase> {
  if (!postgresUrl) throw new Error('set TEST_DATABASE_URL to test against PostgreSQL');
  const url = postgresUrl;
  // Random and identifier-safe, so it can be interpolated into DDL.
  const schema = `gh_${randomBytes(8).toString('hex')}`;
  await withAdminClient(url, (c) => c.query(`CREATE SCHEMA ${schema}`));
  const { db } = openDatabase(url, { searchPath: schema });
  try {
    await migrateToLatest(db, schema);
  } catch (error) {
    await db.destroy();
    await withAdminClient(url, (c) => c.query(`DROP SCHEMA ${schema} CASCADE`));
    throw error;
  }
  return {
    dialect: 'postgres',
    db,
    url,
    searchPath: schema,
    async close() {
      await db.destroy();
      await withAdminClient(url, (c) => c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`));
    },
  };
}
