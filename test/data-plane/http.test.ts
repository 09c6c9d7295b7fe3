/**
 * The node's HTTP surface over a real socket: routes, readiness, and the JSON-RPC edge cases of `/mcp`
 * (parse errors, batches, notifications, unknown methods, version negotiation, body limit).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LATEST_PROTOCOL_VERSION } from '@modelcontextprotocol/sdk/types.js';
import { MAX_BATCH_MESSAGES } from '../../data-plane/mcp/route.js';
import { startHttpUpstream, type HttpUpstream } from '../support/upstreams.js';
import { buildSnapshot, postMcp, startTestNode, type BuiltSnapshot, type TestNode } from './helpers.js';
import { scrapeNodeMetrics } from '../support/node-metrics.js';

let node: TestNode;
let upstream: HttpUpstream;
let snapshot: BuiltSnapshot;
let auth: Record<string, string>;
const MAX_BODY = 64 * 1024;

beforeAll(async () => {
  upstream = await startHttpUpstream();
  node = await startTestNode({ maxBodyBytes: MAX_BODY, allowedOrigins: ['https://console.example.com'] });
  snapshot = await buildSnapshot({
    servers: [{ name: 'crm', url: upstream.url }],
    keys: [{ name: 'dev', servers: [{ server: 'crm', tools: ['echo'] }] }],
  });
  auth = { authorization: `Bearer ${snapshot.keyValues.dev}` };
});

afterAll(async () => {
  await node?.close();
  await upstream?.close();
});

describe('before a snapshot is applied', () => {
  it('/healthz is 200, /readyz and /mcp are 503 not_ready', async () => {
    expect((await fetch(`${node.url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${node.url}/readyz`);
    expect(ready.status).toBe(503);
    expect((await ready.json()) as unknown).toMatchObject({ type: 'not_ready' });
    const mcp = await postMcp(node.mcpUrl, { jsonrpc: '2.0', id: 1, method: 'ping' }, auth);
    expect(mcp.status).toBe(503);
    expect((await mcp.json()) as unknown).toMatchObject({ type: 'not_ready' });
  });
});

describe('with a snapshot', () => {
  beforeAll(() => {
    node.apply(snapshot);
  });

  it('/readyz is 200 with the applied version', async () => {
    const res = await fetch(`${node.url}/readyz`);
    expect(res.status).toBe(200);
    expect((await res.json()) as unknown).toEqual({ status: 'ready', version: 1 });
  });

  it('unknown routes are 404 JSON', async () => {
    const res = await fetch(`${node.url}/nope`);
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect((await res.json()) as unknown).toMatchObject({ type: 'not_found' });
  });

  it('GET and DELETE /mcp are 405 (stateless: no server stream, no session)', async () => {
    for (const method of ['GET', 'DELETE']) {
      const res = await fetch(node.mcpUrl, { method, headers: { ...auth, accept: 'text/event-stream' } });
      expect(res.status).toBe(405);
      expect(res.headers.get('allow')).toBe('POST');
      expect((await res.json()) as unknown).toMatchObject({ type: 'method_not_allowed' });
    }
  });

  it('initialize echoes a supported protocol version and falls back to the latest otherwise', async () => {
    const init = (protocolVersion: string) => ({
      jsonrpc: '2.0',
      id: 'init-1',
      method: 'initialize',
      params: { protocolVersion, capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
    });
    const res = await postMcp(node.mcpUrl, init('2025-03-26'), auth);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(res.headers.get('mcp-session-id')).toBeNull();
    expect((await res.json()) as unknown).toEqual({
      jsonrpc: '2.0',
      id: 'init-1',
      result: { protocolVersion: '2025-03-26', capabilities: { tools: { listChanged: false }, resources: {}, prompts: {}, completions: {} }, serverInfo: { name: 'gatehouse', version: '0.1.0' } },
    });
    const future = await postMcp(node.mcpUrl, init('2099-01-01'), auth);
    expect(((await future.json()) as { result: { protocolVersion: string } }).result.protocolVersion).toBe(LATEST_PROTOCOL_VERSION);
  });

  it('ping answers an empty result', async () => {
    const res = await postMcp(node.mcpUrl, { jsonrpc: '2.0', id: 7, method: 'ping' }, auth);
    expect((await res.json()) as unknown).toEqual({ jsonrpc: '2.0', id: 7, result: {} });
  });

  it('notifications and client responses are 202 with no body', async () => {
    const note = await postMcp(node.mcpUrl, { jsonrpc: '2.0', method: 'notifications/initialized' }, auth);
    expect(note.status).toBe(202);
    expect(await note.text()).toBe('');
    const response = await postMcp(node.mcpUrl, { jsonrpc: '2.0', id: 3, result: {} }, auth);
    expect(response.status).toBe(202);
  });

  it('invalid JSON is -32700, a batch on 2025-06-18 or later or a non-message is -32600, all HTTP 400', async () => {
    const parse = await postMcp(node.mcpUrl, '{"jsonrpc":', auth);
    expect(parse.status).toBe(400);
    expect((await parse.json()) as unknown).toMatchObject({ jsonrpc: '2.0', id: null, error: { code: -32700 } });
    // MCP 2025-06-18 transports §Sending Messages: the body MUST be a single message (batching removed).
    for (const version of ['2025-06-18', LATEST_PROTOCOL_VERSION]) {
      const batch = await postMcp(node.mcpUrl, [{ jsonrpc: '2.0', id: 1, method: 'ping' }], { ...auth, 'mcp-protocol-version': version });
      expect(batch.status, version).toBe(400);
      expect((await batch.json()) as unknown).toMatchObject({ id: null, error: { code: -32600 } });
    }
    const junk = await postMcp(node.mcpUrl, { jsonrpc: '1.0', id: 1, method: 'ping' }, auth);
    expect(junk.status).toBe(400);
    expect((await junk.json()) as unknown).toMatchObject({ id: 1, error: { code: -32600 } });
  });

  describe('JSON-RPC batches from 2025-03-26 clients (MCP 2025-03-26 basic §JSON-RPC Batching: MUST support receiving)', () => {
    // Such clients send no MCP-Protocol-Version header (it arrived in 2025-06-18), or may name their version.
    const old = (extra: Record<string, string> = {}): Record<string, string> => ({ ...auth, ...extra });

    it('answers each request in order, in one JSON array; notifications and responses get no entry', async () => {
      const res = await postMcp(
        node.mcpUrl,
        [
          { jsonrpc: '2.0', id: 'a', method: 'ping' },
          { jsonrpc: '2.0', method: 'notifications/initialized' },
          { jsonrpc: '2.0', id: 'b', method: 'tools/call', params: { name: 'crm-echo', arguments: { text: 'batched' } } },
          { jsonrpc: '2.0', id: 'c', method: 'tools/call', params: { name: 'crm-secret_tool', arguments: {} } },
          { jsonrpc: '2.0', id: 99, result: {} },
          { jsonrpc: '2.0', id: 'd', method: 'resources/subscribe', params: { uri: 'x' } },
        ],
        old(),
      );
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('application/json');
      const body = (await res.json()) as { id: unknown }[];
      expect(body.map((r) => r.id)).toEqual(['a', 'b', 'c', 'd']);
      expect(body[0]).toEqual({ jsonrpc: '2.0', id: 'a', result: {} });
      expect(body[1]).toMatchObject({ id: 'b', result: { content: [{ type: 'text', text: 'http:batched' }] } });
      // Policy holds per element: the denied call is refused and never reaches the upstream.
      expect(body[2]).toMatchObject({ id: 'c', error: { code: -32003, data: { type: 'tool_blocked' } } });
      expect(body[3]).toMatchObject({ id: 'd', error: { code: -32601 } });
      expect(upstream.requests.some((r) => JSON.stringify(r).includes('secret_tool'))).toBe(false);
    });

    it('accepts an explicit 2025-03-26 MCP-Protocol-Version header too', async () => {
      const res = await postMcp(node.mcpUrl, [{ jsonrpc: '2.0', id: 1, method: 'ping' }], old({ 'mcp-protocol-version': '2025-03-26' }));
      expect(res.status).toBe(200);
      expect((await res.json()) as unknown).toEqual([{ jsonrpc: '2.0', id: 1, result: {} }]);
    });

    it('a batch of only notifications and responses is 202 with no body', async () => {
      const res = await postMcp(node.mcpUrl, [{ jsonrpc: '2.0', method: 'notifications/initialized' }, { jsonrpc: '2.0', id: 5, result: {} }], old());
      expect(res.status).toBe(202);
      expect(await res.text()).toBe('');
    });

    it('an invalid element gets its own -32600 entry (JSON-RPC 2.0 §6); the others are still answered', async () => {
      const res = await postMcp(node.mcpUrl, [1, { jsonrpc: '2.0', id: 2, method: 'ping' }, [{ jsonrpc: '2.0', id: 3, method: 'ping' }]], old());
      expect(res.status).toBe(200);
      expect((await res.json()) as unknown).toEqual([
        { jsonrpc: '2.0', id: null, error: { code: -32600, message: expect.any(String) as unknown } },
        { jsonrpc: '2.0', id: 2, result: {} },
        { jsonrpc: '2.0', id: null, error: { code: -32600, message: expect.any(String) as unknown } },
      ]);
    });

    it('an empty batch, an oversized one, or one holding initialize is refused whole with 400 -32600', async () => {
      const init = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-03-26', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } };
      const pings = Array.from({ length: MAX_BATCH_MESSAGES + 1 }, (_, i) => ({ jsonrpc: '2.0', id: i, method: 'ping' }));
      for (const [label, batch] of [['empty', []], ['oversized', pings], ['initialize', [init, { jsonrpc: '2.0', id: 2, method: 'ping' }]]] as const) {
        const res = await postMcp(node.mcpUrl, batch, old());
        expect(res.status, label).toBe(400);
        expect((await res.json()) as unknown, label).toMatchObject({ jsonrpc: '2.0', id: null, error: { code: -32600 } });
      }
    });
  });

  it('authentication comes before parsing: a bad body without a key is 401, not -32700', async () => {
    const res = await postMcp(node.mcpUrl, '{"jsonrpc":');
    expect(res.status).toBe(401);
  });

  it('an unknown method is -32601; bad tools/call params are -32602', async () => {
    const unknown = await postMcp(node.mcpUrl, { jsonrpc: '2.0', id: 1, method: 'sampling/createMessage' }, auth);
    expect(unknown.status).toBe(200);
    expect((await unknown.json()) as unknown).toMatchObject({ id: 1, error: { code: -32601 } });
    const bad = await postMcp(node.mcpUrl, { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { arguments: {} } }, auth);
    expect((await bad.json()) as unknown).toMatchObject({ id: 2, error: { code: -32602 } });
  });

  it('a denied tools/call is a JSON-RPC error -32003 with data.type tool_blocked', async () => {
    const res = await postMcp(node.mcpUrl, { jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name: 'crm-secret_tool', arguments: {} } }, auth);
    expect(res.status).toBe(200);
    expect((await res.json()) as unknown).toEqual({
      jsonrpc: '2.0',
      id: 9,
      error: { code: -32003, message: "tool 'crm-secret_tool' is not available to this virtual key", data: { type: 'tool_blocked' } },
    });
  });

  it('a granted tools/call returns the upstream result', async () => {
    const res = await postMcp(node.mcpUrl, { jsonrpc: '2.0', id: 10, method: 'tools/call', params: { name: 'crm-echo', arguments: { text: 'raw' } } }, auth);
    expect((await res.json()) as unknown).toMatchObject({ jsonrpc: '2.0', id: 10, result: { content: [{ type: 'text', text: 'http:raw' }] } });
  });

  it("an upstream's own failure (invalid arguments) comes back as the upstream's tool error", async () => {
    const res = await postMcp(node.mcpUrl, { jsonrpc: '2.0', id: 11, method: 'tools/call', params: { name: 'crm-echo', arguments: { text: 42 } } }, auth);
    const body = (await res.json()) as { result: { isError: boolean; content: { text: string }[] } };
    expect(body.result.isError).toBe(true);
    expect(body.result.content[0]?.text).toMatch(/Input validation error/);
  });

  it('a request from a browser Origin not on the allowlist is 403 origin_not_allowed, even with a valid key', async () => {
    const ping = { jsonrpc: '2.0', id: 1, method: 'ping' };
    const evil = await postMcp(node.mcpUrl, ping, { ...auth, origin: 'http://attacker.example' });
    expect(evil.status).toBe(403);
    expect((await evil.json()) as unknown).toMatchObject({ type: 'origin_not_allowed' });
    const allowed = await postMcp(node.mcpUrl, ping, { ...auth, origin: 'https://console.example.com' });
    expect(allowed.status).toBe(200);
    // No Origin at all (CLI agents) is fine.
    expect((await postMcp(node.mcpUrl, ping, auth)).status).toBe(200);
  });

  it('/metrics counts MCP calls by method and outcome, shows the snapshot version, and no key', async () => {
    await postMcp(node.mcpUrl, { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'crm-echo', arguments: { text: 'm' } } }, auth);
    const text = await scrapeNodeMetrics(node.url);
    expect(text).toMatch(/gatehouse_mcp_requests_total\{method="tools\/call",outcome="ok",server="crm"\} [1-9]/);
    expect(text).toMatch(new RegExp(`gatehouse_snapshot_version ${snapshot.payload.version}`));
    expect(text).toMatch(/gatehouse_mcp_request_duration_seconds_bucket/);
    expect(text).not.toContain(snapshot.keyValues.dev);
  });

  it('an unsupported MCP-Protocol-Version header is 400', async () => {
    const res = await postMcp(node.mcpUrl, { jsonrpc: '2.0', id: 1, method: 'ping' }, { ...auth, 'mcp-protocol-version': '1999-01-01' });
    expect(res.status).toBe(400);
    expect((await res.json()) as unknown).toMatchObject({ type: 'invalid_request' });
  });

  it('a body over the limit is 413', async () => {
    const big = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping', params: { _meta: { pad: 'x'.repeat(MAX_BODY) } } });
    const res = await postMcp(node.mcpUrl, big, auth);
    expect(res.status).toBe(413);
    expect((await res.json()) as unknown).toMatchObject({ type: 'payload_too_large' });
  });

  it('a chunked body over the limit is 413 too', async () => {
    const chunk = new TextEncoder().encode('x'.repeat(16 * 1024));
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent > MAX_BODY * 2) controller.close();
        else {
          sent += chunk.length;
          controller.enqueue(chunk);
        }
      },
    });
    const res = await fetch(node.mcpUrl, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body, duplex: 'half' } as RequestInit);
    expect(res.status).toBe(413);
  });
});
