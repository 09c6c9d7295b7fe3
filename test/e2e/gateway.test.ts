/**
 * The walking skeleton end to end: GraphQL config → signed snapshot → a separately started node → three
 * real upstreams (Streamable HTTP, SSE, stdio), driven by the MCP SDK's own client with a virtual key.
 * Upstreams get the configured credentials and never the virtual key; filtered tools are neither listed
 * nor callable; no configured secret shows in any GraphQL response, log line, error, or captured snapshot.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateNodeKeyPair } from '../../data-plane/snapshot/seal.js';
import { NODE_ID_HEADER, NODE_KEY_HEADER } from '../../data-plane/snapshot/stream-protocol.js';
import { testDialects } from '../support/db.js';
import { startGatewayFixture, type GatewayFixture } from '../support/gateway-fixture.js';
import { spawnNode, type NodeProcess } from '../support/node-process.js';
import { readStdioStarts } from '../support/upstreams.js';
import { postMcp } from '../support/mcp-http.js';
import { waitFor } from '../support/wait.js';
import { scrapeNodeMetrics } from '../support/node-metrics.js';

function textOf(result: unknown): string {
  return ((result as CallToolResult).content ?? []).map((c) => (c.type === 'text' ? c.text : '')).join('');
}

describe.each(testDialects)('gateway end to end on %s', (dialect) => {
  let gw: GatewayFixture;
  let node: NodeProcess;
  let client: Client;
  const errorsSeen: string[] = [];

  beforeAll(async () => {
    gw = await startGatewayFixture(dialect);
    node = await spawnNode({ controlPlaneUrl: gw.cp.url, nodeToken: gw.cp.cp.nodeToken, env: { ...gw.nodeEnv, GATEHOUSE_REPORT_INTERVAL_MS: '200' } });
    await waitFor(async () => (await fetch(`${node.url}/readyz`)).ok, { what: 'node ready' });
    client = new Client({ name: 'e2e', version: '1.0.0' });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(`${node.url}/mcp`), {
        requestInit: { headers: { Authorization: `Bearer ${gw.key}`, 'X-Request-Source': 'e2e-suite' } },
      }),
    );
  }, 60_000);

  afterAll(async () => {
    await client?.close();
    await node?.stop();
    await gw?.close();
  });

  it('lists exactly the tools the key may call, from all three upstreams', async () => {
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(gw.expectedTools);
    expect(tools.find((t) => t.name === 'kb_sse-echo')?.description).toBe('echo from sse');
  });

  it('calls a tool on each upstream and returns its result', async () => {
    expect(textOf(await client.callTool({ name: 'crm_http-echo', arguments: { text: 'hi' } }))).toBe('http:hi');
    expect(textOf(await client.callTool({ name: 'kb_sse-echo', arguments: { text: 'hi' } }))).toBe('sse:hi');
    expect(textOf(await client.callTool({ name: 'local_stdio-echo', arguments: { text: 'hi' } }))).toBe('stdio:hi');
    expect(textOf(await client.callTool({ name: 'kb_sse-add', arguments: { a: 2, b: 3 } }))).toBe('5');
  });

  it('refuses tools outside the key filter or the server allowlist', async () => {
    for (const name of ['crm_http-secret_tool', 'kb_sse-secret_tool', 'local_stdio-add', 'hidden_http-echo', 'nonexistent-echo']) {
      const outcome = await client.callTool({ name, arguments: {} }).then(
        (r) => ({ ok: !r.isError, text: textOf(r) }),
        (e: unknown) => ({ ok: false, text: e instanceof Error ? e.message : String(e) }),
      );
      errorsSeen.push(outcome.text);
      expect(outcome.ok, `${name} must be refused`).toBe(false);
      expect(outcome.text).not.toMatch(/classified/);
    }
  });

  it('injects the configured credentials upstream and never the virtual key', async () => {
    // hidden_http (same upstream, no credential configured) has its catalog fetched eagerly by the node:
    // those requests carry no credential and are only the pool's own (initialize, tools/list), never a call.
    const uncredentialed = gw.http.requests.filter((r) => r.httpMethod === 'POST' && r.headers.authorization === undefined && r.headers['x-tenant-id'] === undefined);
    for (const r of uncredentialed) expect(['initialize', 'notifications/initialized', 'tools/list']).toContain(r.rpcMethod);
    const httpRequests = gw.http.requests.filter((r) => r.httpMethod === 'POST' && !uncredentialed.includes(r));
    expect(httpRequests.length).toBeGreaterThan(0);
    for (const r of httpRequests) {
      expect(r.headers.authorization).toBe(gw.secrets.httpToken);
      expect(r.headers['x-tenant-id']).toBe(gw.secrets.tenant);
      // Allowlisted caller header reaches the server that allows it (on calls made for that caller)...
      if (r.rpcMethod === 'tools/call') expect(r.headers['x-request-source']).toBe('e2e-suite');
    }
    expect(httpRequests.some((r) => r.rpcMethod === 'tools/call')).toBe(true);
    for (const r of gw.sse.requests) {
      expect(r.headers['x-api-key']).toBe(gw.secrets.sseKey);
      // ...and not the one that does not.
      expect(r.headers['x-request-source']).toBeUndefined();
    }
    const starts = readStdioStarts(gw.stdioRecordFile);
    expect(starts.length).toBeGreaterThan(0);
    expect(starts[0]?.env.UPSTREAM_TOKEN).toBe(gw.secrets.stdioToken);
    const everythingUpstream = JSON.stringify([gw.http.requests, gw.sse.requests, starts]);
    expect(everythingUpstream).not.toContain(gw.key);
  });

  it('shows node status and missing nothing in the nodes query', async () => {
    const data = await waitFor(
      async () => {
        const r = await gw.cp.gql<{ nodes: { edges: { node: { id: string; appliedVersion: number | null; connected: boolean; missingEnv: unknown[] } }[] } }>(
          '{ nodes { edges { node { id appliedVersion connected missingEnv { name servers } } } } }',
        );
        const n = r.nodes.edges.map((e) => e.node).find((x) => x.appliedVersion !== null && x.connected);
        return n;
      },
      { what: 'node report' },
    );
    expect(data.missingEnv).toEqual([]);
  });

  it('shows the tool catalogs nodes fetched on each McpServer, including a server no client has used (fetched when it appeared)', async () => {
    type ServerTools = { mcpServer: { tools: { name: string; description: string | null }[] | null } };
    const catalog = await waitFor(
      async () => (await gw.cp.gql<ServerTools>('{ mcpServer(name: "kb_sse") { tools { name description } } }')).mcpServer.tools,
      { what: 'kb_sse catalog synced from the node' },
    );
    // The server's own catalog (for writing filters), not what one key may call.
    expect(catalog.map((t) => t.name)).toEqual(expect.arrayContaining(['echo', 'add', 'secret_tool']));
    expect(catalog.find((t) => t.name === 'echo')?.description).toBe('echo from sse');
    // hidden_http is granted to no key, so no client ever listed or called it: the node fetched its catalog
    // as soon as the server appeared in a snapshot (issue 5).
    const hidden = await waitFor(
      async () => (await gw.cp.gql<ServerTools>('{ mcpServer(name: "hidden_http") { tools { name } } }')).mcpServer.tools,
      { what: 'hidden_http catalog fetched eagerly', timeoutMs: 30_000 },
    );
    expect(hidden.map((t) => t.name)).toEqual(expect.arrayContaining(['echo', 'add']));
  });

  it('both planes serve Prometheus metrics', async () => {
    const cpMetrics = await gw.cp.metrics();
    expect(cpMetrics).toMatch(/gatehouse_config_version [1-9]/);
    expect(cpMetrics).toMatch(/gatehouse_node_streams [1-9]/);
    const nodeMetrics = await scrapeNodeMetrics(node.url);
    expect(nodeMetrics).toMatch(/gatehouse_mcp_requests_total\{method="tools\/call",outcome="ok",server="kb_sse"\} [1-9]/);
    expect(nodeMetrics).toMatch(/gatehouse_mcp_requests_total\{method="tools\/call",outcome="denied"/);
  });

  it('a node missing an env.NAME variable reports it, and names the server in the tool error', async () => {
    const bare = await spawnNode({ controlPlaneUrl: gw.cp.url, nodeToken: gw.cp.cp.nodeToken, nodeId: `bare-${dialect}` });
    try {
      await waitFor(async () => (await fetch(`${bare.url}/readyz`)).ok, { what: 'bare node ready' });
      const call = await postMcp(bare.url, gw.key, { id: 1, method: 'tools/call', params: { name: 'crm_http-echo', arguments: { text: 'x' } } });
      const result = (call.body as { result: CallToolResult }).result;
      expect(result.isError).toBe(true);
      errorsSeen.push(textOf(result));
      expect(textOf(result)).toMatch(/crm_http/);
      expect(textOf(result)).toMatch(/GH_TEST_TENANT/);
      // The other servers are unaffected on that node.
      const ok = await postMcp(bare.url, gw.key, { id: 2, method: 'tools/call', params: { name: 'kb_sse-echo', arguments: { text: 'x' } } });
      expect(textOf((ok.body as { result: CallToolResult }).result)).toBe('sse:x');
      const reported = await waitFor(
        async () => {
          const r = await gw.cp.gql<{ nodes: { edges: { node: { id: string; health: string; missingEnv: { name: string; servers: string[] }[] } }[] } }>(
            '{ nodes { edges { node { id health missingEnv { name servers } } } } }',
          );
          return r.nodes.edges.map((e) => e.node).find((n) => n.id === `bare-${dialect}` && n.missingEnv.length > 0);
        },
        { what: 'missing env var in the nodes query' },
      );
      expect(reported.missingEnv).toEqual([{ name: 'GH_TEST_TENANT', servers: ['crm_http'] }]);
      expect(reported.health).toBe('DEGRADED');
      expect(bare.logs.some((l) => l.includes('GH_TEST_TENANT'))).toBe(true);
    } finally {
      await bare.stop();
    }
  });

  it('keeps every secret out of GraphQL responses, logs, errors, and captured or stored snapshots', async () => {
    // Read the servers back the way an operator would.
    await gw.cp.gql('{ mcpServers { edges { node { name connectionString headers { name value } stdio { command args env { name value } } } } } }');

    // Capture a snapshot off the wire, as an eavesdropper holding a node token would.
    const pair = await generateNodeKeyPair();
    const abort = new AbortController();
    const res = await fetch(`${gw.cp.url}/nodes/stream`, {
      headers: {
        authorization: `Bearer ${gw.cp.cp.nodeToken}`,
        [NODE_ID_HEADER]: 'eavesdropper',
        [NODE_KEY_HEADER]: Buffer.from(JSON.stringify(pair.publicJwk)).toString('base64url'),
      },
      signal: abort.signal,
    });
    const reader = res.body!.getReader();
    let captured = '';
    while (!captured.includes('\n\n')) {
      const { value, done } = await reader.read();
      if (done) break;
      captured += new TextDecoder().decode(value);
    }
    abort.abort();
    expect(captured).toContain('event: snapshot');
    const envelope = JSON.parse(/data: (.*)/.exec(captured)![1]!) as { snapshot: { payload: string } };
    const decodedPayload = Buffer.from(envelope.snapshot.payload, 'base64url').toString('utf8');
    expect(decodedPayload).toContain('crm_http');

    const onDisk = readFileSync(join(node.stateDir, 'snapshot.json'), 'utf8');
    const haystacks = {
      graphqlResponses: gw.cp.responses.join('\n'),
      controlPlaneLogs: gw.cp.logs.text(),
      nodeLogs: node.logs.join('\n'),
      errors: errorsSeen.join('\n'),
      capturedStream: captured + decodedPayload,
      snapshotOnDisk: onDisk + Buffer.from((JSON.parse(onDisk) as { snapshot: { payload: string } }).snapshot.payload, 'base64url').toString('utf8'),
    };
    const secretValues = [gw.secrets.httpToken, gw.secrets.sseKey, gw.secrets.stdioToken, gw.secrets.tenant, 'upstream-http-secret'];
    for (const [where, text] of Object.entries(haystacks)) {
      expect(text.length, where).toBeGreaterThan(0);
      for (const secret of secretValues) expect(text.includes(secret), `${where} must not contain a secret`).toBe(false);
      // The virtual key is shown once, in the createVirtualKey response, and nowhere else.
      const keyCount = text.split(gw.key).length - 1;
      expect(keyCount, `${where}: virtual key occurrences`).toBe(where === 'graphqlResponses' ? 1 : 0);
    }
  });
});
