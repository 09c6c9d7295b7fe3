/**
 * Single use of per-node credentials: `claimNodeCredential` records a verified credential's `jti` and says
 * whether this is its first use. A second presentation (a credential captured in transit and replayed to
 * the same route within its lifetime) is refused by the caller (http/node-auth.ts). Rows are kept until the
 * credential could no longer verify anyway, then pruned. It does not verify credentials.
 */
import type { Db } from './transaction.js';

/** How often (at most) expired rows are deleted, per database handle. */
const PRUNE_EVERY_MS = 60_000;
const lastPruned = new WeakMap<Db, number>();

/**
 * True the first time `(nodeId, jti)` is claimed, false on any later claim (across replicas sharing the
 * database: the primary key decides, atomically). `usableUntilS`: epoch seconds after which the credential
 * no longer verifies, so the row may go.
 */
export async function claimNodeCredential(db: Db, nodeId: string, jti: string, usableUntilS: number, now: number = Date.now()): Promise<boolean> {
  if (now - (lastPruned.get(db) ?? 0) >= PRUNE_EVERY_MS) {
    lastPruned.set(db, now);
    await db.deleteFrom('node_credential_uses').where('expires_at', '<', new Date(now).toISOString()).execute();
  }
  const inserted = await db
    .insertInto('node_credential_uses')
    .values({ node_id: nodeId, jti, expires_at: new Date(usableUntilS * 1000).toISOString() })
    .onConflict((oc) => oc.columns(['node_id', 'jti']).doNothing())
    .executeTakeFirst();
  return inserted.numInsertedOrUpdatedRows === 1n;
}
