/**
 * The audit hash chain, pure: how a stored row's hash is computed from the previous row's hash and its
 * own content, what the first row of a partition links to, and whether a row as read back from the
 * database still matches what was chained (its hash, its link, its seq, and its indexed columns against
 * the event it stores). No I/O: store.ts reads rows and calls `checkRow` in chain order.
 *
 * hash = base64url(SHA-256("gatehouse-audit/v1" ‖ partition ‖ seq ‖ received_at ‖ prev_hash ‖ event JSON)),
 * fields separated by a newline; the event JSON holds the event id, so every column is covered either
 * directly or through the event it copies.
 */
import { createHash, hash } from 'node:crypto';
import type { Selectable } from 'kysely';
import type { AuditEvent } from '../../data-plane/snapshot/audit-protocol.js';
import type { AuditEventsTable } from '../db/schema.js';
import { withoutNul } from '../db/text.js';

export const CHAIN_VERSION = 'gatehouse-audit/v1';

export function genesisHash(partition: string): string {
  return createHash('sha256').update(`${CHAIN_VERSION}\ngenesis\n${partition}`).digest('base64url');
}

export interface ChainedFields {
  partition: string;
  seq: number;
  receivedAt: string;
  prevHash: string;
  /** The canonical event JSON exactly as stored. */
  event: string;
}

export function rowHash(f: ChainedFields): string {
  // One-shot `hash` over the joined text: the same bytes as a Hash object fed the parts in turn, without
  // the object (a few µs per row, paid for every event stored and every row verified).
  return hash('sha256', `${CHAIN_VERSION}\n${f.partition}\n${f.seq}\n${f.receivedAt}\n${f.prevHash}\n${f.event}`, 'base64url');
}

/** A stored row as the store reads it back. */
export type StoredAuditRow = Selectable<AuditEventsTable>;

/**
 * Free text a caller chose (a tool name, say) may hold U+0000, which PostgreSQL cannot store: the columns
 * hold what it stores on either dialect (U+FFFD), so the event is kept and checkRow agrees with the row.
 * (At module level: a closure made per call, which tsx also names at run time, showed in the ingest's profile.)
 */
function text(value: string | null | undefined): string | null {
  return value === null || value === undefined ? null : withoutNul(value);
}

/** The columns a row copies out of its event (for indexes and filters), derived the one way. */
export function indexedColumns(event: AuditEvent): Pick<StoredAuditRow, 'id' | 'time' | 'node' | 'key_id' | 'user_id' | 'server' | 'tool' | 'outcome'> {
  return {
    id: event.id,
    time: event.time,
    node: withoutNul(event.node),
    key_id: text(event.keyId),
    user_id: text(event.userId),
    server: text(event.server),
    tool: text(event.tool),
    outcome: withoutNul(event.outcome),
  };
}

export type BrokenReason = 'hash_mismatch' | 'link_mismatch' | 'seq_gap' | 'column_mismatch' | 'unparsable_event' | 'checkpoint_mismatch' | 'checkpoint_signature';

/**
 * Checks one row against the row before it in its partition (`previous`: its seq and hash; null when
 * `row` should be the partition's first). Returns null when the row holds, else why not.
 */
export function checkRow(row: StoredAuditRow, previous: { seq: number; hash: string } | null): BrokenReason | null {
  const expectedSeq = previous === null ? 1 : previous.seq + 1;
  if (row.seq !== expectedSeq) return 'seq_gap';
  const expectedPrev = previous === null ? genesisHash(row.partition) : previous.hash;
  if (row.prev_hash !== expectedPrev) return 'link_mismatch';
  if (rowHash({ partition: row.partition, seq: row.seq, receivedAt: row.received_at, prevHash: row.prev_hash, event: row.event }) !== row.hash) {
    return 'hash_mismatch';
  }
  let event: AuditEvent;
  try {
    event = JSON.parse(row.event) as AuditEvent;
  } catch {
    return 'unparsable_event';
  }
  const columns = indexedColumns(event);
  for (const [name, value] of Object.entries(columns) as [keyof typeof columns, string | null][]) {
    if (row[name] !== value) return 'column_mismatch';
  }
  return null;
}
