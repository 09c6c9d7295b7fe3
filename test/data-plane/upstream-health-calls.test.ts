/**
 * Tool calls drive the node's upstream health (issue 5 item 4), with real upstreams and probes off: a
 * call refused with the server's shared credential marks it credentials_refused, a 401 to one user's own
 * credential does not (the upstream is up; that user must connect again), a call past its timeout marks
 * it timeout and the next answer makes it reachable again; the node's `/metrics` shows it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHttpUpstream, type HttpUpstream } from '../support/upstreams.js';
import { waitFor } from '../support/wait.js';
import { buildSnapshot, perUserTokens, postMcp, startTestNode, type BuiltSnapshot, type TestNode } from './helpers.js';
import { scrapeNodeMetrics } from '../support/node-metrics.js';

let perUser: HttpUpstream;
let team: HttpUpstream;
let node: TestNode;
let snapshot: BuiltSnapshot;

/** `mine` takes each user's own token; the other servers share their configured credential. */
const credentials = perUserTokens('mine');

beforeAll(async () => {
  perUser = await startHttpUpstream({ label: 'mine', requireHeader: { name: 'x-user-token', values: ['token-of-alice'] } });
  team = await startHttpUpstream({ label: 'team', requireHeader: { name: 'x-team-token', values: ['right'] } });
  node = await startTestNode({ hooks: { credentials }, pool: { probeIntervalMs: 0 } });
  snapshot = await buildSnapshot({
    servers: [
      { name: 'mine', url: perUser.url, authType: 'PER_USER_HEADERS' },
      { name: 'refusing', url: team.url, headers: { 'x-team-token': { secret: 'wrong' } } },
      { name: 'slowpoke', url: team.url, headers: { 'x-team-token': { secret: 'right' } }, toolTimeoutMs: 300 },
    ],
    users: [
      { id: 'alice', email: 'alice@example.com' },
      { id: 'bob', email: 'bob@example.com' },
    ],
    keys: [
      { name: 'alice', userId: 'alice', servers: [{ server: 'mine', tools: ['*'] }, { server: 'refusing', tools: ['*'] }, { server: 'slowpoke', tools: ['*'] }] },
      { name: 'bob', userId: 'bob', servers: [{ server: 'mine', tools: ['*'] }] },
    ],
  });
  node.apply(snapshot);
});

afterAll(async () => {
  await node?.close();
  await perUser?.close();
  await team?.close();
});

async function call(key: string, tool: string, args: Record<string, unknown>): Promise<{ isError?: boolean; content: { text: string }[] }> {
  const res = await postMcp(node.mcpUrl, { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: tool, arguments: args } }, { authorization: `Bearer ${snapshot.keyValues[key] ?? ''}` });
  return ((await res.json()) as { result: { isError?: boolean; content: { text: string }[] } }).result;
}

describe('upstream health from tool calls', () => {
  it("a user's refused own credential leaves the server reachable; the shared one refused marks it", async () => {
    const bob = await call('bob', 'mine-echo', { text: 'hi' });
    expect(bob.isError).toBe(true);
    expect(node.pool.health.status('mine')).toBe('reachable');
    expect((await call('alice', 'mine-echo', { text: 'hi' })).content[0]?.text).toBe('mine:hi');
    expect(node.pool.health.status('mine')).toBe('reachable');

    expect((await call('alice', 'refusing-echo', { text: 'hi' })).isError).toBe(true);
    expect(node.pool.health.status('refusing')).toBe('credentials_refused');
    expect(node.pool.health.report().find((h) => h.server === 'refusing')?.reason).toMatch(/HTTP 401/);
  });

  it('a call past its timeout marks the server timeout, and the next answer reachable again', async () => {
    await waitFor(() => node.pool.health.status('slowpoke') === 'reachable', { what: 'the eager catalog fetch' });
    expect((await call('alice', 'slowpoke-slow', { ms: 2_000 })).isError).toBe(true);
    expect(node.pool.health.status('slowpoke')).toBe('timeout');
    const metrics = await scrapeNodeMetrics(node.url);
    expect(metrics).toContain('gatehouse_upstream_status{server="slowpoke",status="timeout"} 1');
    expect((await call('alice', 'slowpoke-add', { a: 1, b: 2 })).content[0]?.text).toBe('3');
    expect(node.pool.health.status('slowpoke')).toBe('reachable');
  });
});
