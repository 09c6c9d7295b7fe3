/**
 * The node's audit outbox on a real disk: events are durable after a flush, survive a reopen (a node
 * restart) with the backlog counted, a torn last line from a crash is dropped, acknowledged segments are
 * deleted and never resent, and a full outbox drops new events (counted) instead of old ones.
 */
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { AuditOutbox, batchLines } from '../../../data-plane/audit/outbox.js';
import { createLogger } from '../../../data-plane/log.js';
import type { AuditEvent } from '../../../data-plane/snapshot/audit-protocol.js';
import { LogCapture } from '../../support/log-capture.js';

const logger = createLogger('outbox-test', { destination: new LogCapture() });
const ev = (i: number): AuditEvent => ({ id: `event-${String(i).padStart(6, '0')}`, time: new Date().toISOString(), node: 'n', method: 'tools/call', outcome: 'ok', latencyMs: 1 });

async function drain(outbox: AuditOutbox, maxEvents = 7): Promise<string[]> {
  const ids: string[] = [];
  for (;;) {
    const batch = await outbox.nextBatch(maxEvents, 1 << 20);
    if (!batch) return ids;
    ids.push(...batchLines(batch).map((l) => (JSON.parse(l) as AuditEvent).id));
    await outbox.acknowledge(batch);
  }
}

