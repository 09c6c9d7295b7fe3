/**
 * Opening the database: SQLite (better-sqlite3, embedded) for `sqlite:` / file URLs and PostgreSQL (pg)
 * for `postgres://` URLs, behind one `Kysely<Database>`. Dialect-specific setup lives here and nowhere else.
 */
import SQLite from 'better-sqlite3';
import { Kysely, Migrator, PostgresDialect, SqliteDialect, type Migration, type MigrationProvider, type PostgresCursor, type PostgresPool, type PostgresPoolClient, type PostgresQueryResult } from 'kysely';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import pg from 'pg';
import * as m0001 from './migrations/0001_initial.js';
import * as m0002 from './migrations/0002_list_indexes.js';
import * as m0004 from './migrations/0004_change_tracking.js';
import * as m0005 from './migrations/0005_node_identity.js';
import * as m0010 from './migrations/0010_sessions.js';
import * as m0011 from './migrations/0011_oauth.js';
import * as m0011b from './migrations/0011_oauth_flow_binding.js';
import * as m0012 from './migrations/0012_governance.js';
import * as m0012b from './migrations/0012_governance_tool_pricing.js';
import * as m0013 from './migrations/0013_audit.js';
import * as m0015 from './migrations/0015_oauth_start_links.js';
import * as m0016 from './migrations/0016_upstream_health.js';
import * as m0017 from './migrations/0017_node_credential_uses.js';
import * as m0018 from './migrations/0018_tombstone_floor.js';
import * as m0019 from './migrations/0019_per_user_catalogs.js';
import * as m0020 from './migrations/0020_audit_indexes.js';
import * as m0020cs from './migrations/0020_connection_secret.js';
import * as m0021us from './migrations/0021_url_secrets.js';
import * as m0022 from './migrations/0022_oauth_resource_secrets.js';
import type { Database } from './schema.js';
import { withoutNul } from './text.js';

export type Dialect = 'sqlite' | 'postgres';

export interface OpenedDatabase {
  db: Kysely<Database>;
  dialect: Dialect;
  /** For PostgreSQL only: the connection string, for LISTEN/NOTIFY on a dedicated client. */
  url: string;
}

/** The better-sqlite3 handle behind each Kysely that `openDatabase` opened on SQLite. */
const sqliteHandles = new WeakMap<Kysely<Database>, SQLite.Database>();

/**
 * The better-sqlite3 handle behind `db` (SQLite only), for a hot path that runs statements prepared once
 * (Kysely prepares every query anew). Only inside a Kysely transaction on `db`: that holds the one
 * connection, so the statements join that transaction instead of interleaving with another.
 */
export function sqliteHandle(db: Kysely<Database>): SQLite.Database | undefined {
  return sqliteHandles.get(db);
}

// pg returns int8 as a string by default; our bigints (config versions) fit in a double.
pg.types.setTypeParser(20, (value: string) => Number(value));

/**
 * A statement parameter as PostgreSQL can take it: U+0000 in a string becomes U+FFFD. PostgreSQL refuses
 * NUL in text (SQLSTATE 22021), so one NUL anywhere in a parameter (a GraphQL argument, a value inside a
 * decoded cursor, an HTTP route's filter, text a node reported) failed the whole statement: an
 * "Unexpected error" for an admin, a 5xx for a route, and for a batch a refusal repeated on every resend.
 * No stored text can hold a NUL, so a lookup's answer is unchanged (nothing matched before either), and a
 * write stores the value with the one character replaced, as SQLite would have stored it but for that.
 */
export function postgresParameter(value: unknown): unknown {
  if (typeof value === 'string') return withoutNul(value);
  if (Array.isArray(value)) return value.map(postgresParameter);
  return value;
}

/** `pool` with every statement's parameters passed through postgresParameter (the one place all SQL goes through). */
function nulSafePool(pool: pg.Pool): PostgresPool {
  return {
    async connect(): Promise<PostgresPoolClient> {
      const client = await pool.connect();
      function query<R>(sql: string, parameters: ReadonlyArray<unknown>): Promise<PostgresQueryResult<R>>;
      function query<R>(cursor: PostgresCursor<R>): PostgresCursor<R>;
      function query<R>(sqlOrCursor: string | PostgresCursor<R>, parameters: ReadonlyArray<unknown> = []): Promise<PostgresQueryResult<R>> | PostgresCursor<R> {
        // Kysely streams through a cursor only when the dialect is given a cursor class, which it is not here.
        if (typeof sqlOrCursor !== 'string') throw new Error('cursor queries are not configured on this pool');
        return client.query<Record<string, unknown>>(sqlOrCursor, parameters.map(postgresParameter)).then((result) => ({
          // pg types the command as any string; PostgreSQL sends only the ones Kysely names.
          command: result.command as PostgresQueryResult<R>['command'],
          rowCount: result.rowCount ?? 0,
          rows: result.rows as R[],
        }));
      }
      return { query, release: (destroy?: boolean) => client.release(destroy) };
    },
    end: () => pool.end(),
  };
}

