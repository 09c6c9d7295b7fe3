/**
 * A client on MCP 2026-07-28 (no sessions, no initialize; `server/discover`, per-request `_meta`,
 * `Mcp-Method`/`Mcp-Name` headers, `resultType` on results, caching hints on lists) on the aggregated
 * `/mcp`, in front of an upstream on the 2025 versions: the gateway bridges the eras.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHttpUpstream, type HttpUpstream } from '../support/upstreams.js';
import { MODERN_META, buildSnapshot, postMcp, startTestNode, type BuiltSnapshot, type TestNode } from './helpers.js';

const VERSION = '2026-07-28';
const META = MODERN_META;

let upstream: HttpUpstream;
let node: TestNode;
let snapshot: BuiltSnapshot;

beforeAll(async () => {
  upstream = await startHttpUpstream();
  node = await startTestNode();
  snapshot = await buildSnapshot({
    servers: [{ name: 'crm', url: upstream.url }],
    keys: [
      { name: 'dev', servers: [{ server: 'crm', tools: ['echo', 'add'] }] },
      { name: 'streamer', servers: [{ server: 'crm', tools: ['slow', 'echo'] }] },
    ],
  });
  node.apply(snapshot);
});

afterAll(async () => {
  await node?.close();
  await upstream?.close();
});

function post(method: string, params: Record<string, unknown>, id: number, name?: string): Promise<Response> {
  return postMcp(
    node.mcpUrl,
    { jsonrpc: '2.0', id, method, params: { ...params, _meta: META } },
    {
      authorization: `Bearer ${snapshot.keyValues.dev ?? ''}`,
      'mcp-protocol-version': VERSION,
      'mcp-method': method,
      ...(name !== undefined ? { 'mcp-name': name } : {}),
    },
  );
}

describe('MCP 2026-07-28 client on /mcp', () => {
  it('server/discover, then tools/list and tools/call with _meta: answered in the 2026 shape, no session', async () => {
    const discover = await post('server/discover', {}, 1);
    expect(discover.status).toBe(200);
    expect(discover.headers.get('mcp-session-id')).toBeNull();
    const found = (await discover.json()) as { result: Record<string, unknown> };
    expect(found.result).toMatchObject({
      resultType: 'complete',
      capabilities: { tools: {} },
      _meta: { 'io.modelcontextprotocol/serverInfo': { name: 'gatehouse' } },
    });
    expect(found.result.supportedVersions).toContain(VERSION);

    const list = (await (await post('tools/list', {}, 2)).json()) as { result: { tools: { name: string }[]; resultType: string; ttlMs: number; cacheScope: string } };
    expect(list.result.tools.map((t) => t.name).sort()).toEqual(['crm-add', 'crm-echo']);
    expect(list.result).toMatchObject({ resultType: 'complete', ttlMs: 0, cacheScope: 'private' });

    const call = await post('tools/call', { name: 'crm-echo', arguments: { text: 'modern' } }, 3, 'crm-echo');
    const called = (await call.json()) as { result: { content: { text: string }[]; resultType: string } };
    expect(called.result.content[0]?.text).toBe('http:modern');
    expect(called.result.resultType).toBe('complete');
    // The 2025 upstream got the call in its own era (in the gateway's session), with the caller's _meta passed on.
    const upstreamCall = upstream.requests.find((r) => r.rpcMethod === 'tools/call');
    expect(upstreamCall?.headers['mcp-session-id']).toBeDefined();
  });

  it('Mcp-Method / Mcp-Name that disagree with the body: 400 with JSON-RPC -32020, nothing forwarded', async () => {
    const before = upstream.requests.filter((r) => r.rpcMethod === 'tools/call').length;
    const wrongName = await post('tools/call', { name: 'crm-add', arguments: { a: 1, b: 2 } }, 4, 'crm-echo');
    expect(wrongName.status).toBe(400);
    expect(((await wrongName.json()) as { error: { code: number } }).error.code).toBe(-32020);
    const wrongMethod = await postMcp(
      node.mcpUrl,
      { jsonrpc: '2.0', id: 5, method: 'tools/call', params: { name: 'crm-echo', arguments: { text: 'x' }, _meta: META } },
      { authorization: `Bearer ${snapshot.keyValues.dev ?? ''}`, 'mcp-protocol-version': VERSION, 'mcp-method': 'tools/list' },
    );
    expect(wrongMethod.status).toBe(400);
    expect(upstream.requests.filter((r) => r.rpcMethod === 'tools/call').length).toBe(before);
  });

  it('2025 clients are unchanged: no resultType added; an unknown version is still refused', async () => {
    const res = await postMcp(node.mcpUrl, { jsonrpc: '2.0', id: 6, method: 'tools/call', params: { name: 'crm-echo', arguments: { text: 'old' } } }, {
      authorization: `Bearer ${snapshot.keyValues.dev ?? ''}`,
      'mcp-protocol-version': '2025-06-18',
    });
    const body = (await res.json()) as { result: Record<string, unknown> };
    expect(body.result.resultType).toBeUndefined();
    const unknown = await postMcp(node.mcpUrl, { jsonrpc: '2.0', id: 7, method: 'ping' }, { authorization: `Bearer ${snapshot.keyValues.dev ?? ''}`, 'mcp-protocol-version': '2099-01-01' });
    expect(unknown.status).toBe(400);
  });
});

/** The JSON messages of an SSE body, in order. */
function sseMessages(text: string): Record<string, unknown>[] {
  return text
    .split(/\r?\n\r?\n/)
    .map((event) => event.split(/\r?\n/).filter((line) => line.startsWith('data:')).map((line) => line.slice(5).trimStart()).join('\n'))
    .filter((data) => data !== '')
    .map((data) => JSON.parse(data) as Record<string, unknown>);
}

