/**
 * Several installations share one PostgreSQL database (parallel test files, a bench, a staging copy),
 * each in its own schema. Kysely finds its migration table by introspecting every table of every schema,
 * so another installation's schema dropped during a migration made it fail with `schema "…" does not
 * exist` (3F000), before any migration ran, and a table or a column dropped made it fail with 42P01 or
 * 42703 (seen in full runs with four test files at once). Migrating must succeed whatever other schemas
 * come and go.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { migrateToLatest, openDatabase } from '../../../control-plane/db/database.js';

const url = process.env.TEST_DATABASE_URL;

describe.skipIf(!url)('migrations beside schemas being dropped (PostgreSQL)', () => {
  it('eight installations migrate while other schemas, their tables and columns are created and dropped', async () => {
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    let churning = true;
    // Other installations coming and going: schemas with serial columns, which the introspection resolves by name.
    const churn = (async () => {
      let made = 0;
      while (churning || made < 20) {
        const other = `gh_churn_${randomBytes(6).toString('hex')}`;
        // Many tables, so that the introspection of every schema takes a while and the window is wide.
        const tables = Array.from({ length: 12 }, (_, i) => `CREATE TABLE ${other}.t${i} (id serial primary key, a text, b text, c text)`).join('; ');
        await admin.query(`CREATE SCHEMA ${other}; ${tables}; CREATE TABLE ${other}.t (id serial primary key, a text, b text, c text); CREATE TABLE ${other}.u (id serial primary key, d text)`);
        // A column, then a table, then the schema go, each on its own: the introspection may be resolving
        // any of them by name at that moment (42703, 42P01, 3F000).
        await admin.query(`ALTER TABLE ${other}.t DROP COLUMN b`);
        await admin.query(`DROP TABLE ${other}.u`);
        await admin.query(`DROP SCHEMA ${other} CASCADE`);
        made++;
      }
      return made;
    })();
    const schemas = Array.from({ length: 8 }, () => `gh_${randomBytes(8).toString('hex')}`);
    try {
      for (const schema of schemas) await admin.query(`CREATE SCHEMA ${schema}`);
      const results = await Promise.allSettled(
        schemas.map(async (schema) => {
          const { db } = openDatabase(url as string, { searchPath: schema });
          try {
            await migrateToLatest(db, schema);
            return (await db.selectFrom('config_state').select('version').executeTakeFirstOrThrow()).version;
          } finally {
            await db.destroy();
          }
        }),
      );
      churning = false;
      expect(await churn).toBeGreaterThanOrEqual(20);
      expect(results.map((r) => (r.status === 'fulfilled' ? 'migrated' : String(r.reason)))).toEqual(schemas.map(() => 'migrated'));
    } finally {
      churning = false;
      await churn.catch(() => undefined);
      for (const schema of schemas) await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await admin.end();
    }
  }, 120_000);
});
