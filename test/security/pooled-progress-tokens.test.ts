/**
 * Progress on a pooled upstream connection (`/mcp/{server}` in front of a legacy SSE or stdio upstream,
 * one SDK connection shared by every caller with the server's credential). The SDK client routes an
 * upstream `notifications/progress` to the request whose message id equals the token, and the node
 * relayed a caller's own `_meta.progressToken` unchanged whenever it did not ask for progress itself (an
 * `Accept` without SSE). So any caller could send tokens 0, 1, 2, … and have the upstream's progress for
 * its calls delivered into another caller's stream (and reset that call's timeout). The node now owns
 * progress tokens on a shared connection: a caller's token never reaches it (the SDK sets its own when
 * the caller is relayed progress). Real legacy SSE upstream (SDK server) whose `slow` tool reports
 * progress to the token it is given.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSnapshot, startTestNode, type BuiltSnapshot, type TestNode } from '../data-plane/helpers.js';
import { startSseUpstream, type HttpUpstream } from '../support/upstreams.js';

let upstream: HttpUpstream;
let node: TestNode;
let snapshot: BuiltSnapshot;

beforeAll(async () => {
  upstream = await startSseUpstream({ label: 'legacy' });
  node = await startTestNode();
  snapshot = await buildSnapshot({
    servers: [{ name: 'legacy', connectionType: 'SSE', url: upstream.url }],
    keys: [
      { name: 'victim', servers: [{ server: 'legacy', tools: ['*'] }] },
      { name: 'attacker', servers: [{ server: 'legacy', tools: ['*'] }] },
    ],
  });
  node.apply(snapshot);
});

afterAll(async () => {
  await node?.close();
  await upstream?.close();
});

function slowCall(keyName: string, id: number, ms: number, progressToken: string | number, sse: boolean): Promise<Response> {
  return fetch(`${node.url}/mcp/legacy`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${snapshot.keyValues[keyName] ?? ''}`,
      'content-type': 'application/json',
      accept: sse ? 'application/json, text/event-stream' : 'application/json',
    },
    body: JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'slow', arguments: { ms }, _meta: { progressToken } } }),
  });
}

describe('progress tokens on a pooled connection', () => {
  it("a caller's progress tokens never reach another caller's stream", async () => {
    // Warm the pooled connection, so the victim's call is not its first request.
    expect((await slowCall('victim', 1, 1, 'warm', false)).status).toBe(200);

    const victim = await slowCall('victim', 2, 1_500, 'victim-token', true);
    expect(victim.headers.get('content-type')).toContain('text/event-stream');
    const reading = victim.text();
    // The attacker tries every small message id as its own token; each call makes the upstream report progress to it.
    const attacks = await Promise.all(Array.from({ length: 40 }, (_, token) => slowCall('attacker', 100 + token, 1, token, false)));
    expect(attacks.every((r) => r.status === 200)).toBe(true);
    await Promise.all(attacks.map((r) => r.text()));

    const events = (await reading).split('\n\n').filter((e) => e.includes('data:')).map((e) => JSON.parse(e.slice(e.indexOf('data:') + 5)) as { method?: string; id?: number });
    // The upstream's one progress report for the victim's own call, then its answer: nothing of the attacker's.
    expect(events.filter((e) => e.method === 'notifications/progress')).toHaveLength(1);
    expect(events.at(-1)).toMatchObject({ id: 2, result: { content: [{ text: 'slept 1500' }] } });
  });

  it('a caller asking for progress over SSE still gets its own, under its own token (control)', async () => {
    const res = await slowCall('attacker', 3, 10, 'mine', true);
    const text = await res.text();
    expect(text).toContain('"progressToken":"mine"');
    expect(text).toContain('slept 10');
  });
});
