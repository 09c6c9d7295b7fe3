/**
 * Named locks for check-then-write sequences that must not interleave across control-plane replicas
 * (the bootstrap admin token, the last-admin-token guard, node enrollment). Updating the lock's row first
 * in the transaction takes PostgreSQL's row lock until commit, and SQLite's write lock; a second
 * transaction blocks there, then reads what the first committed. It does not retry anything.
 */
import type { Trx } from './transaction.js';
import { nowIso } from './transaction.js';

export type LockName = 'admin_tokens' | 'nodes';

export async function takeLock(trx: Trx, name: LockName): Promise<void> {
  const result = await trx.updateTable('app_locks').set({ taken_at: nowIso() }).where('name', '=', name).executeTakeFirst();
  if (Number(result.numUpdatedRows) !== 1) throw new Error(`lock row ${name} is missing (migration 0005_node_identity)`);
}
