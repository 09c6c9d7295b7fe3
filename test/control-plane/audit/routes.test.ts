/**
 * The audit routes over real HTTP: `POST /nodes/audit` only for an authenticated node, typed errors for
 * bad batches, events stored as the authenticated node whatever they claim; `GET /audit/export` only with
 * an admin token and a valid range.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NODE_AUDIT_PATH, encodeAuditBatch } from '../../../data-plane/snapshot/audit-protocol.js';
import { verifyAuditChain } from '../../../control-plane/audit/store.js';
import { NODE_ID_HEADER } from '../../../data-plane/snapshot/stream-protocol.js';
import { startTestControlPlane, type TestControlPlane } from '../../support/control-plane.js';

let cp: TestControlPlane;
beforeAll(async () => {
  cp = await startTestControlPlane();
});
afterAll(async () => {
  await cp?.close();
});

const post = (body: string, headers: Record<string, string>) => fetch(`${cp.url}${NODE_AUDIT_PATH}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
const asNode = (id: string) => ({ authorization: `Bearer ${cp.cp.nodeToken}`, [NODE_ID_HEADER]: id });
const event = () => ({ id: randomUUID(), time: new Date().toISOString(), node: 'someone-else', method: 'tools/call', outcome: 'ok', latencyMs: 1 });

describe('audit routes', () => {
  it('refuses a batch without node credentials', async () => {
    const res = await post(JSON.stringify({ events: [event()] }), {});
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ type: 'node_token_required' });
    const wrong = await post(JSON.stringify({ events: [event()] }), { authorization: 'Bearer ghn_wrong', [NODE_ID_HEADER]: 'n1' });
    expect(wrong.status).toBe(401);
  });

  it('answers bad batches with typed errors', async () => {
    for (const body of ['not json', '{}', '{"events":[]}', JSON.stringify({ events: Array.from({ length: 1001 }, event) })]) {
      const res = await post(body, asNode('n1'));
      expect(res.status).toBe(400);
      expect(((await res.json()) as { type: string }).type).toMatch(/^invalid_(json|request)$/);
    }
  });

  it('stores events as the authenticated node, once each', async () => {
    const batch = [event(), event()];
    const res = await post(JSON.stringify({ events: batch }), asNode('node-x'));
    expect(await res.json()).toEqual({ accepted: 2, duplicates: 0, rejected: [] });
    expect(await (await post(JSON.stringify({ events: batch }), asNode('node-x'))).json()).toEqual({ accepted: 0, duplicates: 2, rejected: [] });
    const rows = await cp.cp.db.selectFrom('audit_events').select(['node']).where('id', 'in', batch.map((e) => e.id)).execute();
    expect(rows.map((r) => r.node)).toEqual(['node-x', 'node-x']);
  });

  it('exports only to an admin token, with a valid range', async () => {
    const none = await fetch(`${cp.url}/audit/export`);
    expect(none.status).toBe(401);
    expect(await none.json()).toMatchObject({ type: 'admin_token_required' });
    const bad = await fetch(`${cp.url}/audit/export?from=soon`, { headers: { authorization: `Bearer ${cp.adminToken}` } });
    expect(bad.status).toBe(400);
    const ok = await fetch(`${cp.url}/audit/export?outcome=ok`, { headers: { authorization: `Bearer ${cp.adminToken}` } });
    expect(ok.headers.get('content-type')).toBe('application/x-ndjson');
    expect((await ok.text()).trim().split('\n')).toHaveLength(2);
  });

  it('keeps the text of an event sent one per line as it was sent, and only such an event', async () => {
    const node = 'node-lines';
    const exact = { ...event(), node, outcome: 'denied', arguments: { q: 'héllo ✓' } };
    const claimed = { ...event(), outcome: 'denied' }; // claims another node: stored as node-lines, re-serialised
    const extra = { ...event(), node, outcome: 'denied', smuggled: 'x' }; // a member the protocol lacks: stripped
    const lines = [exact, claimed, extra].map((e) => JSON.stringify(e));
    const body = encodeAuditBatch(Buffer.from(lines.map((l) => `${l}\n`).join('')));
    // Still one JSON text for any reader, one event per line for this one.
    expect((JSON.parse(body.toString()) as { events: unknown[] }).events).toHaveLength(3);
    const res = await fetch(`${cp.url}${NODE_AUDIT_PATH}`, { method: 'POST', headers: { 'content-type': 'application/json', ...asNode(node) }, body: body.toString() });
    expect(await res.json()).toEqual({ accepted: 3, duplicates: 0, rejected: [] });
    const rows = await cp.cp.db.selectFrom('audit_events').select(['id', 'node', 'event']).where('id', 'in', [exact.id, claimed.id, extra.id]).execute();
    const byId = new Map(rows.map((r) => [r.id, r]));
    expect(byId.get(exact.id)!.event).toBe(lines[0]);
    expect(JSON.parse(byId.get(claimed.id)!.event)).toEqual({ ...claimed, node });
    expect(byId.get(extra.id)!.event).not.toContain('smuggled');
    expect(rows.every((r) => r.node === node)).toBe(true);
    // The same batch, pretty-printed across lines, is read as the JSON it is: all duplicates.
    const pretty = JSON.stringify({ events: [exact, claimed, extra] }, null, 2);
    expect(await (await post(pretty, asNode(node))).json()).toEqual({ accepted: 0, duplicates: 3, rejected: [] });
    // A line layout broken half-way (a missing comma) is not a batch either way.
    const broken = `{"events":[\n${lines[0]}\n${lines[1]}\n]}`;
    expect((await post(broken, asNode(node))).status).toBe(400);
    expect((await verifyAuditChain(cp.cp.db, [])).ok).toBe(true);
  });
});
