/**
 * The configuration version nodes converge on: one row, bumped in the same transaction as every change that
 * alters what data-plane nodes serve. It does not compile or publish snapshots (control-plane/snapshot does).
 */
import type { Kysely, Transaction } from 'kysely';
import type { Database } from '../db/schema.js';
import type { Db } from './transaction.js';

/**
 * Increments the version and returns the new value. The UPDATE takes the row lock on PostgreSQL until
 * commit, so config-changing transactions are serialised and versions become visible in commit order.
 * Repositories call it first in their transaction, so every writer takes this lock before any other
 * (one lock order: no deadlocks between config changes).
 */
export async function bumpConfigVersion(trx: Transaction<Database>): Promise<number> {
  const row = await trx
    .updateTable('config_state')
    .set((eb) => ({ version: eb('version', '+', 1) }))
    .where('id', '=', 1)
    .returning('version')
    .executeTakeFirstOrThrow();
  return Number(row.version);
}

/**
 * Takes the same row lock as bumpConfigVersion without changing the version, for a writer that must read
 * the whole configuration and then decide what to change (applyConfig): concurrent config changes wait,
 * and if it changes nothing, the version does not move. (A no-op UPDATE rather than SELECT … FOR UPDATE,
 * which SQLite does not have; there the transaction's write lock serialises writers anyway.)
 */
export async function lockConfig(trx: Transaction<Database>): Promise<void> {
  await trx
    .updateTable('config_state')
    .set((eb) => ({ version: eb.ref('version') }))
    .where('id', '=', 1)
    .execute();
}

export async function currentConfigVersion(db: Db): Promise<number> {
  const row = await db.selectFrom('config_state').select('version').where('id', '=', 1).executeTakeFirstOrThrow();
  return Number(row.version);
}

/**
 * Keeps the newest `keep` tombstones (rows deleted from tables nodes receive) and drops the rest, raising
 * `config_state.tombstone_floor` to the newest version dropped. Deltas are then computed only from
 * versions at or above the floor (`readChanges` says when one is below it, and that node gets a whole
 * snapshot), so pruning never lets a delta miss a deletion. Takes the config lock first, like every
 * writer: a delete committing meanwhile waits, and its tombstone is newer than anything dropped.
 */
export async function pruneTombstones(db: Kysely<Database>, keep: number): Promise<{ floor: number; pruned: number }> {
  return db.transaction().execute(async (trx) => {
    await lockConfig(trx);
    const state = await trx.selectFrom('config_state').select('tombstone_floor').where('id', '=', 1).executeTakeFirstOrThrow();
    const floor = Number(state.tombstone_floor);
    const oldestDropped = await trx
      .selectFrom('change_tombstones')
      .select('change_version')
      .orderBy('change_version', 'desc')
      .limit(1)
      .offset(Math.max(0, Math.floor(keep)))
      .executeTakeFirst();
    if (!oldestDropped) return { floor, pruned: 0 };
    const newFloor = Math.max(floor, Number(oldestDropped.change_version));
    const deleted = await trx.deleteFrom('change_tombstones').where('change_version', '<=', newFloor).executeTakeFirst();
    await trx.updateTable('config_state').set({ tombstone_floor: newFloor }).where('id', '=', 1).execute();
    return { floor: newFloor, pruned: Number(deleted.numDeletedRows) };
  });
}
