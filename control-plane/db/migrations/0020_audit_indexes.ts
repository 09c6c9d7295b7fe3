/**
 * The audit store's indexes, reconsidered for the cost of storing a row (issue 8): every index is one more
 * B-tree insert per event stored, which the control plane pays for every call a node serves. This drops
 * `audit_events_received` (received_at), whose only reader was `verifyAuditChain(from, to)`: received_at
 * never decreases along a partition's seq (the store stamps it so), so the chain's own unique
 * (partition, seq) index finds the window by bisection (store.ts).
 *
 * What stays, and why each is needed:
 * - `id` unique: idempotency (at-least-once delivery, exactly-once storage; a replica racing another on the
 *   same batch fails on it);
 * - `(partition, seq)` unique: the chain's order for the head, verification and its window, and a second
 *   writer of one partition (two processes given the same GATEHOUSE_AUDIT_PARTITION) fails instead of forking it;
 * - `(key_id, row_id)`, `(user_id, row_id)`, `(server, tool, row_id)`, `(time, row_id)`: the auditEvents
 *   filters, each an equality (or the time range) followed by the page order, so a page of one key, user or
 *   server (and tool) is one range scan however many events match. They cannot be merged: an index serves
 *   the row_id order only after equality on every column before it, so (user_id, key_id, row_id) would page
 *   one user's events by a sort of all of them. `outcome` has none (a handful of values: paging by row_id
 *   and filtering finds a page quickly unless the outcome is rare, and a rare outcome is found with one of
 *   the other filters). Fewer or partial indexes would save rows' inserts only for events that lack the
 *   column, which at load (tools/call by a known key) is none of them.
 * Frozen in time like every migration: `Kysely<any>`, no app types.
 */
import type { Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- migrations must not depend on app types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('audit_events_received').execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- see above
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.createIndex('audit_events_received').on('audit_events').columns(['received_at']).execute();
}
