/**
 * `config_state.tombstone_floor`: every tombstone (0004_change_tracking) at or below this version has been
 * pruned, so changes can be computed only from a version at or above it. Without pruning, every row ever
 * deleted (keys rotated daily by automation, users leaving) kept a tombstone forever. A node whose version
 * is below the floor gets a whole snapshot instead of a delta (which could otherwise miss a deletion and
 * leave a deleted key working on it).
 * Frozen in time: `Kysely<any>`, no app types.
 */
import type { Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- migrations must not depend on app types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('config_state')
    .addColumn('tombstone_floor', 'bigint', (c) => c.notNull().defaultTo(0))
    .execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- see above
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('config_state').dropColumn('tombstone_floor').execute();
}