describe('MCP 2026-07-28 client: a tools/call answered as a stream', () => {
  async function streamedCall(headers: Record<string, string>, meta: Record<string, unknown>, id: number): Promise<{ type: string | null; messages: Record<string, unknown>[] }> {
    const res = await postMcp(
      node.mcpUrl,
      { jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'crm-slow', arguments: { ms: 10 }, _meta: { ...meta, progressToken: `p-${id}` } } },
      { authorization: `Bearer ${snapshot.keyValues.streamer ?? ''}`, accept: 'application/json, text/event-stream', ...headers },
    );
    expect(res.status).toBe(200);
    return { type: res.headers.get('content-type'), messages: sseMessages(await res.text()) };
  }

  it('the final result event is shaped like the JSON answer (resultType, serverInfo), after the relayed progress', async () => {
    // The upstream streams its answer (a progress notification, then the result): the gateway relays it as SSE.
    for (const [how, headers, meta] of [
      ['version header and _meta', { 'mcp-protocol-version': VERSION, 'mcp-method': 'tools/call', 'mcp-name': 'crm-slow' }, META],
      ['_meta only', {}, META],
    ] as const) {
      const { type, messages } = await streamedCall(headers, meta, how.length);
      expect(type, how).toMatch(/^text\/event-stream/);
      expect(messages.map((m) => m.method ?? 'response'), how).toEqual(['notifications/progress', 'response']);
      const result = messages.at(-1)?.result as Record<string, unknown>;
      expect(result, how).toMatchObject({ content: [{ type: 'text', text: 'slept 10' }], resultType: 'complete', _meta: { 'io.modelcontextprotocol/serverInfo': { name: 'gatehouse' } } });
    }
    // The same call answered as JSON (no progress token: nothing to stream) has the same shape.
    const json = await post('tools/call', { name: 'crm-echo', arguments: { text: 'j' } }, 40, 'crm-echo');
    expect(json.headers.get('content-type')).toMatch(/^application\/json/);
    const answered = (await json.json()) as { result: Record<string, unknown> };
    expect(answered.result).toMatchObject({ resultType: 'complete', _meta: { 'io.modelcontextprotocol/serverInfo': { name: 'gatehouse' } } });
  });

  it('a 2025 client streamed the same call gets the result as the upstream sent it', async () => {
    const { messages } = await streamedCall({ 'mcp-protocol-version': '2025-06-18' }, {}, 50);
    expect(messages.map((m) => m.method ?? 'response')).toEqual(['notifications/progress', 'response']);
    const result = messages.at(-1)?.result as Record<string, unknown>;
    expect(result.resultType).toBeUndefined();
    expect(result.content).toEqual([{ type: 'text', text: 'slept 10' }]);
  });
});
