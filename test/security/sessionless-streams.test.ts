/**
 * GET and DELETE on `/mcp/{server}` without a session. They went upstream on the server's credential alone:
 * with a shared credential, a sessionless upstream's one standalone stream went to whichever caller opened it
 * first, with whatever it sent there for other callers' work, and a DELETE reached whatever the upstream tied
 * to that credential. Now a GET without a session is a typed 405 (`method_not_allowed`, `Allow: POST`: MCP
 * clients take it as "no stream here") and a DELETE without one a typed 400; nothing is relayed. With the
 * key's own sealed session both pass through on the upstream session it names; another key's is 404.
 */
import { createServer, type Server } from 'node:http';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { buildSnapshot, startTestNode, type BuiltSnapshot, type TestNode } from '../data-plane/helpers.js';
import { buildUpstreamServer, closeServer, listen } from '../support/upstreams.js';
import { startRawUpstream, type RawUpstream } from './raw-upstream.js';

let crm: RawUpstream;
/** A stateless SDK upstream (no session ids): its one standalone GET stream is the credential's. */
let stateless: Server;
const statelessMethods: string[] = [];
let node: TestNode;
let snapshot: BuiltSnapshot;
const t = () => ({ crm, node, snapshot });

beforeAll(async () => {
  crm = await startRawUpstream();
  stateless = createServer((req, res) => {
    // The pipeline's requests carry `traceparent`; the pool's own (catalog, its GET stream) do not.
    if (req.headers.traceparent !== undefined) statelessMethods.push(req.method ?? '');
    const { server } = buildUpstreamServer('stateless');
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on('close', () => void server.close());
    void server.connect(transport).then(() => transport.handleRequest(req, res));
  });
  const port = await listen(stateless, 0);
  node = await startTestNode();
  snapshot = await buildSnapshot({
    servers: [
      { name: 'crm', url: crm.url },
      { name: 'stateless', url: `http://127.0.0.1:${port}/mcp` },
    ],
    keys: [
      { name: 'alice', servers: [{ server: 'crm', tools: ['*'] }, { server: 'stateless', tools: ['*'] }] },
      { name: 'bob', servers: [{ server: 'crm', tools: ['*'] }] },
    ],
    sessionSecrets: { current: { id: 's1', secret: randomBytes(32).toString('base64url') } },
  });
  node.apply(snapshot);
});

afterAll(async () => {
  await node?.close();
  await crm?.close();
  if (stateless) await closeServer(stateless);
});

const INIT = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'probe', version: '1' } } };

function request(keyName: string, method: string, sessionId: string | null, body?: unknown): Promise<Response> {
  return fetch(`${t().node.url}/mcp/crm`, {
    method,
    headers: {
      authorization: `Bearer ${t().snapshot.keyValues[keyName] ?? ''}`,
      accept: method === 'GET' ? 'text/event-stream' : 'application/json, text/event-stream',
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(sessionId === null ? {} : { 'mcp-session-id': sessionId }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

/** GET and DELETE requests callers got relayed (the pipeline's carry `traceparent`; the pool's own do not). */
const relayed = (): string[] => t().crm.requests.filter((r) => (r.method === 'GET' || r.method === 'DELETE') && r.headers.traceparent !== undefined).map((r) => `${r.method} ${String(r.headers['mcp-session-id'])}`);

describe('without a session', () => {
  it('GET is a typed 405, nothing relayed', async () => {
    const before = relayed().length;
    const res = await request('alice', 'GET', null);
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('POST');
    expect(await res.json()).toMatchObject({ type: 'method_not_allowed', message: expect.stringContaining('Mcp-Session-Id') });
    expect(relayed().length).toBe(before);
  });

  it('DELETE is a typed 400, nothing relayed', async () => {
    const before = relayed().length;
    const res = await request('alice', 'DELETE', null);
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ type: 'invalid_request', message: expect.stringContaining('Mcp-Session-Id') });
    expect(relayed().length).toBe(before);
  });

  it('an MCP SDK client in front of a stateless upstream: its GET is refused (taken as "no stream"), nothing else changes', async () => {
    const errors: Error[] = [];
    const client = new Client({ name: 'sdk', version: '1' });
    client.onerror = (error) => errors.push(error);
    const transport = new StreamableHTTPClientTransport(new URL(`${t().node.url}/mcp/stateless`), { requestInit: { headers: { authorization: `Bearer ${t().snapshot.keyValues.alice ?? ''}` } } });
    await client.connect(transport);
    const tools = await client.listTools();
    expect(tools.tools.length).toBeGreaterThan(0);
    await client.close();
    expect(errors).toEqual([]);
    // No caller's GET reached the upstream's one standalone stream; the caller's POSTs did.
    expect(statelessMethods).toContain('POST');
    expect(statelessMethods).not.toContain('GET');
  });
});

describe('with a session', () => {
  it("the key's own: GET and DELETE go upstream on the session it names; another key's: 404, nothing relayed", async () => {
    const init = await request('alice', 'POST', null, INIT);
    const session = init.headers.get('mcp-session-id') ?? '';
    await init.text();
    expect(session).not.toBe('');
    const before = relayed().length;
    for (const method of ['GET', 'DELETE']) {
      const stolen = await request('bob', method, session);
      expect(stolen.status).toBe(404);
      expect(await stolen.json()).toMatchObject({ type: 'session_not_found' });
    }
    expect(relayed().length).toBe(before);
    const get = await request('alice', 'GET', session);
    await get.text();
    const del = await request('alice', 'DELETE', session);
    await del.text();
    expect(relayed().slice(before)).toEqual(['GET raw-session', 'DELETE raw-session']);
  });
});
