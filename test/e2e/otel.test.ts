/**
 * OpenTelemetry spans when an OTLP endpoint is configured: a node (in-process) exports, over OTLP/HTTP to
 * a real receiver, one SERVER span per request that is the child of the caller's traceparent, with the
 * pipeline's stages (limits, credentials, forward) as children, the forward span having exactly the span
 * id the upstream received as its parent. Without an endpoint nothing is exported (covered by every other
 * test running with none).
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../data-plane/log.js';
import { startNode, type DataPlaneNode } from '../../data-plane/node/node.js';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { LogCapture } from '../support/log-capture.js';
import { startHttpUpstream, type HttpUpstream } from '../support/upstreams.js';
import { waitFor } from '../support/wait.js';

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: { key: string; value: { stringValue?: string } }[];
}

describe('OpenTelemetry spans over OTLP/HTTP', () => {
  let cp: TestControlPlane;
  let node: DataPlaneNode;
  let upstream: HttpUpstream;
  let receiver: Server;
  const spans: OtlpSpan[] = [];
  let key: string;

  beforeAll(async () => {
    receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { resourceSpans: { scopeSpans: { spans: OtlpSpan[] }[] }[] };
        for (const rs of body.resourceSpans) for (const ss of rs.scopeSpans) spans.push(...ss.spans);
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', () => resolve()));
    upstream = await startHttpUpstream({ label: 'docs' });
    cp = await startTestControlPlane();
    await cp.gql(`mutation($u: String!) { createMcpServer(input: { name: "docs", connectionType: HTTP, connectionString: $u, toolsToExecute: ["*"] }) { errors { code } } }`, { u: upstream.url });
    const userId = (await cp.gql<{ createUser: { user: { id: string } } }>(`mutation { createUser(input: { email: "otel@example.com" }) { user { id } } }`)).createUser.user.id;
    key = (await cp.gql<{ createVirtualKey: { key: string } }>(`mutation($u: ID!) { createVirtualKey(input: { userId: $u, name: "otel", servers: [{ server: "docs", tools: ["*"] }] }) { key } }`, { u: userId })).createVirtualKey.key;
    node = await startNode({
      controlPlaneUrl: cp.url,
      nodeToken: cp.cp.nodeToken,
      port: 0,
      stateDir: null,
      env: { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/v1/traces` },
      logger: createLogger('test-node', { destination: new LogCapture() }),
    });
    await waitFor(() => node.holder.current !== null, { what: 'first snapshot' });
  }, 60_000);

  afterAll(async () => {
    await node?.close();
    await cp?.close();
    await upstream?.close();
    receiver?.close();
  });

  it('exports a request span under the caller\'s span, with stage spans; the forward span is the upstream\'s parent', async () => {
    const traceId = randomBytes(16).toString('hex');
    const callerSpan = randomBytes(8).toString('hex');
    const res = await fetch(`${node.url}/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${key}`, traceparent: `00-${traceId}-${callerSpan}-01` },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'docs-echo', arguments: { text: 'traced' } } }),
    });
    expect(res.status).toBe(200);
    const upstreamParent = String(upstream.requests.filter((r) => r.rpcMethod === 'tools/call').at(-1)!.headers.traceparent).split('-')[2];
    const ours = await waitFor(() => {
      const inTrace = spans.filter((s) => s.traceId === traceId);
      return inTrace.length >= 4 ? inTrace : undefined;
    }, { timeoutMs: 15_000, what: 'exported spans' });
    const root = ours.find((s) => s.name === 'mcp tools/call')!;
    expect(root).toMatchObject({ parentSpanId: callerSpan, kind: 2 });
    expect(root.attributes).toEqual(expect.arrayContaining([{ key: 'gatehouse.server', value: { stringValue: 'docs' } }, { key: 'gatehouse.tool', value: { stringValue: 'echo' } }]));
    const children = ours.filter((s) => s.parentSpanId === root.spanId).map((s) => s.name).sort();
    expect(children).toEqual(['gatehouse.credentials', 'gatehouse.forward', 'gatehouse.limits']);
    expect(ours.find((s) => s.name === 'gatehouse.forward')!.spanId).toBe(upstreamParent);
    // No key value or argument in any exported span.
    expect(JSON.stringify(spans)).not.toContain(key);
    expect(JSON.stringify(spans)).not.toContain('traced');
  });
});
