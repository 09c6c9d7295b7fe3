/**
 * Issue 8 acceptance, with real processes: a node (its own process) serves 1,000 tool calls while the
 * control plane is stopped for most of them, and is itself restarted once during the outage; when the
 * control plane comes back, every one of the 1,000 events arrives exactly once (`auditEvents`),
 * `verifyAuditChain` passes, the node's metrics say nothing was dropped, and editing one stored row
 * directly in the database makes verification fail at that row.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { openTestDatabase, testDialects, type TestDatabase } from '../support/db.js';
import { postMcp } from '../support/mcp-http.js';
import { spawnNode, type NodeProcess } from '../support/node-process.js';
import { startHttpUpstream, type HttpUpstream } from '../support/upstreams.js';
import { waitFor } from '../support/wait.js';
import { scrapeNodeMetrics } from '../support/node-metrics.js';

const TOTAL = 1000;

describe.each(testDialects)('audit survives a control-plane outage and a node restart (%s)', (dialect) => {
  let db: TestDatabase | null = null;
  const dbOptions = () => (db ? { databaseUrl: db.url, databaseSchema: db.searchPath } : {});
  const cpDir = mkdtempSync(join(tmpdir(), 'gatehouse-audit-cp-'));
  const nodeDir = mkdtempSync(join(tmpdir(), 'gatehouse-audit-node-'));
  const adminToken = `gha_audit${'x'.repeat(24)}`;
  let cp: TestControlPlane | null = null;
  let node: NodeProcess | null = null;
  let upstream: HttpUpstream;

  afterAll(async () => {
    await node?.stop();
    await cp?.close();
    await upstream?.close();
    await db?.close();
  });

  const metric = async (name: string): Promise<number> => {
    const text = await scrapeNodeMetrics(node!.url);
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    return Number(line?.split(' ')[1] ?? NaN);
  };

  /** `count` calls, 8 at a time, each answered by the upstream through the node. */
  const calls = async (from: number, count: number, key: string): Promise<void> => {
    let next = from;
    const worker = async (): Promise<void> => {
      while (next < from + count) {
        const i = next++;
        const r = await postMcp(node!.url, key, { id: i, method: 'tools/call', params: { name: 'docs-echo', arguments: { text: `call-${i}` } } });
        expect(r.status).toBe(200);
        expect(JSON.stringify(r.body)).toContain(`call-${i}`);
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
  };

  it('delivers every event exactly once and the chain verifies', async () => {
    upstream = await startHttpUpstream({ label: 'docs' });
    if (dialect === 'postgres') db = await openTestDatabase('postgres');
    cp = await startTestControlPlane({ dataDir: cpDir, adminToken, ...dbOptions() });
    const port = Number(new URL(cp.url).port);
    await cp.gql(`mutation($u: String!) { createMcpServer(input: { name: "docs", connectionType: HTTP, connectionString: $u, toolsToExecute: ["*"] }) { errors { code } } }`, { u: upstream.url });
    const userId = (await cp.gql<{ createUser: { user: { id: string } } }>(`mutation { createUser(input: { email: "audit@example.com" }) { user { id } } }`)).createUser.user.id;
    const created = await cp.gql<{ createVirtualKey: { key: string; virtualKey: { id: string } } }>(
      `mutation($u: ID!) { createVirtualKey(input: { userId: $u, name: "audited", servers: [{ server: "docs", tools: ["*"] }] }) { key virtualKey { id } } }`,
      { u: userId },
    );
    const key = created.createVirtualKey.key;
    const nodeToken = cp.cp.nodeToken!;
    const start = (): Promise<NodeProcess> => spawnNode({ controlPlaneUrl: cp?.url ?? `http://127.0.0.1:${port}`, nodeToken, nodeId: `audit-node-${dialect}`, stateDir: nodeDir });

    node = await start();
    await waitFor(async () => (await postMcp(node!.url, key, { id: 0, method: 'tools/list' })).status === 200, { timeoutMs: 20_000, what: 'node serving the key' });

    await calls(0, 200, key);
    await waitFor(async () => (await metric('gatehouse_audit_shipped_events')) >= 200, { timeoutMs: 20_000, what: 'first events shipped' });

    // Outage: the control plane goes away; the node keeps serving and keeps the events on disk.
    await cp.close();
    cp = null;
    await calls(200, 300, key);
    expect(await metric('gatehouse_audit_buffer_events')).toBeGreaterThanOrEqual(300);

    // The node restarts during the outage: from its snapshot on disk, with its outbox on disk.
    await node.stop();
    node = await start();
    await waitFor(async () => (await postMcp(node!.url, key, { id: 0, method: 'tools/list' })).status === 200, { timeoutMs: 20_000, what: 'restarted node serving' });
    expect(await metric('gatehouse_audit_buffer_events')).toBeGreaterThanOrEqual(300);
    await calls(500, 500, key);

    // The control plane comes back on the same address and database.
    cp = await startTestControlPlane({ dataDir: cpDir, adminToken, port, ...dbOptions() });
    await waitFor(async () => (await metric('gatehouse_audit_buffer_events')) === 0, { timeoutMs: 60_000, what: 'outbox drained' });
    expect(await metric('gatehouse_audit_dropped_events')).toBe(0);

    // Every event, through the public API: 1,000 tools/call events, each id once.
    const events: { id: string; method: string; outcome: string; tool: string | null; keyId: string | null; node: string; arguments: { text?: string } | null }[] = [];
    let after: string | null = null;
    for (;;) {
      const page: { auditEvents: { edges: { node: (typeof events)[number] }[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } } } = await cp.gql(
        `query($after: String) { auditEvents(first: 100, after: $after, filter: { server: "docs", tool: "echo" }) { edges { node { id method outcome tool keyId node arguments } } pageInfo { hasNextPage endCursor } } }`,
        { after },
      );
      events.push(...page.auditEvents.edges.map((e) => e.node));
      if (!page.auditEvents.pageInfo.hasNextPage) break;
      after = page.auditEvents.pageInfo.endCursor;
    }
    expect(events).toHaveLength(TOTAL);
    expect(new Set(events.map((e) => e.id)).size).toBe(TOTAL);
    // Each call by its arguments: all 1,000 there, none twice.
    expect(new Set(events.map((e) => e.arguments?.text)).size).toBe(TOTAL);
    expect(events.map((e) => e.arguments?.text).sort()).toEqual(Array.from({ length: TOTAL }, (_, i) => `call-${i}`).sort());
    expect(events.every((e) => e.method === 'tools/call' && e.outcome === 'ok' && e.keyId === created.createVirtualKey.virtualKey.id && e.node === `audit-node-${dialect}`)).toBe(true);

    const verify = `query { verifyAuditChain { ok checkedEvents firstBroken { partition seq eventId reason } } }`;
    const ok = await cp.gql<{ verifyAuditChain: { ok: boolean; checkedEvents: number } }>(verify);
    expect(ok.verifyAuditChain.ok).toBe(true);
    expect(ok.verifyAuditChain.checkedEvents).toBeGreaterThanOrEqual(TOTAL);

    // Tampering with one row directly in the database is found at that row.
    const victim = await cp.cp.db.selectFrom('audit_events').select(['id', 'partition', 'seq', 'event']).orderBy('row_id').offset(600).limit(1).executeTakeFirstOrThrow();
    await cp.cp.db.updateTable('audit_events').set({ event: victim.event.replace('"ok"', '"denied"') }).where('id', '=', victim.id).execute();
    const broken = await cp.gql<{ verifyAuditChain: { ok: boolean; firstBroken: { partition: string; seq: number; eventId: string; reason: string } } }>(verify);
    expect(broken.verifyAuditChain.ok).toBe(false);
    expect(broken.verifyAuditChain.firstBroken).toMatchObject({ partition: victim.partition, seq: Number(victim.seq), eventId: victim.id, reason: 'hash_mismatch' });
  }, 180_000);
});