describe('audit outbox', () => {
  it('keeps unacknowledged events across a reopen and resends exactly those', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'outbox-'));
    const a = new AuditOutbox({ dir, logger, segmentBytes: 500 });
    for (let i = 0; i < 30; i++) a.record(ev(i));
    await a.flush();
    expect(a.snapshot().depth).toBe(30);
    const first = await a.nextBatch(10, 1 << 20);
    await a.acknowledge(first!);
    for (let i = 30; i < 40; i++) a.record(ev(i));
    await a.close();

    const b = new AuditOutbox({ dir, logger, segmentBytes: 500 });
    expect(b.snapshot().depth).toBe(30);
    const ids = await drain(b);
    expect(ids).toEqual(Array.from({ length: 30 }, (_, i) => ev(i + 10).id));
    expect(b.snapshot()).toMatchObject({ depth: 0, bytes: 0, dropped: 0 });
    // Segments only grow while written: after rotation, delivered ones are gone.
    for (let i = 40; i < 60; i++) b.record(ev(i));
    await b.flush();
    expect(readdirSync(dir).filter((f) => f.startsWith('seg-')).length).toBeGreaterThanOrEqual(1);
    expect(await drain(b)).toEqual(Array.from({ length: 20 }, (_, i) => ev(i + 40).id));
    await b.close();
    const c = new AuditOutbox({ dir, logger });
    expect(await drain(c)).toEqual([]);
    await c.close();
  });

  it('drops a torn last line left by a crash', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'outbox-'));
    const a = new AuditOutbox({ dir, logger });
    for (let i = 0; i < 3; i++) a.record(ev(i));
    await a.close();
    const segment = readdirSync(dir).find((f) => f.startsWith('seg-'))!;
    appendFileSync(join(dir, segment), '{"id":"event-torn","ti');
    const b = new AuditOutbox({ dir, logger });
    expect(b.snapshot().depth).toBe(3);
    b.record(ev(3));
    await b.flush();
    expect(await drain(b)).toEqual([ev(0).id, ev(1).id, ev(2).id, ev(3).id]);
    await b.close();
  });

  it('drops new events, counted, when full; keeps the old ones', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'outbox-'));
    const a = new AuditOutbox({ dir, logger, maxBytes: 1000 });
    for (let i = 0; i < 50; i++) a.record(ev(i));
    await a.flush();
    const { depth, dropped } = a.snapshot();
    expect(depth).toBeGreaterThan(0);
    expect(depth + dropped).toBe(50);
    expect(dropped).toBeGreaterThan(0);
    expect(await drain(a)).toEqual(Array.from({ length: depth }, (_, i) => ev(i).id));
    await a.close();
  });

  it('after a crash, resends what the lagging cursor file had not caught up with, and loses nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'outbox-'));
    const a = new AuditOutbox({ dir, logger, cursorIntervalMs: 60_000 });
    for (let i = 0; i < 10; i++) a.record(ev(i));
    await a.flush();
    // The first acknowledgement writes the cursor file; the second is only in memory (within the interval).
    await a.acknowledge((await a.nextBatch(3, 1 << 20))!);
    await a.acknowledge((await a.nextBatch(3, 1 << 20))!);
    expect(a.snapshot().depth).toBe(4);
    // A crash: no close. The reopened outbox starts from the cursor file.
    const b = new AuditOutbox({ dir, logger });
    expect(await drain(b)).toEqual(Array.from({ length: 7 }, (_, i) => ev(i + 3).id));
    await b.close();
    // A clean close saves the cursor: nothing is sent again.
    const c = new AuditOutbox({ dir, logger });
    expect(await drain(c)).toEqual([]);
    await c.close();
    await a.close();
  });

  it('keeps events of every size and script intact across buffer chunks, on disk and in memory', async () => {
    const text = (i: number): string => (i % 3 === 0 ? 'é✓🚀'.repeat(1 + (i % 700)) : i % 3 === 1 ? 'x'.repeat(70_000 + i) : `plain ${i}`);
    const events = Array.from({ length: 60 }, (_, i) => ({ ...ev(i), arguments: { text: text(i) } }));
    for (const dir of [mkdtempSync(join(tmpdir(), 'outbox-')), null]) {
      const outbox = new AuditOutbox({ dir, logger, maxEventBytes: 1 << 20, flushEvents: 1000 });
      // A quarter-megabyte chunk holds a few of these: most flushes span several chunks, and events cross none.
      for (const event of events) outbox.record(event);
      await outbox.flush();
      const lines: string[] = [];
      for (;;) {
        const batch = await outbox.nextBatch(1000, 16 << 20);
        if (!batch) break;
        lines.push(...batchLines(batch));
        await outbox.acknowledge(batch);
      }
      expect(lines.map((l) => JSON.parse(l) as unknown)).toEqual(events);
      expect(outbox.snapshot()).toMatchObject({ depth: 0, bytes: 0, dropped: 0, shipped: 60 });
      await outbox.close();
    }
  });

  it('writes at every flush and fsyncs at most once per sync interval, the last write included', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'outbox-'));
    const probe = await open(join(dir, 'probe'), 'w');
    const handleProto = Object.getPrototypeOf(probe) as { datasync(): Promise<void>; writev(...args: unknown[]): Promise<unknown> };
    await probe.close();
    const syncs = vi.spyOn(handleProto, 'datasync');
    const writes = vi.spyOn(handleProto, 'writev');
    try {
      const outbox = new AuditOutbox({ dir, logger, flushIntervalMs: 1, syncIntervalMs: 300 });
      const started = performance.now();
      for (let i = 0; i < 8; i++) {
        outbox.record(ev(i));
        const before = writes.mock.calls.length;
        await vi.waitFor(() => expect(writes.mock.calls.length).toBeGreaterThan(before), { timeout: 2000, interval: 1 });
      }
      const elapsed = performance.now() - started;
      // Eight writes; at most one fsync per 300 ms of them (the first write syncs at once).
      expect(writes.mock.calls.length).toBe(8);
      expect(syncs.mock.calls.length).toBeLessThanOrEqual(1 + Math.floor(elapsed / 300));
      // The last write is synced within the interval without another event or a flush.
      const lastWrite = writes.mock.invocationCallOrder.at(-1)!;
      await vi.waitFor(() => expect(syncs.mock.invocationCallOrder.at(-1) ?? 0).toBeGreaterThan(lastWrite), { timeout: 2000, interval: 10 });
      // The shipper may read what was written before it was synced.
      expect(await drain(outbox, 100)).toEqual(Array.from({ length: 8 }, (_, i) => ev(i).id));
      await outbox.close();
    } finally {
      syncs.mockRestore();
      writes.mockRestore();
    }
  });

  it('reads about a batch per batch while a backlog drains, and still finds an event longer than that', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'outbox-'));
    const outbox = new AuditOutbox({ dir, logger, maxEventBytes: 1 << 20 });
    const events = Array.from({ length: 3000 }, (_, i) => (i === 2500 ? { ...ev(i), arguments: { text: 'y'.repeat(300_000) } } : ev(i)));
    for (const event of events) outbox.record(event);
    await outbox.flush();
    const probe = await open(join(dir, 'probe'), 'w');
    const handleProto = Object.getPrototypeOf(probe) as { read(...args: unknown[]): Promise<unknown> };
    await probe.close();
    const reads = vi.spyOn(handleProto, 'read');
    try {
      const ids: string[] = [];
      for (;;) {
        const batch = await outbox.nextBatch(100, 4 << 20);
        if (!batch) break;
        ids.push(...batchLines(batch).map((l) => (JSON.parse(l) as AuditEvent).id));
        await outbox.acknowledge(batch);
      }
      expect(ids).toEqual(events.map((e) => e.id));
      const lengths = reads.mock.calls.map((call) => call[2] as number);
      const backlog = events.length * 120;
      // Most reads are about one batch (100 lines of ~110 bytes, plus slack), far below the backlog.
      expect(lengths.filter((n) => n < backlog / 2).length).toBeGreaterThanOrEqual(lengths.length - 3);
      expect(Math.max(...lengths)).toBeGreaterThan(300_000);
    } finally {
      reads.mockRestore();
    }
    await outbox.close();
  });

  it('after a write that failed half-way (a full disk), keeps every event once and no torn line', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'outbox-'));
    const probe = await open(join(dir, 'probe'), 'w');
    const handleProto = Object.getPrototypeOf(probe) as { writev(buffers: Buffer[], position?: number): Promise<{ bytesWritten: number }> };
    await probe.close();
    const original = handleProto.writev;
    let failures = 1;
    const writes = vi.spyOn(handleProto, 'writev').mockImplementation(async function (this: unknown, buffers: Buffer[]) {
      if (failures-- > 0) {
        // Part of the first buffer reaches the file, then the disk is full.
        await original.call(this, [buffers[0]!.subarray(0, Math.ceil(buffers[0]!.length / 2))]);
        throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
      }
      return original.call(this, buffers);
    });
    try {
      const outbox = new AuditOutbox({ dir, logger });
      for (let i = 0; i < 20; i++) outbox.record(ev(i));
      await outbox.flush();
      for (let i = 20; i < 30; i++) outbox.record(ev(i));
      await outbox.flush();
      expect(writes.mock.calls.length).toBeGreaterThanOrEqual(2);
      expect(await drain(outbox, 100)).toEqual(Array.from({ length: 30 }, (_, i) => ev(i).id));
      await outbox.close();
      // What a restart finds is the same: nothing torn, nothing twice.
      const again = new AuditOutbox({ dir, logger });
      expect(again.snapshot()).toMatchObject({ depth: 0 });
      await again.close();
    } finally {
      writes.mockRestore();
    }
  });

  it('after a machine crash took a shipped, unsynced tail, ships the events recorded after the restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'outbox-'));
    const a = new AuditOutbox({ dir, logger });
    for (let i = 0; i < 10; i++) a.record(ev(i));
    await a.flush();
    expect(await drain(a, 100)).toHaveLength(10);
    await a.close();
    // The segment loses its last 4 events (never synced), the cursor file (pointing past them) survives.
    const segment = readdirSync(dir).find((f) => f.startsWith('seg-'))!;
    const lines = readFileSync(join(dir, segment), 'utf8').split('\n').filter(Boolean);
    writeFileSync(join(dir, segment), lines.slice(0, 6).map((l) => `${l}\n`).join(''));
    const b = new AuditOutbox({ dir, logger });
    expect(b.snapshot().depth).toBe(0);
    for (let i = 10; i < 13; i++) b.record(ev(i));
    await b.flush();
    expect(await drain(b, 100)).toEqual([ev(10).id, ev(11).id, ev(12).id]);
    await b.close();
  });

  it('ends a wait at once when its signal was aborted before the wait began', async () => {
    // The shipper's stop can land while it reads a batch; its next wait (1 s) must not hold up the node's close.
    const a = new AuditOutbox({ dir: null, logger });
    const stopped = new AbortController();
    stopped.abort();
    const bound = new Promise<string>((resolve) => setTimeout(() => resolve('waited out'), 5_000).unref());
    expect(await Promise.race([a.waitForEvents(60_000, stopped.signal).then(() => 'ended'), bound])).toBe('ended');
    await a.close();
  });

  it('works in memory without a state dir', async () => {
    const a = new AuditOutbox({ dir: null, logger });
    for (let i = 0; i < 12; i++) a.record(ev(i));
    await a.flush();
    expect(await drain(a, 5)).toEqual(Array.from({ length: 12 }, (_, i) => ev(i).id));
    await a.close();
  });
});
