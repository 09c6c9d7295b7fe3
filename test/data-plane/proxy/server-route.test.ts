/**
 * `/mcp/{server}` (issue 9) with the MCP SDK's real client, two nodes from one snapshot, and the conformance
 * fixture as the upstream: sessions that move between nodes, server-to-client requests relayed both ways,
 * resources/prompts/completions, progress and logging, the filtered tools/list and the denied tools/call
 * that never reaches the upstream, the header allowlists both ways, and every refusal (another key, a
 * revoked key, an unknown server).
 */
import { randomBytes } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  CallToolResultSchema,
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
  LoggingMessageNotificationSchema,
  type LoggingMessageNotification,
  type Progress,
} from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STATIC_TEXT_URI } from '../../fixtures/conformance/content.js';
import { startConformanceFixture, type ConformanceFixture } from '../../fixtures/conformance/server.js';
import { startHeaderProxy, type HeaderProxy } from '../../conformance/header-proxy.js';
import { waitFor } from '../../support/wait.js';
import { GatewayError } from '../../../data-plane/errors.js';
import type { RequestRecord } from '../../../data-plane/pipeline/context.js';
import type { Limiter } from '../../../data-plane/pipeline/limits.js';
import { buildSnapshot, resultText, startTestNode, type BuiltSnapshot, type TestConfig, type TestNode } from '../helpers.js';

const UPSTREAM_SECRET = 'upstream-secret-7f3a9c';

