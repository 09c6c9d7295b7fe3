/**
 * Upstream health reaches operators (issue 5 item 4), end to end with a real control plane, a node and a
 * real MCP SDK upstream over Streamable HTTP, on every dialect: the upstream refuses the shared credential
 * (401) → `McpServer.status` CREDENTIALS_REFUSED with a reason; it stops listening → UNREACHABLE; it
 * comes back and the credential is fixed → ACTIVE (reachable) again. Each within a few seconds, with no
 * tool traffic (catalog fetch and idle probes) and a report interval far longer than the test, so only the
 * report sent on a transition can carry it. Also on both `/metrics`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../data-plane/log.js';
import { startNode, type DataPlaneNode } from '../../data-plane/node/node.js';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { openTestDatabase, testDialects, type TestDatabase } from '../support/db.js';
import { LogCapture } from '../support/log-capture.js';
import { startHttpUpstream, type HttpUpstream } from '../support/upstreams.js';
import { waitFor } from '../support/wait.js';
import { scrapeNodeMetrics, TEST_METRICS_TOKEN } from '../support/node-metrics.js';

interface ServerStatus {
  status: string;
  statusReason: string | null;
  upstreamStatus: string;
  statusObservedAt: string | null;
  statusObservedBy: string | null;
}

const WRONG = 'Bearer wrong-token-5f2a';
const GOOD = 'Bearer good-token-77c1';

describe.each(testDialects)('upstream health reaches GraphQL on %s', (dialect) => {
  let db: TestDatabase | null = null;
  let cp: TestControlPlane;
  let node: DataPlaneNode;
  let upstream: HttpUpstream;
  const nodeId = `health-${dialect}`;

  const status = async (): Promise<ServerStatus> =>
    (
      await cp.gql<{ mcpServer: ServerStatus }>(
        '{ mcpServer(name: "crm") { status statusReason upstreamStatus statusObservedAt statusObservedBy } }',
      )
    ).mcpServer;
  /** Polls GraphQL until the server shows `wanted` (a few seconds at most). */
  const statusBecomes = (wanted: string): Promise<ServerStatus> =>
    waitFor(async () => {
      const s = await status();
      return s.status === wanted ? s : null;
    }, { timeoutMs: 15_000, intervalMs: 100, what: `McpServer.status ${wanted}` });

  beforeAll(async () => {
    if (dialect === 'postgres') db = await openTestDatabase('postgres');
    cp = await startTestControlPlane(db ? { databaseUrl: db.url, databaseSchema: db.searchPath } : {});
    upstream = await startHttpUpstream({ label: 'crm', requireHeader: { name: 'authorization', values: [GOOD] } });
    const created = await cp.gql<{ createMcpServer: { errors: unknown[]; mcpServer: { status: string } } }>(
      `mutation($url: String!, $auth: String!) { createMcpServer(input: { name: "crm", connectionType: HTTP, connectionString: $url, authType: HEADERS,
        headers: [{ name: "Authorization", value: $auth }], toolsToExecute: ["*"] }) { errors { code } mcpServer { status } } }`,
      { url: upstream.url, auth: WRONG },
    );
    expect(created.createMcpServer.errors).toEqual([]);
    // Not observed yet: ACTIVE as before health existed.
    expect(created.createMcpServer.mcpServer.status).toBe('ACTIVE');
    node = await startNode({
      controlPlaneUrl: cp.url,
      nodeToken: cp.cp.nodeToken,
      port: 0,
      nodeId,
      stateDir: null,
      trustedJwks: cp.cp.trustedKeys,
      env: { GATEHOUSE_METRICS_TOKEN: TEST_METRICS_TOKEN },
      logger: createLogger('test-node', { destination: new LogCapture(), level: 'debug' }),
      reportIntervalMs: 600_000,
      upstreamProbeIntervalMs: 200,
    });
  }, 60_000);

  afterAll(async () => {
    await node?.close();
    await upstream?.close();
    await cp?.close().catch(() => undefined);
    await db?.close();
  });

  it('a refused shared credential shows as CREDENTIALS_REFUSED with a scrubbed reason', async () => {
    const s = await statusBecomes('CREDENTIALS_REFUSED');
    expect(s.upstreamStatus).toBe('CREDENTIALS_REFUSED');
    expect(s.statusReason).toMatch(/HTTP 401/);
    expect(s.statusObservedBy).toBe(nodeId);
    expect(Date.parse(s.statusObservedAt ?? '')).toBeGreaterThan(Date.now() - 60_000);
    for (const leak of ['wrong-token', '127.0.0.1', String(upstream.port)]) expect(s.statusReason).not.toContain(leak);
    expect(await cp.metrics()).toContain('gatehouse_mcp_server_status{server="crm",status="credentials_refused"} 1');
    expect(await scrapeNodeMetrics(node.url)).toContain('gatehouse_upstream_status{server="crm",status="credentials_refused"} 1');
  });

  it('an upstream that stops listening shows as UNREACHABLE', async () => {
    // The upstream going away may end the node's open connection to it first (closed) or refuse the next one.
    const port = upstream.port;
    await upstream.close();
    const s = await statusBecomes('UNREACHABLE');
    expect(s.upstreamStatus).toBe('UNREACHABLE');
    expect(s.statusReason).toMatch(/unreachable: connection (refused|failed|closed)/);
    expect(s.statusReason).not.toContain(String(port));
    // It comes back, still refusing that credential: refused again (up, credential wrong).
    upstream = await startHttpUpstream({ port, label: 'crm', requireHeader: { name: 'authorization', values: [GOOD] } });
    await statusBecomes('CREDENTIALS_REFUSED');
  });

  it('fixing the credential makes it ACTIVE (reachable) again, with no reason', async () => {
    const updated = await cp.gql<{ updateMcpServer: { errors: unknown[] } }>(
      `mutation($auth: String!) { updateMcpServer(input: { name: "crm", headers: [{ name: "Authorization", value: $auth }] }) { errors { code } } }`,
      { auth: GOOD },
    );
    expect(updated.updateMcpServer.errors).toEqual([]);
    const s = await statusBecomes('ACTIVE');
    expect(s).toMatchObject({ upstreamStatus: 'REACHABLE', statusReason: null, statusObservedBy: nodeId });
    expect(await cp.metrics()).toContain('gatehouse_mcp_server_status{server="crm",status="reachable"} 1');
    expect(await cp.metrics()).toContain('gatehouse_mcp_server_status{server="crm",status="credentials_refused"} 0');
  });
});
