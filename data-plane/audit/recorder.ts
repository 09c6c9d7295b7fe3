/**
 * Turns what the request path knows about a finished request into an audit event and hands it to the
 * outbox: a fresh event id, the node id, the arrival time. Event ids are time-ordered UUIDs (version 7
 * layout: the arrival millisecond, then a counter and a per-process random tail, see `EventIds`): the
 * control plane's unique index on the id then grows at its end like the others instead of taking every
 * insert at a random page, which made each stored event cost more as the table grew (measured: ~17 → ~31
 * µs per row over 240k rows with random ids, ~16 flat with these). It must stay cheap and never throw,
 * since the record stage calls it for every request; content (arguments, results) is included only when
 * the caller says content logging is on for that key and server.
 */
import { randomBytes } from 'node:crypto';
import type { AuditEvent } from '../snapshot/audit-protocol.js';
import type { AuditOutbox } from './outbox.js';

/** What a record stage reports; everything but method, outcome and latency is optional. */
export type AuditRecord = Omit<AuditEvent, 'id' | 'time' | 'node'> & {
  /** Left undefined by the caller, filled in by the recorder; listed first so the event has its final shape from the start. */
  id?: undefined;
  time?: undefined;
  node?: undefined;
};

export interface AuditRecorder {
  /**
   * Records one event that arrived at `startedAt` (epoch ms). The recorder takes `record` over: it is
   * stamped in place and becomes the event (no copy per request), so the caller must not reuse it.
   * `resultJson`: the result as JSON, when the caller has it (`record.result` is then undefined).
   */
  record(startedAt: number, record: AuditRecord, resultJson?: string): void;
}

/**
 * Event ids in the UUID version 7 layout: 48 bits of Unix milliseconds, the version, then 74 bits that are
 * unique rather than random: a 26-bit counter (in the 12 bits after the version and the 14 after the
 * variant) and a 48-bit tail drawn at random once per process (and again whenever the counter wraps).
 * Two events of one process never share (millisecond, counter); two processes share a tail with odds of
 * 2^-48. Why not `randomUUID()` per event: it was ~1 µs of every audited request (the id is an
 * idempotency key, not a secret), and a counter also keeps ids of one millisecond in arrival order.
 */
export class EventIds {
  #tail = EventIds.#newTail();
  #counter: number;
  #prefixMs = Number.NaN;
  #prefix = '';

  /** `counter`: where the counter starts (tests start it near its wrap). */
  constructor(counter = 0) {
    this.#counter = counter & 0x3ffffff;
  }

  static #newTail(): string {
    return randomBytes(6).toString('hex');
  }

  next(ms: number): string {
    const whole = Math.max(0, Math.floor(ms));
    if (whole !== this.#prefixMs) {
      const time = whole.toString(16).padStart(12, '0').slice(-12);
      this.#prefix = `${time.slice(0, 8)}-${time.slice(8)}-7`;
      this.#prefixMs = whole;
    }
    const c = this.#counter;
    this.#counter = (c + 1) & 0x3ffffff;
    if (this.#counter === 0) this.#tail = EventIds.#newTail();
    // 0x1000 | n then dropping the leading 1 pads n to 3 hex digits; 0x8000 | n sets the variant bits (10).
    return `${this.#prefix}${(0x1000 | (c >>> 14)).toString(16).slice(1)}-${(0x8000 | (c & 0x3fff)).toString(16)}-${this.#tail}`;
  }
}

const defaultIds = new EventIds();

/**
 * `new Date(ms).toISOString()`, made from the second's text (computed once a second) and the milliseconds:
 * under load nearly every event has a millisecond of its own, and a Date per event showed in the profile.
 */
export class IsoClock {
  #second = Number.NaN;
  #prefix = '';

  iso(ms: number): string {
    const second = Math.floor(ms / 1000);
    if (second !== this.#second) {
      this.#second = second;
      // `YYYY-MM-DDTHH:mm:ss` (and the sign and six digits of years past 9999, as toISOString writes them).
      this.#prefix = new Date(second * 1000).toISOString().slice(0, -5);
    }
    return `${this.#prefix}.${(1000 + (ms - second * 1000)).toString().slice(1)}Z`;
  }
}

/** A time-ordered event id for `ms` (see `EventIds`). */
export function timeOrderedId(ms: number): string {
  return defaultIds.next(ms);
}

export function createAuditRecorder(outbox: AuditOutbox, nodeId: string): AuditRecorder {
  const clock = new IsoClock();
  const ids = new EventIds();
  return {
    record(startedAt, record, resultJson) {
      try {
        const ms = Math.floor(startedAt);
        const event = record as unknown as AuditEvent;
        event.id = ids.next(ms);
        event.time = clock.iso(ms);
        event.node = nodeId;
        outbox.record(event, resultJson);
      } catch {
        outbox.countDropped(1);
      }
    },
  };
}