describe('/mcp/{server} through two nodes', () => {
  let fixture: ConformanceFixture;
  let nodeA: TestNode;
  let nodeB: TestNode;
  let roundRobin: HeaderProxy;
  let snapshot: BuiltSnapshot;
  let config: TestConfig;
  const clients: Client[] = [];
  const records: RequestRecord[] = [];
  /** The limits stage refuses calls of this tool (stands in for a rate limit). */
  const limiter: Limiter = {
    admit: (subject) => (subject.tool === 'test_audio_content' ? new GatewayError('rate_limited', { headers: { 'retry-after': '7' } }) : { settle: () => undefined }),
  };

  const key = (name: string): string => snapshot.keyValues[name] ?? '';
  const routeOf = (node: TestNode, server = 'conf'): string => `${node.url}/mcp/${server}`;
  const httpEvents = () => fixture.events.events.flatMap((e) => (e.kind === 'http' ? [e] : []));

  async function connect(url: string, keyName: string, options: { sessionId?: string; headers?: Record<string, string> } = {}): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
    const client = new Client({ name: 'route-test', version: '1.0.0' }, { capabilities: { elicitation: {}, sampling: {}, roots: {} } });
    client.setRequestHandler(ElicitRequestSchema, () => ({ action: 'accept', content: { username: 'ada', email: 'ada@example.com' } }));
    client.setRequestHandler(CreateMessageRequestSchema, () => ({ role: 'assistant', model: 'm', content: { type: 'text', text: 'Paris' } }));
    client.setRequestHandler(ListRootsRequestSchema, () => ({ roots: [{ uri: 'file:///work', name: 'work' }] }));
    const transport = new StreamableHTTPClientTransport(new URL(url), {
      requestInit: { headers: { authorization: `Bearer ${key(keyName)}`, ...options.headers } },
      ...(options.sessionId ? { sessionId: options.sessionId } : {}),
    });
    await client.connect(transport);
    clients.push(client);
    return { client, transport };
  }

  beforeAll(async () => {
    fixture = await startConformanceFixture();
    nodeA = await startTestNode({ hooks: { onRecord: (r) => records.push(r), limiter } });
    nodeB = await startTestNode({ hooks: { onRecord: (r) => records.push(r), limiter } });
    config = {
      servers: [
        { name: 'conf', url: fixture.url, headers: { 'x-upstream-token': { secret: UPSTREAM_SECRET } }, allowedExtraHeaders: ['x-tenant'] },
        { name: 'gone', url: 'http://127.0.0.1:1/mcp' },
      ],
      keys: [
        { name: 'full', servers: [{ server: 'conf', tools: ['*'] }, { server: 'gone', tools: ['*'] }] },
        { name: 'other', servers: [{ server: 'conf', tools: ['*'] }] },
        { name: 'limited', servers: [{ server: 'conf', tools: ['test_simple_text', 'test_elicitation'] }] },
        { name: 'none', servers: [] },
        { name: 'revocable', servers: [{ server: 'conf', tools: ['*'] }] },
      ],
      sessionSecrets: { current: { id: 's1', secret: randomBytes(32).toString('base64url') } },
    };
    snapshot = await buildSnapshot(config);
    nodeA.apply(snapshot);
    nodeB.apply(snapshot);
    // Each node fetches conf's catalog as soon as the snapshot lands (its own pooled session): let that
    // background traffic finish, so the upstream events the tests read are their own.
    for (const node of [nodeA, nodeB]) await waitFor(() => node.pool.catalogs().some((c) => c.server === 'conf'), { what: 'the eager catalog fetch' });
    // A load balancer that sends every request to the other node than the one before.
    roundRobin = await startHeaderProxy({ target: [routeOf(nodeA), routeOf(nodeB)], headers: {} });
  });

  afterAll(async () => {
    for (const client of clients) await client.close().catch(() => undefined);
    await roundRobin?.close();
    await nodeA?.close();
    await nodeB?.close();
    await fixture?.close();
  });

  it('continues a session opened through node A on node B (sealed id; one upstream session)', async () => {
    const { client, transport } = await connect(routeOf(nodeA), 'full');
    const sealed = transport.sessionId ?? '';
    expect(sealed.startsWith('v1.s1.')).toBe(true);
    const upstreamId = httpEvents().at(-1)?.sessionId;
    expect(upstreamId).toBeTruthy();
    expect(sealed).not.toContain(String(upstreamId));
    expect((await client.callTool({ name: 'test_simple_text' })).content).toEqual([{ type: 'text', text: 'This is a simple text response for testing.' }]);

    const onB = await connect(routeOf(nodeB), 'full', { sessionId: sealed });
    const before = httpEvents().length;
    const tools = await onB.client.listTools();
    expect(tools.tools.map((t) => t.name)).toContain('test_simple_text');
    expect(resultText(await onB.client.callTool({ name: 'test_simple_text' }))).toContain('simple text');
    const seen = httpEvents().slice(before);
    expect(seen.length).toBeGreaterThan(0);
    for (const e of seen) expect(e.sessionId).toBe(upstreamId);
  });

  it('relays elicitation and sampling requests from the upstream to the client, and the answers back, across nodes', async () => {
    const { client } = await connect(roundRobin.url, 'full');
    const elicited = await client.callTool({ name: 'test_elicitation', arguments: { message: 'who are you?' } });
    expect(JSON.stringify(elicited.content)).toContain('ada@example.com');
    const sampled = await client.callTool({ name: 'test_sampling', arguments: { prompt: 'capital of France?' } });
    expect(JSON.stringify(sampled.content)).toContain('LLM response: Paris');
    const roots = await client.callTool({ name: 'test_list_roots', arguments: {} });
    expect(JSON.stringify(roots.content)).toContain('file:///work');
    const inputs = fixture.events.events.flatMap((e) => (e.kind === 'input' ? [`${e.method}:${e.tool}`] : []));
    expect(inputs).toEqual(expect.arrayContaining(['elicitation/create:test_elicitation', 'sampling/createMessage:test_sampling', 'roots/list:test_list_roots']));
  });

  it('serves resources, resource templates, prompts and completions unprefixed', async () => {
    const { client } = await connect(roundRobin.url, 'full');
    expect((await client.listResources()).resources.map((r) => r.uri)).toContain(STATIC_TEXT_URI);
    const read = await client.readResource({ uri: STATIC_TEXT_URI });
    expect(read.contents[0]).toMatchObject({ uri: STATIC_TEXT_URI, mimeType: 'text/plain' });
    expect((await client.listResourceTemplates()).resourceTemplates.map((t) => t.uriTemplate)).toContain('test://template/{id}/data');
    const prompt = await client.getPrompt({ name: 'test_simple_prompt' });
    expect(prompt.messages.length).toBeGreaterThan(0);
    const withArgs = await client.getPrompt({ name: 'test_prompt_with_arguments', arguments: { arg1: 'a', arg2: 'b' } });
    expect(JSON.stringify(withArgs.messages)).toContain('a');
    const completion = await client.complete({ ref: { type: 'ref/prompt', name: 'test_prompt_with_arguments' }, argument: { name: 'arg1', value: '' } });
    expect(Array.isArray(completion.completion.values)).toBe(true);
  });

  it('relays progress and log notifications during a tool call', async () => {
    const { client } = await connect(roundRobin.url, 'full');
    const progress: Progress[] = [];
    await client.callTool({ name: 'test_tool_with_progress' }, CallToolResultSchema, { onprogress: (p) => progress.push(p) });
    expect(progress.map((p) => p.progress)).toEqual([0, 50, 100]);
    const logs: LoggingMessageNotification['params'][] = [];
    client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => void logs.push(n.params));
    await client.setLoggingLevel('info');
    await client.callTool({ name: 'test_tool_with_logging' });
    expect(logs.map((l) => l.data)).toEqual(['Tool execution started', 'Tool processing data', 'Tool execution completed']);
  });

  it('shows a key only the tools it may call, and a denied call never reaches the upstream', async () => {
    const { client } = await connect(roundRobin.url, 'limited');
    expect((await client.listTools()).tools.map((t) => t.name).sort()).toEqual(['test_elicitation', 'test_simple_text']);
    expect(resultText(await client.callTool({ name: 'test_simple_text' }))).toContain('simple text');
    const before = httpEvents().length;
    await expect(client.callTool({ name: 'test_image_content' })).rejects.toMatchObject({ code: -32003 });
    expect(httpEvents().slice(before).filter((e) => e.rpcMethod === 'tools/call')).toEqual([]);
    // Recorded by the pipeline's record stage like any /mcp refusal.
    await waitFor(() => records.find((r) => r.route === 'mcp_server' && r.tool === 'test_image_content'));
    expect(records.find((r) => r.route === 'mcp_server' && r.tool === 'test_image_content')).toMatchObject({ outcome: 'denied', error: 'tool_blocked', server: 'conf', keyId: 'key_limited' });
    expect(records.find((r) => r.route === 'mcp_server' && r.tool === 'test_simple_text' && r.keyId === 'key_limited')).toMatchObject({ outcome: 'ok', credentialIdentity: 'shared' });
  });

  it('runs every forwarded message through the limits stage (a refusal is a JSON-RPC error, nothing reaches the upstream)', async () => {
    const { client } = await connect(roundRobin.url, 'full');
    const before = httpEvents().length;
    await expect(client.callTool({ name: 'test_audio_content' })).rejects.toMatchObject({ code: -32004 });
    expect(httpEvents().slice(before).filter((e) => e.rpcMethod === 'tools/call')).toEqual([]);
  });

  it('sends the server credentials and allowlisted caller headers upstream, never the caller key or other headers', async () => {
    const { client } = await connect(routeOf(nodeA), 'full', { headers: { 'x-tenant': 'acme', 'x-private': 'nope' } });
    const before = httpEvents().length;
    await client.callTool({ name: 'test_simple_text' });
    const call = httpEvents().slice(before).find((e) => e.rpcMethod === 'tools/call');
    expect(call?.headers['x-upstream-token']).toBe(UPSTREAM_SECRET);
    expect(call?.headers['x-tenant']).toBe('acme');
    expect(call?.headers['x-private']).toBeUndefined();
    expect(call?.headers.authorization).toBeUndefined();
    expect(JSON.stringify(call?.headers)).not.toContain(key('full'));
    // The upstream credential never comes back to the caller, in a log line or otherwise.
    expect(nodeA.logs.text()).not.toContain(UPSTREAM_SECRET);
  });

  it('refuses a session id replayed with another key (404), without reaching the upstream', async () => {
    const { transport } = await connect(routeOf(nodeA), 'full');
    const before = httpEvents().length;
    const res = await fetch(routeOf(nodeB), {
      method: 'POST',
      headers: {
        authorization: `Bearer ${key('other')}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-session-id': transport.sessionId ?? '',
        'mcp-protocol-version': '2025-11-25',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    });
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ type: 'session_not_found' });
    // (The client's own GET stream may open meanwhile; no POST of the other key's reached the upstream.)
    expect(httpEvents().slice(before).filter((e) => e.httpMethod === 'POST')).toEqual([]);
    expect(nodeB.logs.text()).toContain('other_key');
  });

  it('refuses the session of a key revoked after it was opened', async () => {
    const { transport } = await connect(routeOf(nodeA), 'revocable');
    const revoked = await buildSnapshot({ ...config, version: 2, keys: config.keys.map((k) => (k.name === 'revocable' ? { ...k, revoked: true } : k)) }, snapshot.keyValues);
    nodeB.apply(revoked);
    const res = await fetch(routeOf(nodeB), {
      method: 'POST',
      headers: { authorization: `Bearer ${key('revocable')}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': transport.sessionId ?? '' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    });
    expect(res.status).toBe(403);
    expect(await res.json()).toMatchObject({ type: 'key_revoked' });
    nodeB.apply(await buildSnapshot({ ...config, version: 3 }, snapshot.keyValues));
  });

  it('passes GET streams with Last-Event-ID and DELETE through another node than the one that opened the session', async () => {
    const { transport } = await connect(routeOf(nodeA), 'full');
    const sealed = transport.sessionId ?? '';
    const upstreamId = httpEvents().at(-1)?.sessionId;
    const abort = new AbortController();
    const stream = await fetch(routeOf(nodeB), {
      headers: { authorization: `Bearer ${key('full')}`, accept: 'text/event-stream', 'mcp-session-id': sealed, 'mcp-protocol-version': '2025-11-25', 'last-event-id': 'no-such-event' },
      signal: abort.signal,
    });
    const get = await waitFor(() => httpEvents().find((e) => e.httpMethod === 'GET' && e.headers['last-event-id'] === 'no-such-event'));
    expect(get.sessionId).toBe(upstreamId);
    expect(stream.headers.get('mcp-session-id')).toBeNull();
    abort.abort();

    const sessions = fixture.sessionCount();
    const onB = new StreamableHTTPClientTransport(new URL(routeOf(nodeB)), { requestInit: { headers: { authorization: `Bearer ${key('full')}` } }, sessionId: sealed });
    await onB.terminateSession();
    await waitFor(() => httpEvents().some((e) => e.httpMethod === 'DELETE' && e.sessionId === upstreamId));
    expect(fixture.sessionCount()).toBe(sessions - 1);
  });

  it('answers typed errors: no key, a server the key may not use, an unreachable upstream, a bad method', async () => {
    const post = (url: string, keyValue: string | null, method = 'POST'): Promise<Response> =>
      fetch(url, {
        method,
        headers: { ...(keyValue ? { authorization: `Bearer ${keyValue}` } : {}), 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        ...(method === 'POST' ? { body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } } }) } : {}),
      });
    expect(await (await post(routeOf(nodeA), null)).json()).toMatchObject({ type: 'virtual_key_required' });
    const notYours = await post(routeOf(nodeA), key('none'));
    expect(notYours.status).toBe(404);
    const unknown = await post(routeOf(nodeA, 'nosuch'), key('full'));
    expect(unknown.status).toBe(404);
    // The same answer for both: a key cannot find out which servers exist.
    expect((await notYours.json()).message.replace('conf', 'X')).toBe((await unknown.json()).message.replace('nosuch', 'X'));
    const gone = await post(routeOf(nodeA, 'gone'), key('full'));
    expect(gone.status).toBe(502);
    expect(await gone.json()).toMatchObject({ type: 'upstream_error' });
    expect((await post(routeOf(nodeA), key('full'), 'PUT')).status).toBe(405);
    const parse = await fetch(routeOf(nodeA), { method: 'POST', headers: { authorization: `Bearer ${key('full')}`, 'content-type': 'application/json' }, body: '{nope' });
    expect(await parse.json()).toMatchObject({ error: { code: -32700 } });
  });

  it('refuses a message nested deeper than any real one, before the upstream sees it', async () => {
    // Written as text: the test's own JSON.stringify would not survive it either.
    const deep = `${'{"d":'.repeat(5_000)}"x"${'}'.repeat(5_000)}`;
    const before = httpEvents().length;
    const res = await fetch(routeOf(nodeA), {
      method: 'POST',
      headers: { authorization: `Bearer ${key('full')}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"test_simple_text","arguments":{"deep":${deep}}}}`,
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { code: -32600 } });
    expect(httpEvents().slice(before).filter((e) => e.httpMethod === 'POST')).toEqual([]);
  });

  it('refuses to hand out a session it cannot seal (a snapshot without a session secret): 503, never the upstream id', async () => {
    const bare = await startTestNode();
    try {
      const { sessionSecrets: _none, ...withoutSecret } = config;
      const built = await buildSnapshot(withoutSecret, snapshot.keyValues);
      bare.apply(built);
      const res = await fetch(routeOf(bare), {
        method: 'POST',
        headers: { authorization: `Bearer ${key('full')}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } } }),
      });
      expect(res.status).toBe(503);
      expect(res.headers.get('mcp-session-id')).toBeNull();
      expect(await res.json()).toMatchObject({ type: 'upstream_unavailable' });
    } finally {
      await bare.close();
    }
  });
});
