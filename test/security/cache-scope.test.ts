/**
 * MCP 2026-07-28 list results carry `cacheScope`; `public` lets a shared cache (a proxy, a multi-user client)
 * hand one caller's list to another. `/mcp/{server}` passed an upstream's `public` through for lists that are
 * the caller's own: a tools/list cut down to the key's grant, and any list of a server whose credential is
 * per user; `modernize` (the 2025-upstream bridge and the aggregated `/mcp`) let a result's own
 * `cacheScope` win over the `private` it adds. Now those say `private` (JSON and SSE); a shared server's
 * whole list keeps what the upstream said. Pinned beside it: the bridge and `/mcp` lists say `private`.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSnapshot, perUserTokens, startTestNode, type BuiltSnapshot, type TestNode } from '../data-plane/helpers.js';
import { modernize } from '../../data-plane/proxy/era.js';
import { startRawUpstream, type RawUpstream } from './raw-upstream.js';

const TOOLS = [
  { name: 'a', inputSchema: { type: 'object' } },
  { name: 'b', inputSchema: { type: 'object' } },
];
const HINTS = { resultType: 'complete', ttlMs: 60_000, cacheScope: 'public' };

let upstream: RawUpstream;
/** A 2025-only upstream (refuses server/discover) whose results still say `public`. */
let old: RawUpstream;
let node: TestNode;
let snapshot: BuiltSnapshot;

function listResult(method: string | undefined): Record<string, unknown> | null {
  switch (method) {
    case 'tools/list':
      return { tools: TOOLS, ...HINTS };
    case 'prompts/list':
      return { prompts: [], ...HINTS };
    case 'resources/list':
      return { resources: [], ...HINTS };
    default:
      return null;
  }
}

beforeAll(async () => {
  upstream = await startRawUpstream((request, message) => {
    const result = listResult(message.method);
    if (result === null) return null;
    const json = JSON.stringify({ jsonrpc: '2.0', id: message.id, result });
    // SSE when the caller's request asks only for it.
    if (request.headers.accept === 'text/event-stream') return { status: 200, type: 'text/event-stream', body: `event: message\ndata: ${json}\n\n` };
    return { status: 200, body: json };
  });
  old = await startRawUpstream((_request, message) => {
    if (message.method === 'server/discover') return { status: 400, body: JSON.stringify({ jsonrpc: '2.0', id: message.id, error: { code: -32601, message: 'no' } }) };
    const result = listResult(message.method);
    return result === null ? null : { status: 200, body: JSON.stringify({ jsonrpc: '2.0', id: message.id, result }) };
  });
  node = await startTestNode({ hooks: { credentials: perUserTokens('mine') } });
  snapshot = await buildSnapshot({
    servers: [
      { name: 'crm', url: upstream.url },
      { name: 'mine', url: upstream.url },
      { name: 'old', url: old.url },
    ],
    keys: [
      { name: 'narrow', servers: [{ server: 'crm', tools: ['a'] }] },
      { name: 'wide', servers: [{ server: 'crm', tools: ['*'] }, { server: 'mine', tools: ['*'] }, { server: 'old', tools: ['*'] }] },
    ],
    sessionSecrets: { current: { id: 's1', secret: randomBytes(32).toString('base64url') } },
  });
  node.apply(snapshot);
});

afterAll(async () => {
  await node?.close();
  await upstream?.close();
  await old?.close();
});

interface ListAnswer {
  result: { cacheScope?: string; tools?: { name: string }[] };
}

async function list(key: string, path: string, method: string, options: { sse?: boolean; modern?: boolean } = {}): Promise<ListAnswer> {
  const res = await fetch(`${node.url}${path}`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${snapshot.keyValues[key] ?? ''}`,
      'content-type': 'application/json',
      accept: options.sse ? 'text/event-stream' : 'application/json, text/event-stream',
      ...(options.modern ? { 'mcp-protocol-version': '2026-07-28', 'mcp-method': method } : {}),
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 9,
      method,
      params: options.modern ? { _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': {} } } : {},
    }),
  });
  expect(res.status).toBe(200);
  const text = await res.text();
  if (options.sse) {
    const data = text.split('\n').find((line) => line.startsWith('data: ')) ?? '';
    return JSON.parse(data.slice(6)) as ListAnswer;
  }
  return JSON.parse(text) as ListAnswer;
}

describe('/mcp/{server}', () => {
  it("a tools/list cut to the key's grant is private (JSON and SSE)", async () => {
    const json = await list('narrow', '/mcp/crm', 'tools/list');
    expect(json.result.tools?.map((t) => t.name)).toEqual(['a']);
    expect(json.result.cacheScope).toBe('private');
    expect((await list('narrow', '/mcp/crm', 'tools/list', { sse: true })).result.cacheScope).toBe('private');
  });

  it('every list of a per-user server is private (JSON and SSE)', async () => {
    for (const method of ['tools/list', 'prompts/list', 'resources/list']) {
      expect((await list('wide', '/mcp/mine', method)).result.cacheScope).toBe('private');
      expect((await list('wide', '/mcp/mine', method, { sse: true })).result.cacheScope).toBe('private');
    }
  });

  it("a shared server's whole list keeps the upstream's scope (control)", async () => {
    expect((await list('wide', '/mcp/crm', 'tools/list')).result.cacheScope).toBe('public');
    expect((await list('narrow', '/mcp/crm', 'prompts/list')).result.cacheScope).toBe('public');
  });

  it('the 2026-07-28 bridge to a 2025 upstream says private, whatever the result said', async () => {
    const answer = await list('wide', '/mcp/old', 'tools/list', { modern: true });
    expect(answer.result.cacheScope).toBe('private');
  });
});

describe('/mcp (aggregated)', () => {
  it.each(['tools/list', 'prompts/list', 'resources/list'])('%s is private on the 2026-07-28 wire', async (method) => {
    expect((await list('wide', '/mcp', method, { modern: true })).result.cacheScope).toBe('private');
  });
});

describe('modernize', () => {
  it("puts private over a list result's own scope", () => {
    const reply = modernize({ status: 200, body: { jsonrpc: '2.0', id: 1, result: { tools: [], cacheScope: 'public', ttlMs: 5 } } }, 'tools/list', { name: 's', version: '1' });
    expect((reply.body as ListAnswer).result).toMatchObject({ cacheScope: 'private', ttlMs: 5 });
  });
});
