/**
 * Key scope on `/mcp/{server}`, where the gateway forwards the caller's bytes: a key granted one tool must
 * not get any other tool's call to the upstream, whatever shape the message takes. The upstream here is a
 * raw recorder (`raw-upstream.ts`), so the test sees exactly what crossed, including what a lenient JSON-RPC
 * server would act on: a notification (JSON-RPC 2.0 servers run those, they just do not answer), an id the
 * gateway does not count as one, the first of duplicate keys, or the `Mcp-Name` header an intermediary
 * routes on.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSnapshot, startTestNode, type BuiltSnapshot, type TestNode } from '../data-plane/helpers.js';
import { startRawUpstream, type RawUpstream } from './raw-upstream.js';

let upstream: RawUpstream;
let node: TestNode;
let snapshot: BuiltSnapshot;

beforeAll(async () => {
  upstream = await startRawUpstream();
  node = await startTestNode();
  snapshot = await buildSnapshot({
    servers: [{ name: 'crm', url: upstream.url }],
    keys: [{ name: 'narrow', servers: [{ server: 'crm', tools: ['echo'] }] }],
    sessionSecrets: { current: { id: 's1', secret: randomBytes(32).toString('base64url') } },
  });
  node.apply(snapshot);
});

afterAll(async () => {
  await node?.close();
  await upstream?.close();
});

async function post(body: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string }> {
  const res = await fetch(`${node.url}/mcp/crm`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${snapshot.keyValues.narrow ?? ''}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      ...headers,
    },
    body,
  });
  return { status: res.status, text: await res.text() };
}

/**
 * Whether anything that reached the upstream since `since` could run the forbidden tool: a header naming it,
 * a body that is not exactly its own serialization (duplicate keys: a parser keeping the first would read
 * something else), or a message calling it.
 */
function forbiddenReachedUpstream(since: number): boolean {
  return upstream.requests.slice(since).some((r) => {
    if (JSON.stringify(r.headers).includes('secret_tool')) return true;
    if (r.body === '') return false;
    const parsed = JSON.parse(r.body) as unknown;
    if (JSON.stringify(parsed) !== r.body) return true;
    const messages = (Array.isArray(parsed) ? parsed : [parsed]) as { method?: unknown; params?: { name?: unknown } }[];
    return messages.some((m) => m.method === 'tools/call' && m.params?.name === 'secret_tool');
  });
}

const call = (extra: string): string => `{"jsonrpc":"2.0",${extra}"method":"tools/call","params":{"name":"secret_tool","arguments":{}}}`;

describe('/mcp/{server}: a forbidden tools/call never reaches the upstream, whatever its shape', () => {
  const shapes: [string, string][] = [
    ['a plain request (control)', call('"id":1,')],
    ['a notification (no id)', call('')],
    ['id null', call('"id":null,')],
    ['id true', call('"id":true,')],
    ['id an object', call('"id":{"a":1},')],
    ['id an array', call('"id":[1],')],
    ['a batch of notifications', `[${call('')}]`],
    ['a batch: an allowed request and a forbidden notification', `[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}},${call('')}]`],
    ['duplicate method keys (first: tools/call, last: ping)', '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"secret_tool"},"method":"ping"}'],
    ['duplicate name keys (first forbidden)', '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"secret_tool","name":"echo"}}'],
    ['duplicate params keys (first forbidden)', '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"secret_tool"},"params":{"name":"echo"}}'],
    ['duplicate id keys on a notification-looking call', '{"jsonrpc":"2.0","id":1,"method":"ping","id":2,"method":"tools/call","params":{"name":"secret_tool"},"method":"ping"}'],
  ];
  for (const [label, body] of shapes) {
    it(label, async () => {
      const before = upstream.requests.length;
      const answer = await post(body);
      expect(answer.status).toBeLessThan(500);
      expect(forbiddenReachedUpstream(before), `${label}: ${JSON.stringify(upstream.requests.slice(before))}`).toBe(false);
    });
  }

  it('Mcp-Name naming a forbidden tool over an allowed body is refused, never forwarded', async () => {
    const before = upstream.requests.length;
    const answer = await post('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}', { 'mcp-method': 'tools/call', 'mcp-name': 'secret_tool' });
    expect(forbiddenReachedUpstream(before)).toBe(false);
    expect(answer.status).toBe(400);
  });

  it('Mcp-Method disagreeing with the body is refused, never forwarded', async () => {
    const before = upstream.requests.length;
    const answer = await post('{"jsonrpc":"2.0","id":1,"method":"ping"}', { 'mcp-method': 'tools/call', 'mcp-name': 'echo' });
    expect(answer.status).toBe(400);
    expect(upstream.requests.length).toBe(before);
  });

  it('the allowed tool still works, headers and all', async () => {
    const answer = await post('{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{}}}', { 'mcp-method': 'tools/call', 'mcp-name': 'echo' });
    expect(answer.status).toBe(200);
    expect(answer.text).toContain('tools/call:echo');
  });
});
