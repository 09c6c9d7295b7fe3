/**
 * The audit store on every test dialect: idempotent ingest (by event id, across batches and within one),
 * the node id taken from authentication, a chain that verifies, and tampering found at the row tampered
 * with: an edited, deleted or reordered row, an edited indexed column, a forged checkpoint.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AuditStore, listAuditEvents, verifyAuditChain } from '../../../control-plane/audit/store.js';
import { createLogger } from '../../../control-plane/log.js';
import { generateSigningKey, importSigningKey, type SigningKey } from '../../../data-plane/snapshot/sign.js';
import { openTestDatabase, testDialects, type TestDatabase } from '../../support/db.js';
import { LogCapture } from '../../support/log-capture.js';

const event = (i: number, over: Record<string, unknown> = {}) => ({
  id: randomUUID(),
  time: new Date(Date.UTC(2026, 11, 1, 0, 0, i)).toISOString(),
  node: 'claimed-node',
  method: 'tools/call',
  keyId: `key-${i % 3}`,
  userId: 'user-1',
  server: 'docs',
  tool: i % 2 ? 'search' : 'fetch',
  arguments: { q: `query ${i}` },
  outcome: i % 5 === 0 ? 'denied' : 'ok',
  latencyMs: 3,
  ...over,
});

describe.each(testDialects)('audit store on %s', (dialect) => {
  let t: TestDatabase;
  let key: SigningKey;
  let store: AuditStore;
  beforeEach(async () => {
    t = await openTestDatabase(dialect);
    key = await importSigningKey(await generateSigningKey());
    store = new AuditStore({ db: t.db, signingKey: key, logger: createLogger('audit-test', { destination: new LogCapture() }), checkpointEvery: 10 });
  });
  afterEach(async () => {
    await t?.close();
  });

  it('stores each event id once, as the authenticated node, and the chain verifies', async () => {
    const batch = Array.from({ length: 25 }, (_, i) => event(i));
    expect(await store.ingest('node-a', batch)).toEqual({ accepted: 25, duplicates: 0, rejected: [] });
    // Resent batch (the node never saw the answer), plus a duplicate inside the batch and a bad event.
    const again = await store.ingest('node-a', [...batch.slice(20), batch[0], { id: 'x' }, event(99)]);
    expect(again).toEqual({ accepted: 1, duplicates: 6, rejected: [{ index: 6, reason: expect.any(String) }] });
    const rows = await t.db.selectFrom('audit_events').selectAll().orderBy('seq').execute();
    expect(rows).toHaveLength(26);
    expect(new Set(rows.map((r) => r.node))).toEqual(new Set(['node-a']));
    expect(rows.map((r) => Number(r.seq))).toEqual(Array.from({ length: 26 }, (_, i) => i + 1));

    await store.checkpoint();
    const verified = await verifyAuditChain(t.db, [key.publicJwk]);
    expect(verified).toMatchObject({ ok: true, checkedEvents: 26, firstBroken: null, partitions: 1 });
    expect(verified.checkedCheckpoints).toBe(2);
  });

  it('stores values that need quoting exactly, in arrival order, and nulls as nulls', async () => {
    const awkward = ['NULL', 'null', '{a,b}', '"quoted"', 'back\\slash', 'tab\there', "it's", 'é✓🚀', ' spaced ', '', ','];
    const batch = awkward.map((text, i) => event(i, { keyId: text, tool: text, server: i % 2 ? null : text, arguments: { text }, userId: i % 3 ? undefined : text }));
    expect(await store.ingest('node-q', batch)).toMatchObject({ accepted: awkward.length });
    const rows = await t.db.selectFrom('audit_events').select(['id', 'key_id', 'tool', 'server', 'user_id', 'event']).orderBy('row_id').execute();
    expect(rows.map((r) => r.id)).toEqual(batch.map((e) => e.id));
    rows.forEach((row, i) => {
      expect(row.key_id).toBe(awkward[i]);
      // A tool name's control characters (the tab) are stored escaped (data-plane/snapshot/tool-names.ts).
      expect(row.tool).toBe(awkward[i]?.replace('\t', '\\u{9}'));
      expect(row.server).toBe(i % 2 ? null : awkward[i]);
      expect(row.user_id).toBe(i % 3 ? null : awkward[i]);
      expect((JSON.parse(row.event) as { arguments: unknown }).arguments).toEqual({ text: awkward[i] });
    });
    expect((await verifyAuditChain(t.db, [key.publicJwk])).ok).toBe(true);
  });

  it('stores a batch larger than one insert, after some of it was stored before, in order and once', async () => {
    const events = Array.from({ length: 450 }, (_, i) => event(i));
    expect(await store.ingest('node-a', events.slice(100, 150))).toMatchObject({ accepted: 50 });
    expect(await store.ingest('node-a', events)).toEqual({ accepted: 400, duplicates: 50, rejected: [] });
    const rows = await t.db.selectFrom('audit_events').select(['id', 'seq']).orderBy('row_id').execute();
    expect(rows.map((r) => r.id)).toEqual([...events.slice(100, 150), ...events.slice(0, 100), ...events.slice(150)].map((e) => e.id));
    expect(rows.map((r) => Number(r.seq))).toEqual(Array.from({ length: 450 }, (_, i) => i + 1));
    expect((await verifyAuditChain(t.db, [key.publicJwk])).ok).toBe(true);
  });

  it('stores a batch whose chunks each hold one event stored before: every other event once, the chain unbroken', async () => {
    // One stored id inside each multi-row chunk (and the last event) makes every chunk's optimistic insert fail.
    const events = Array.from({ length: 333 }, (_, i) => event(i));
    const storedBefore = events.filter((_, i) => i % 37 === 5 || i === 332);
    expect(await store.ingest('node-a', storedBefore)).toMatchObject({ accepted: storedBefore.length });
    expect(await store.ingest('node-a', events)).toEqual({ accepted: 333 - storedBefore.length, duplicates: storedBefore.length, rejected: [] });
    const rows = await t.db.selectFrom('audit_events').select(['id', 'seq']).orderBy('row_id').execute();
    expect(rows.map((r) => r.id)).toEqual([...storedBefore, ...events.filter((e) => !storedBefore.includes(e))].map((e) => e.id));
    expect(rows.map((r) => Number(r.seq))).toEqual(Array.from({ length: 333 }, (_, i) => i + 1));
    // Resent whole, it stores nothing.
    expect(await store.ingest('node-a', events)).toEqual({ accepted: 0, duplicates: 333, rejected: [] });
    expect(await verifyAuditChain(t.db, [key.publicJwk])).toMatchObject({ ok: true, checkedEvents: 333 });
  });

  it('filters and pages events in arrival order', async () => {
    await store.ingest('node-a', Array.from({ length: 12 }, (_, i) => event(i)));
    const page = await listAuditEvents(t.db, { keyId: 'key-1' }, { limit: 10, inverted: false });
    expect(page.map((e) => e.event.keyId)).toEqual(['key-1', 'key-1', 'key-1', 'key-1']);
    const denied = await listAuditEvents(t.db, { outcome: 'denied', from: '2026-12-01T00:00:01Z', to: '2026-12-01T00:00:10Z' }, { limit: 10, inverted: false });
    expect(denied.map((e) => e.event.time)).toEqual(['2026-12-01T00:00:05.000Z', '2026-12-01T00:00:10.000Z']);
  });

  describe('tampering directly in the database', () => {
    let ids: string[];
    beforeEach(async () => {
      const batch = Array.from({ length: 20 }, (_, i) => event(i));
      ids = batch.map((e) => e.id);
      await store.ingest('node-a', batch.slice(0, 8));
      await store.ingest('node-a', batch.slice(8));
      // The head (seq 20) is checkpointed (by the append itself; this makes sure of it).
      await store.checkpoint();
      expect(await t.db.selectFrom('audit_checkpoints').select('seq').execute()).toEqual([{ seq: 20 }]);
      expect((await verifyAuditChain(t.db, [key.publicJwk])).ok).toBe(true);
    });

    it('finds an edited row at that row', async () => {
      const row = await t.db.selectFrom('audit_events').select('event').where('seq', '=', 7).executeTakeFirstOrThrow();
      await t.db.updateTable('audit_events').set({ event: row.event.replace('"ok"', '"denied"').replace('query 6', 'query X') }).where('seq', '=', 7).execute();
      const v = await verifyAuditChain(t.db, [key.publicJwk]);
      expect(v.ok).toBe(false);
      expect(v.firstBroken).toMatchObject({ seq: 7, eventId: ids[6], reason: 'hash_mismatch' });
    });

    it('finds an edited indexed column at that row', async () => {
      await t.db.updateTable('audit_events').set({ outcome: 'ok' }).where('seq', '=', 6).execute();
      expect((await verifyAuditChain(t.db, [key.publicJwk])).firstBroken).toMatchObject({ seq: 6, reason: 'column_mismatch' });
    });

    it('finds a deleted row where the chain breaks', async () => {
      await t.db.deleteFrom('audit_events').where('seq', '=', 12).execute();
      expect((await verifyAuditChain(t.db, [key.publicJwk])).firstBroken).toMatchObject({ seq: 13, eventId: ids[12], reason: 'seq_gap' });
    });

    it('finds two rows swapped', async () => {
      // Swap seq 4 and 5 (via a free seq, as the (partition, seq) pair is unique).
      await t.db.updateTable('audit_events').set({ seq: 1000 }).where('seq', '=', 4).execute();
      await t.db.updateTable('audit_events').set({ seq: 4 }).where('seq', '=', 5).execute();
      await t.db.updateTable('audit_events').set({ seq: 5 }).where('seq', '=', 1000).execute();
      expect((await verifyAuditChain(t.db, [key.publicJwk])).firstBroken).toMatchObject({ seq: 4, eventId: ids[4] });
    });

    it('finds a rewritten tail that no longer matches its signed checkpoint', async () => {
      // Deleting the last rows keeps the remaining chain intact; the checkpoint at seq 20 still names the head.
      await t.db.deleteFrom('audit_events').where('seq', '>', 15).execute();
      expect((await verifyAuditChain(t.db, [key.publicJwk])).firstBroken).toMatchObject({ seq: 20, reason: 'checkpoint_mismatch' });
    });

    it('finds a forged checkpoint', async () => {
      await t.db.updateTable('audit_checkpoints').set({ hash: 'forged' }).where('seq', '=', 20).execute();
      expect((await verifyAuditChain(t.db, [key.publicJwk])).firstBroken).toMatchObject({ seq: 20, reason: 'checkpoint_signature' });
    });
  });

  describe('verifying a window of received time', () => {
    // Three batches received an hour apart (the store's clock is the test's).
    const hour = (h: number) => new Date(Date.UTC(2026, 11, 1, h)).toISOString();
    let windowed: AuditStore;
    let batches: ReturnType<typeof event>[][];
    beforeEach(async () => {
      let now = hour(1);
      windowed = new AuditStore({ db: t.db, signingKey: key, logger: createLogger('audit-test', { destination: new LogCapture() }), checkpointEvery: 1000, now: () => new Date(now) });
      batches = [0, 1, 2].map((b) => Array.from({ length: 7 + b }, (_, i) => event(b * 10 + i)));
      for (const [b, batch] of batches.entries()) {
        now = hour(1 + b);
        await windowed.ingest('node-a', batch);
      }
    });
    const verify = (from: string | null, to: string | null) => verifyAuditChain(t.db, [key.publicJwk], { from, to });

    it('checks exactly the rows received in it', async () => {
      expect(await verify(hour(2), hour(2))).toMatchObject({ ok: true, checkedEvents: 8 });
      expect(await verify(hour(2), null)).toMatchObject({ ok: true, checkedEvents: 17 });
      expect(await verify(null, hour(1))).toMatchObject({ ok: true, checkedEvents: 7 });
      expect(await verify(hour(4), null)).toMatchObject({ ok: true, checkedEvents: 0 });
      expect(await verify(null, null)).toMatchObject({ ok: true, checkedEvents: 24 });
    });

    it('finds a row in it whose received time was moved out of it, at that row', async () => {
      const [before, after] = [batches[1]![2]!, batches[1]![5]!];
      await t.db.updateTable('audit_events').set({ received_at: hour(0) }).where('id', '=', before.id).execute();
      expect((await verify(hour(2), hour(2))).firstBroken).toMatchObject({ eventId: before.id, reason: 'hash_mismatch' });
      await t.db.updateTable('audit_events').set({ received_at: hour(1) }).where('id', '=', before.id).execute();
      expect((await verify(hour(2), hour(2))).firstBroken).toMatchObject({ eventId: before.id, reason: 'hash_mismatch' });
      await t.db.updateTable('audit_events').set({ received_at: hour(2) }).where('id', '=', before.id).execute();
      await t.db.updateTable('audit_events').set({ received_at: hour(5) }).where('id', '=', after.id).execute();
      expect((await verify(hour(2), hour(2))).firstBroken).toMatchObject({ eventId: after.id, reason: 'hash_mismatch' });
    });

    it('finds the last row whose received time was moved before it, though nothing is left in it', async () => {
      const last = batches[2]![8]!;
      await t.db.updateTable('audit_events').set({ received_at: hour(2) }).where('id', '=', last.id).execute();
      expect((await verify(hour(3), null)).firstBroken).toMatchObject({ eventId: last.id, reason: 'hash_mismatch' });
      await t.db.deleteFrom('audit_events').where('partition', '=', windowed.partition).where('seq', '>', 15).where('seq', '<', 24).execute();
      expect((await verify(hour(3), null)).firstBroken).toMatchObject({ eventId: last.id, reason: 'hash_mismatch' });
    });

    it('finds a row deleted at the start of it', async () => {
      await t.db.deleteFrom('audit_events').where('id', '=', batches[1]![0]!.id).execute();
      expect((await verify(hour(2), hour(2))).firstBroken).toMatchObject({ eventId: batches[1]![1]!.id, reason: 'seq_gap' });
    });
  });

  it('keeps one chain per partition; a second process appends to its own', async () => {
    const other = new AuditStore({ db: t.db, signingKey: key, logger: createLogger('audit-test', { destination: new LogCapture() }), checkpointEvery: 5 });
    await Promise.all([store.ingest('node-a', Array.from({ length: 10 }, (_, i) => event(i))), other.ingest('node-b', Array.from({ length: 10 }, (_, i) => event(i)))]);
    await store.checkpoint();
    await other.checkpoint();
    const v = await verifyAuditChain(t.db, [key.publicJwk]);
    expect(v).toMatchObject({ ok: true, partitions: 2, checkedEvents: 20 });
    // A store restarted on the same partition continues its chain.
    const again = new AuditStore({ db: t.db, signingKey: key, logger: createLogger('audit-test', { destination: new LogCapture() }), partition: store.partition });
    await again.ingest('node-a', [event(50)]);
    expect((await verifyAuditChain(t.db, [key.publicJwk])).checkedEvents).toBe(21);
  });
});
