/**
 * Per-row change tracking for every table a snapshot draws from: a `change_version` column (the config
 * version of the last change to the row) and `change_tombstones` (the version at which a row was deleted),
 * maintained by triggers in the same transaction as the change, so the publisher reads only the rows
 * changed since the version it has (issue 11). Triggers rather than repository code, so that every writer
 * (applyConfig, later domains, a manual fix in psql) is tracked without remembering to be.
 *
 * Frozen in time like every migration: `Kysely<any>`, no app types. `trackTableChanges` is exported for
 * later migrations that add snapshot tables (it is frozen with this file: copy it if it must change).
 */
import { PostgresAdapter, sql, type Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- migrations must not depend on app types
type AnyDb = Kysely<any>;

export function isPostgres(db: AnyDb): boolean {
  return db.getExecutor().adapter instanceof PostgresAdapter;
}

/**
 * Adds `change_version` to `table` (whose primary key is the text column `id`) and the triggers that keep
 * it and the tombstones true. Writers bump `config_state.version` first in their transaction (see
 * repos/config-state.ts), so the version a trigger reads is the one that transaction commits. An update
 * that is not a config change (no bump) may set a row's version to the current, already published one:
 * never lower, so a publisher can never miss a change, at worst resend an unchanged row.
 */
export async function trackTableChanges(db: AnyDb, table: string): Promise<void> {
  if (!/^[a-z_]+$/.test(table)) throw new Error(`bad table name ${table}`);
  await db.schema.alterTable(table).addColumn('change_version', 'bigint', (c) => c.notNull().defaultTo(0)).execute();
  await sql`update ${sql.table(table)} set change_version = (select version from config_state where id = 1)`.execute(db);
  await db.schema.createIndex(`${table}_change_version`).on(table).column('change_version').execute();
  const t = sql.raw(table);
  if (isPostgres(db)) {
    await sql`create trigger ${sql.raw(`${table}_track_write`)} before insert or update on ${t}
      for each row execute function gatehouse_track_write()`.execute(db);
    await sql`create trigger ${sql.raw(`${table}_track_delete`)} after delete on ${t}
      for each row execute function gatehouse_track_delete()`.execute(db);
    return;
  }
  const current = sql.raw('(select version from config_state where id = 1)');
  await sql`create trigger ${sql.raw(`${table}_track_insert`)} after insert on ${t} begin
      update ${t} set change_version = ${current} where rowid = new.rowid; end`.execute(db);
  await sql`create trigger ${sql.raw(`${table}_track_update`)} after update on ${t}
      when new.change_version < ${current} begin
      update ${t} set change_version = ${current} where rowid = new.rowid; end`.execute(db);
  await sql`create trigger ${sql.raw(`${table}_track_delete`)} after delete on ${t} begin
      insert or replace into change_tombstones (table_name, row_id, change_version) values (${sql.lit(table)}, old.id, ${current}); end`.execute(db);
}

export async function up(db: AnyDb): Promise<void> {
  await db.schema
    .createTable('change_tombstones')
    .addColumn('table_name', 'text', (c) => c.notNull())
    .addColumn('row_id', 'text', (c) => c.notNull())
    .addColumn('change_version', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('change_tombstones_pk', ['table_name', 'row_id'])
    .execute();
  await db.schema.createIndex('change_tombstones_version').on('change_tombstones').columns(['table_name', 'change_version']).execute();
  if (isPostgres(db)) {
    // TG_TABLE_NAME makes one function serve every tracked table.
    await sql`create or replace function gatehouse_track_write() returns trigger as $$
      declare v bigint;
      begin
        select version into v from config_state where id = 1;
        if tg_op = 'UPDATE' then
          new.change_version := greatest(old.change_version, v);
        else
          new.change_version := v;
        end if;
        return new;
      end $$ language plpgsql`.execute(db);
    await sql`create or replace function gatehouse_track_delete() returns trigger as $$
      declare v bigint;
      begin
        select version into v from config_state where id = 1;
        insert into change_tombstones (table_name, row_id, change_version) values (tg_table_name, old.id, v)
          on conflict (table_name, row_id) do update set change_version = excluded.change_version;
        return old;
      end $$ language plpgsql`.execute(db);
  }
  for (const table of ['users', 'mcp_servers', 'virtual_keys']) await trackTableChanges(db, table);
}

export async function down(db: AnyDb): Promise<void> {
  for (const table of ['users', 'mcp_servers', 'virtual_keys']) {
    for (const suffix of ['track_write', 'track_insert', 'track_update', 'track_delete']) {
      await sql`drop trigger if exists ${sql.raw(`${table}_${suffix}`)}${isPostgres(db) ? sql.raw(` on ${table}`) : sql.raw('')}`.execute(db);
    }
    await db.schema.dropIndex(`${table}_change_version`).execute();
    await db.schema.alterTable(table).dropColumn('change_version').execute();
  }
  if (isPostgres(db)) {
    await sql`drop function if exists gatehouse_track_write()`.execute(db);
    await sql`drop function if exists gatehouse_track_delete()`.execute(db);
  }
  await db.schema.dropTable('change_tombstones').execute();
}