export interface OpenDatabaseOptions {
  /**
   * PostgreSQL only: the schema every connection uses (`search_path`), so several installations (or
   * parallel test files) can share one database. Must be a plain identifier.
   */
  searchPath?: string;
}

/** `postgres://…` / `postgresql://…` → PostgreSQL; `sqlite:PATH`, `:memory:` or a plain path → SQLite. */
export function openDatabase(url: string, options: OpenDatabaseOptions = {}): OpenedDatabase {
  if (/^postgres(ql)?:\/\//.test(url)) {
    const { searchPath } = options;
    if (searchPath !== undefined && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(searchPath)) {
      throw new Error(`invalid PostgreSQL search_path "${searchPath}": use a plain identifier`);
    }
    const pool = new pg.Pool({
      connectionString: url,
      max: 10,
      ...(searchPath !== undefined ? { options: `-c search_path=${searchPath}` } : {}),
    });
    return { db: new Kysely<Database>({ dialect: new PostgresDialect({ pool: nulSafePool(pool) }) }), dialect: 'postgres', url };
  }
  const path = url.replace(/^sqlite:(\/\/)?/, '');
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const sqlite = new SQLite(path);
  // 16 KiB pages for a new database (an existing one keeps its own: WAL mode cannot change it): the audit
  // trail's appends, most of what this database writes under load, cost ~20% less per row than with the
  // default 4 KiB (bench/dev/audit-ingest.ts; interleaved runs, 17 → 14 µs per row). Must precede the
  // first write, which the journal mode below may be.
  sqlite.pragma('page_size = 16384');
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('foreign_keys = ON');
  sqlite.pragma('busy_timeout = 5000');
  // Statement journals in memory: a statement that may fail midway (the audit store's multi-row insert)
  // keeps the pages it changes until it ends, and with 16 KiB pages they spilled to a temporary file,
  // written for nothing on every chunk (+14% bytes written per audit event, kernel time ~5 -> ~9 µs).
  // Temporary tables and sorts are held in memory too: a paged list's sort keeps only its page (LIMIT).
  sqlite.pragma('temp_store = MEMORY');
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
  sqliteHandles.set(db, sqlite);
  return { db, dialect: 'sqlite', url };
}

// Migrations are listed here (not read from disk) so they work the same under tsx, vitest and a bundle.
// Unordered migrations are allowed: branches developed in parallel each add their own numbered migration,
// and a database that already ran 0004 must still accept a 0003 merged later.
const migrations: Record<string, Migration> = {
  '0001_initial': m0001,
  '0002_list_indexes': m0002,
  '0004_change_tracking': m0004,
  '0005_node_identity': m0005,
  '0010_sessions': m0010,
  '0011_oauth': m0011,
  '0011_oauth_flow_binding': m0011b,
  '0012_governance': m0012,
  '0012_governance_tool_pricing': m0012b,
  '0013_audit': m0013,
  '0015_oauth_start_links': m0015,
  '0016_upstream_health': m0016,
  '0017_node_credential_uses': m0017,
  '0018_tombstone_floor': m0018,
  '0019_per_user_catalogs': m0019,
  '0020_audit_indexes': m0020,
  '0020_connection_secret': m0020cs,
  '0021_url_secrets': m0021us,
  '0022_oauth_resource_secrets': m0022,
};

const provider: MigrationProvider = { getMigrations: async () => migrations };

/**
 * `schema`: the PostgreSQL schema the connections use (their search_path). Kysely's migrator looks for its
 * own tables in every schema unless told which, so two installations in one database (parallel test
 * files) would otherwise find each other's migration lock table and skip creating their own.
 */
export async function migrateToLatest(db: Kysely<Database>, schema?: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const { error, results } = await new Migrator({
      db,
      provider,
      allowUnorderedMigrations: true,
      ...(schema !== undefined ? { migrationTableSchema: schema } : {}),
    }).migrateToLatest();
    const failed = results?.find((r) => r.status === 'Error');
    if (!error && !failed) return;
    // Kysely looks for its migration table by introspecting every table of every schema, resolving each by
    // name: another installation's schema, table or column dropped meanwhile (parallel test files, a bench)
    // fails that lookup with 3F000, 42P01 or 42703 before any migration ran. Nothing was changed, so it is
    // simply asked again.
    if (!failed && attempt < 10 && isOtherObjectGone(error, schema)) continue;
    throw new Error(`database migration ${failed?.migrationName ?? ''} failed: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/**
 * PostgreSQL's invalid_schema_name (3F000) for a schema other than `own`, or undefined_table (42P01) or
 * undefined_column (42703) while no migration ran (the caller checks): the introspection resolving another
 * installation's table or column that was just dropped (its message names the relation, not always the
 * schema; this installation's own tables are only made by its migrations, which would have failed instead).
 */
function isOtherObjectGone(error: unknown, own: string | undefined): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const code = (error as { code?: unknown }).code;
  if (code === '42P01' || code === '42703') return true;
  if (code !== '3F000') return false;
  const message = error instanceof Error ? error.message : '';
  return own === undefined || !message.includes(`"${own}"`);
}
