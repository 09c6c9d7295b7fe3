/**
 * A client on MCP 2026-07-28 in front of an upstream that only speaks the 2025 versions, on `/mcp/{server}`:
 * the node bridges (it answers in the 2026 shape over its pooled 2025 connection) instead of passing through
 * a request the upstream would refuse; a dual-era upstream (the conformance fixture) is passed through.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startConformanceFixture, type ConformanceFixture } from '../../fixtures/conformance/server.js';
import { startHttpUpstream, type HttpUpstream } from '../../support/upstreams.js';
import { buildSnapshot, startTestNode, type BuiltSnapshot, type TestNode } from '../helpers.js';

const META = { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': {}, 'io.modelcontextprotocol/clientInfo': { name: 't', version: '1' } };

describe('2026-07-28 clients on /mcp/{server}', () => {
  let node: TestNode;
  let upstream: HttpUpstream;
  let fixture: ConformanceFixture;
  let snapshot: BuiltSnapshot;

  const post = async (server: string, method: string, params: Record<string, unknown> = {}): Promise<{ status: number; body: { result?: Record<string, unknown>; error?: { code: number } } }> => {
    const res = await fetch(`${node.url}/mcp/${server}`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${snapshot.keyValues.k ?? ''}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': '2026-07-28',
        'mcp-method': method,
        ...(typeof params.name === 'string' ? { 'mcp-name': params.name } : {}),
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params: { ...params, _meta: META } }),
    });
    return { status: res.status, body: (await res.json()) as { result?: Record<string, unknown> } };
  };

  beforeAll(async () => {
    upstream = await startHttpUpstream({ label: 'http' });
    fixture = await startConformanceFixture();
    node = await startTestNode();
    snapshot = await buildSnapshot({
      servers: [
        { name: 'old', url: upstream.url },
        { name: 'dual', url: fixture.url },
      ],
      keys: [{ name: 'k', servers: [{ server: 'old', tools: ['echo'] }, { server: 'dual', tools: ['*'] }] }],
      sessionSecrets: { current: { id: 'e1', secret: randomBytes(32).toString('base64url') } },
    });
    node.apply(snapshot);
  });

  afterAll(async () => {
    await node?.close();
    await upstream?.close();
    await fixture?.close();
  });

  it('bridges to a 2025-only upstream: server/discover, a filtered tools/list and a tools/call in the 2026 shape', async () => {
    const discover = await post('old', 'server/discover');
    expect(discover.status).toBe(200);
    expect(discover.body.result).toMatchObject({ supportedVersions: ['2026-07-28'], capabilities: { tools: {} }, resultType: 'complete' });
    const list = await post('old', 'tools/list');
    expect(list.body.result).toMatchObject({ resultType: 'complete', ttlMs: 0, cacheScope: 'private', _meta: { 'io.modelcontextprotocol/serverInfo': { name: 'upstream-http' } } });
    expect((list.body.result?.tools as { name: string }[]).map((t) => t.name)).toEqual(['echo']);
    const call = await post('old', 'tools/call', { name: 'echo', arguments: { text: 'modern' } });
    expect(call.body.result).toMatchObject({ resultType: 'complete', content: [{ type: 'text', text: 'http:modern' }] });
    const denied = await post('old', 'tools/call', { name: 'add', arguments: { a: 1, b: 2 } });
    expect(denied.body.error?.code).toBe(-32003);
  });

  it('passes a dual-era upstream through: its own 2026 answers', async () => {
    const discover = await post('dual', 'server/discover');
    expect(discover.body.result).toMatchObject({ resultType: 'complete', _meta: { 'io.modelcontextprotocol/serverInfo': { name: expect.not.stringMatching(/^upstream-/) } } });
    const before = fixture.events.events.length;
    await post('dual', 'tools/list');
    expect(fixture.events.events.slice(before).some((e) => e.kind === 'http' && e.era === 'modern' && e.rpcMethod === 'tools/list')).toBe(true);
  });
});
