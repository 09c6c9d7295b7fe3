/**
 * The recorder stamps events with time-ordered ids (UUID version 7 layout), so the control plane's unique
 * id index grows at its end: ids of later arrivals sort after earlier ones, and every id is a valid UUID
 * the audit protocol accepts.
 */
import { describe, expect, it } from 'vitest';
import { AuditOutbox, batchLines } from '../../../data-plane/audit/outbox.js';
import { EventIds, IsoClock, createAuditRecorder, timeOrderedId } from '../../../data-plane/audit/recorder.js';
import { createLogger } from '../../../data-plane/log.js';
import { AuditEventSchema } from '../../../data-plane/snapshot/audit-protocol.js';
import { LogCapture } from '../../support/log-capture.js';

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('audit recorder', () => {
  it('gives events time-ordered UUIDv7 ids that the protocol accepts', async () => {
    const outbox = new AuditOutbox({ dir: null, logger: createLogger('recorder-test', { destination: new LogCapture() }) });
    const recorder = createAuditRecorder(outbox, 'node-1');
    const t0 = Date.UTC(2026, 11, 1, 6, 0, 0);
    for (let i = 0; i < 5; i++) recorder.record(t0 + i * 7, { method: 'tools/call', outcome: 'ok', latencyMs: 1 });
    await outbox.flush();
    const batch = (await outbox.nextBatch(10, 1 << 20))!;
    const events = batchLines(batch).map((l) => AuditEventSchema.parse(JSON.parse(l)));
    expect(events.map((e) => e.time)).toEqual([0, 7, 14, 21, 28].map((d) => new Date(t0 + d).toISOString()));
    for (const e of events) expect(e.id).toMatch(UUID_V7);
    expect([...events.map((e) => e.id)].sort()).toEqual(events.map((e) => e.id));
    expect(new Set(events.map((e) => e.id)).size).toBe(5);
    expect(timeOrderedId(t0).slice(0, 13)).toBe(`${t0.toString(16).padStart(12, '0').slice(0, 8)}-${t0.toString(16).padStart(12, '0').slice(8)}`);
    await outbox.close();
  });
});

describe('event ids', () => {
  it('are unique and ordered within one millisecond, across a counter wrap, and differ between id sources', () => {
    const ids = new EventIds();
    const t0 = Date.UTC(2026, 11, 1, 6, 0, 0);
    const same = Array.from({ length: 20_000 }, () => ids.next(t0));
    for (const id of same) expect(id).toMatch(UUID_V7);
    expect(new Set(same).size).toBe(same.length);
    expect([...same].sort()).toEqual(same);
    // The counter is 26 bits: across its wrap ids stay unique within one millisecond, because the tail is drawn again.
    const wrapping = new EventIds(0x4000000 - 3);
    const around = Array.from({ length: 6 }, () => wrapping.next(t0));
    for (const id of around) expect(id).toMatch(UUID_V7);
    expect(new Set(around).size).toBe(6);
    expect(new Set(around.map((id) => id.slice(-12))).size).toBe(2);
    // Another process (another source) draws another tail.
    expect(new EventIds().next(t0).slice(-12)).not.toBe(new EventIds().next(t0).slice(-12));
  });
});

describe('event times', () => {
  it('are what Date#toISOString says, across seconds, years and the epoch', () => {
    const clock = new IsoClock();
    const samples = [0, 1, 999, 1000, 1001, -1, -1000, -1001, Date.UTC(2026, 11, 31, 23, 59, 59, 999), Date.UTC(2027, 0, 1), Date.UTC(10_000, 0, 1, 0, 0, 0, 5), 8.64e15];
    for (let i = 0; i < 2000; i++) samples.push(Date.UTC(2026, 11, 1) + Math.floor(i * 7.3));
    for (let i = 0; i < 200; i++) samples.push(Math.floor(Math.random() * 4e12));
    for (const ms of samples) expect(clock.iso(ms)).toBe(new Date(ms).toISOString());
  });
});
