/**
 * Downstream sessions are the key's own (probed, found to hold; pinned here). A sealed `Mcp-Session-Id`
 * issued on `/mcp/{server}` to one key is "session not found" (404) for any other key, on POST, GET and
 * DELETE, and on any other server's route; nothing is relayed on the upstream session it names. `/mcp` is
 * stateless: a session id there grants nothing. A session does not outlive its key's scope: once a new
 * configuration takes the server from the key, the id opens nothing; once it narrows the key's tools, the
 * same session can call only what is left. There is no legacy `/sse` + `/messages` pair to borrow.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTwoServerNode, type TwoServerNode } from './raw-upstream.js';

let setup: TwoServerNode | undefined;
const t = (): TwoServerNode => setup as TwoServerNode;
const owner = { name: 'owner', servers: [{ server: 'crm', tools: ['*'] }, { server: 'other', tools: ['*'] }] };
const thief = { name: 'thief', servers: [{ server: 'crm', tools: ['echo'] }] };

beforeAll(async () => {
  setup = await startTwoServerNode([owner, thief]);
});

afterAll(async () => {
  await setup?.close();
});

const INIT = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'probe', version: '1' } } };
const call = (name: string) => ({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name, arguments: {} } });

async function request(keyName: string, path: string, method: string, sessionId: string | null, body?: unknown): Promise<Response> {
  return fetch(`${t().node.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${t().snapshot.keyValues[keyName] ?? ''}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      ...(sessionId === null ? {} : { 'mcp-session-id': sessionId }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

/**
 * Callers' requests the node forwarded to the upstreams on the upstream session (`raw-session`) since the
 * marks. A forwarded request carries the pipeline's `traceparent`; the pool's own traffic on its session
 * (its GET stream, catalog refreshes) does not.
 */
function onSession(since: { crm: number; other: number }): string[] {
  return [...t().crm.requests.slice(since.crm), ...t().other.requests.slice(since.other)]
    .filter((r) => r.headers['mcp-session-id'] === 'raw-session' && r.headers.traceparent !== undefined)
    .map((r) => `${r.method} ${r.body}`);
}
const mark = () => ({ crm: t().crm.requests.length, other: t().other.requests.length });

async function openSession(): Promise<string> {
  const res = await request('owner', '/mcp/crm', 'POST', null, INIT);
  expect(res.status).toBe(200);
  const id = res.headers.get('mcp-session-id');
  expect(id).toMatch(/^v1\./);
  await res.text();
  return id as string;
}

describe('a session id belongs to its key and route', () => {
  it("another key presenting it gets 404 on POST, GET and DELETE; nothing rides the owner's upstream session", async () => {
    const id = await openSession();
    const since = mark();
    for (const [method, body] of [['POST', call('echo')], ['GET', undefined], ['DELETE', undefined]] as const) {
      const res = await request('thief', '/mcp/crm', method, id, body);
      expect(res.status, method).toBe(404);
      expect(await res.json()).toMatchObject({ type: 'session_not_found' });
    }
    expect(onSession(since)).toEqual([]);
    // The owner still has it (control).
    const own = await request('owner', '/mcp/crm', 'POST', id, call('echo'));
    expect(own.status).toBe(200);
    expect(onSession(since)).toHaveLength(1);
  });

  it('the owner presenting it on another server route gets 404', async () => {
    const id = await openSession();
    const since = mark();
    const res = await request('owner', '/mcp/other', 'POST', id, call('echo'));
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ type: 'session_not_found' });
    expect(onSession(since)).toEqual([]);
  });

  it('on /mcp a session id grants nothing', async () => {
    const id = await openSession();
    const since = mark();
    const res = await request('thief', '/mcp', 'POST', id, call('other-echo'));
    expect(await res.json()).toMatchObject({ error: { data: { type: 'tool_blocked' } } });
    expect(t().other.requests.slice(since.other).filter((r) => r.body.includes('tools/call'))).toEqual([]);
  });

  it.each(['/sse', '/messages?sessionId=x', '/mcp/crm/sse', '/mcp/crm/messages'])('%s is no route to a session', async (path) => {
    const res = await request('thief', path, 'POST', null, call('echo'));
    expect(res.status).toBe(404);
  });
});

describe("a session does not outlive its key's scope", () => {
  it("narrowed tools: the same session calls only what is left; server taken: the id opens nothing", async () => {
    const id = await openSession();
    await t().reapply([{ name: 'owner', servers: [{ server: 'crm', tools: ['echo'] }, { server: 'other', tools: ['*'] }] }, thief]);
    let since = mark();
    const blocked = await request('owner', '/mcp/crm', 'POST', id, call('secret'));
    expect(await blocked.json()).toMatchObject({ error: { data: { type: 'tool_blocked' } } });
    expect(onSession(since)).toEqual([]);
    const allowed = await request('owner', '/mcp/crm', 'POST', id, call('echo'));
    expect(allowed.status).toBe(200);
    await allowed.text();

    await t().reapply([{ name: 'owner', servers: [{ server: 'other', tools: ['*'] }] }, thief]);
    since = mark();
    for (const [method, body] of [['POST', call('echo')], ['GET', undefined], ['DELETE', undefined]] as const) {
      const res = await request('owner', '/mcp/crm', method, id, body);
      expect(res.status, method).toBe(404);
      expect(await res.json()).toMatchObject({ type: 'not_found' });
    }
    expect(onSession(since)).toEqual([]);
  });
});
