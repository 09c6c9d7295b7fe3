/**
 * The shipper against a real control plane: every durable event arrives once, and a damaged line in the
 * outbox (not JSON) is isolated and dropped (counted) instead of holding back every event after it.
 */
import { appendFileSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditOutbox } from '../../../data-plane/audit/outbox.js';
import { AuditShipper } from '../../../data-plane/audit/shipper.js';
import { encodeAuditBatch } from '../../../data-plane/snapshot/audit-protocol.js';
import { createLogger } from '../../../data-plane/log.js';
import { NODE_ID_HEADER } from '../../../data-plane/snapshot/stream-protocol.js';
import { startTestControlPlane, type TestControlPlane } from '../../support/control-plane.js';
import { LogCapture } from '../../support/log-capture.js';
import { waitFor } from '../../support/wait.js';

let cp: TestControlPlane;
beforeAll(async () => {
  cp = await startTestControlPlane();
});
afterAll(async () => {
  await cp?.close();
});

const event = (n: number) => ({ id: randomUUID(), time: new Date().toISOString(), node: 'x', method: 'tools/call', outcome: 'ok', latencyMs: n });

describe('audit shipper', () => {
  it('sends a batch as the outbox bytes joined into one JSON body', async () => {
    const outbox = new AuditOutbox({ dir: mkdtempSync(join(tmpdir(), 'shipper-')), logger: createLogger('shipper-test', { destination: new LogCapture() }) });
    const events = [event(1), { ...event(2), arguments: { text: 'multi\nline, "quoted" — ünïcode ✓' } }, event(3)];
    for (const e of events) outbox.record(e);
    await outbox.flush();
    const batch = (await outbox.nextBatch(10, 1 << 20))!;
    expect(batch.count).toBe(3);
    expect(JSON.parse(encodeAuditBatch(batch.data).toString('utf8'))).toEqual({ events });
    await outbox.close();
  });

  it('delivers every event and drops (counts) a damaged line without holding back the rest', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shipper-'));
    const logger = createLogger('shipper-test', { destination: new LogCapture() });
    const outbox = new AuditOutbox({ dir, logger });
    const first = Array.from({ length: 5 }, (_, i) => event(i));
    for (const e of first) outbox.record(e);
    await outbox.flush();
    const segment = readdirSync(dir).find((f) => f.startsWith('seg-'))!;
    appendFileSync(join(dir, segment), '{"id": "damaged", this is not json\n');
    const second = Array.from({ length: 5 }, (_, i) => event(10 + i));
    // Written behind the outbox's back, so reopen it: the damaged line is now in the middle of the backlog.
    await outbox.close();
    const reopened = new AuditOutbox({ dir, logger });
    for (const e of second) reopened.record(e);
    await reopened.flush();
    expect(reopened.snapshot().depth).toBe(11);

    const shipper = new AuditShipper({
      outbox: reopened,
      controlPlaneUrl: cp.url,
      authHeaders: async () => ({ authorization: `Bearer ${cp.cp.nodeToken}`, [NODE_ID_HEADER]: 'shipper-node' }),
      logger,
      maxBackoffMs: 200,
    });
    shipper.start();
    await waitFor(() => reopened.snapshot().depth === 0, { timeoutMs: 15_000, what: 'outbox drained' });
    await shipper.stop();
    expect(reopened.snapshot()).toMatchObject({ depth: 0, dropped: 1, shipped: 10 });
    const ids = (await cp.cp.db.selectFrom('audit_events').select('id').where('node', '=', 'shipper-node').execute()).map((r) => r.id).sort();
    expect(ids).toEqual([...first, ...second].map((e) => e.id).sort());
    await reopened.close();
  });
});
