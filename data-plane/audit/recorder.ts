/**
 * Turns what the request path knows about a finished request into an audit event and hands it to the
 * outbox: a fresh event id, the node id, the arrival time. It must stay cheap and never throw, since
 * the record stage calls it for every request; content (arguments, results) is included only when the
 * caller says content logging is on for that key and server.
 */
import { randomUUID } from 'node:crypto';
import type { AuditEvent } from '../snapshot/audit-protocol.js';
import type { AuditOutbox } from './outbox.js';

/** What a record stage reports; everything but method, outcome and latency is optional. */
export type AuditRecord = Omit<AuditEvent, 'id' | 'time' | 'node'>;

export interface AuditRecorder {
  /**
   * Records one event that arrived at `startedAt` (epoch ms). The recorder takes `record` over: it is
   * stamped in place and becomes the event (no copy per request), so the caller must not reuse it.
   */
  record(startedAt: number, record: AuditRecord): void;
}

export function createAuditRecorder(outbox: AuditOutbox, nodeId: string): AuditRecorder {
  // Requests arriving in the same millisecond share one ISO string (thousands a second do under load).
  let lastMs = Number.NaN;
  let lastIso = '';
  return {
    record(startedAt, record) {
      try {
        const ms = Math.floor(startedAt);
        if (ms !== lastMs) {
          lastIso = new Date(ms).toISOString();
          lastMs = ms;
        }
        const event = record as AuditEvent;
        event.id = randomUUID();
        event.time = lastIso;
        event.node = nodeId;
        outbox.record(event);
      } catch {
        outbox.countDropped(1);
      }
    },
  };
}
