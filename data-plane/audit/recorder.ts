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
export type AuditRecord = Omit<AuditEvent, 'id' | 'time' | 'node'> & { startedAt?: number };

export interface AuditRecorder {
  record(record: AuditRecord): void;
}

export function createAuditRecorder(outbox: AuditOutbox, nodeId: string, now: () => number = Date.now): AuditRecorder {
  return {
    record(record) {
      try {
        const { startedAt, ...rest } = record;
        outbox.record({ id: randomUUID(), time: new Date(startedAt ?? now() - record.latencyMs).toISOString(), node: nodeId, ...rest });
      } catch {
        outbox.countDropped(1);
      }
    },
  };
}
