/**
 * Upstream `Mcp-Session-Id` sessions are kept per (server, credential identity) (SPEC §4; the cross-user
 * class of IBM/mcp-context-forge #1078): two users with their own credentials on one upstream that issues
 * session ids each reach it in their own session, opened with their own credential, and never in the
 * other's; callers sharing the server's credential share one session.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHttpUpstream, type HttpUpstream } from '../support/upstreams.js';
import { buildSnapshot, perUserTokens, postMcp, startTestNode, type BuiltSnapshot, type TestNode } from './helpers.js';

/**
 * What a `whoami` echo of a credential reads as. The node removes from a result every credential *this
 * call* sent (an upstream must not hand the gateway's credentials to a caller), so an echo of the caller's
 * own token reads `[redacted]`; another user's token, had the call gone out on their session, would pass
 * unchanged and fail the assertion. What reached the upstream is also read from its recorded requests.
 */
const OWN_CREDENTIAL = '[redacted]';

let upstream: HttpUpstream;
let node: TestNode;
let snapshot: BuiltSnapshot;

/** `mine` takes each user's own token; the other servers share their configured credential. */
const credentials = perUserTokens('mine');

beforeAll(async () => {
  upstream = await startHttpUpstream();
  node = await startTestNode({ hooks: { credentials } });
  snapshot = await buildSnapshot({
    servers: [
      { name: 'mine', url: upstream.url },
      { name: 'team', url: upstream.url, headers: { 'x-team-token': { secret: 'team-secret' } } },
    ],
    users: [
      { id: 'alice', email: 'alice@example.com' },
      { id: 'bob', email: 'bob@example.com' },
    ],
    keys: [
      { name: 'alice', userId: 'alice', servers: [{ server: 'mine', tools: ['*'] }, { server: 'team', tools: ['*'] }] },
      { name: 'bob', userId: 'bob', servers: [{ server: 'mine', tools: ['*'] }, { server: 'team', tools: ['*'] }] },
    ],
  });
  node.apply(snapshot);
});

afterAll(async () => {
  await node?.close();
  await upstream?.close();
});

async function whoami(key: string, tool: string, header: string, id: number): Promise<string> {
  const res = await postMcp(node.mcpUrl, { jsonrpc: '2.0', id, method: 'tools/call', params: { name: tool, arguments: { header } } }, { authorization: `Bearer ${snapshot.keyValues[key] ?? ''}` });
  const body = (await res.json()) as { result: { content: { text: string }[] } };
  return body.result.content[0]?.text ?? '';
}

describe('upstream sessions per (server, credential identity)', () => {
  it("two users' concurrent calls each reach the upstream in their own session, with their own credential", async () => {
    const calls: Promise<[string, string]>[] = [];
    for (let i = 0; i < 10; i++) {
      for (const user of ['alice', 'bob']) calls.push(whoami(user, 'mine-whoami', 'x-user-token', i).then((got) => [user, got]));
    }
    for (const [, got] of await Promise.all(calls)) expect(got).toBe(OWN_CREDENTIAL);

    const toMine = upstream.requests.filter((r) => r.headers['x-user-token'] !== undefined);
    const sessionsOf = new Map<string, Set<string>>();
    for (const r of toMine.filter((q) => q.rpcMethod === 'tools/call')) {
      const session = String(r.headers['mcp-session-id']);
      const token = String(r.headers['x-user-token']);
      expect(session).not.toBe('undefined');
      if (!sessionsOf.has(token)) sessionsOf.set(token, new Set());
      sessionsOf.get(token)?.add(session);
    }
    const alice = sessionsOf.get('token-of-alice');
    const bob = sessionsOf.get('token-of-bob');
    // One session per user, reused for all ten calls, and not the other's.
    expect(alice?.size).toBe(1);
    expect(bob?.size).toBe(1);
    expect([...(alice ?? [])][0]).not.toBe([...(bob ?? [])][0]);
    // Each user's session was opened with that user's credential (one initialize each, even under concurrency).
    const inits = toMine.filter((r) => r.rpcMethod === 'initialize').map((r) => r.headers['x-user-token']);
    expect(inits.sort()).toEqual(['token-of-alice', 'token-of-bob']);
  });

  it("callers sharing the server's credential share its one session, which no per-user call ever uses", async () => {
    expect(await whoami('alice', 'team-whoami', 'x-team-token', 100)).toBe(OWN_CREDENTIAL);
    expect(await whoami('bob', 'team-whoami', 'x-team-token', 101)).toBe(OWN_CREDENTIAL);
    const team = upstream.requests.filter((r) => r.headers['x-team-token'] === 'team-secret');
    const teamSessions = new Set(team.filter((r) => r.rpcMethod === 'tools/call').map((r) => String(r.headers['mcp-session-id'])));
    expect(teamSessions.size).toBe(1);
    expect(team.filter((r) => r.rpcMethod === 'initialize')).toHaveLength(1);
    const userSessions = new Set(upstream.requests.filter((r) => r.headers['x-user-token'] !== undefined).map((r) => String(r.headers['mcp-session-id'])));
    for (const s of teamSessions) expect(userSessions.has(s)).toBe(false);
    // And no per-user request ever carried the team credential, nor a team request a user's token.
    for (const r of upstream.requests) expect(r.headers['x-team-token'] !== undefined && r.headers['x-user-token'] !== undefined).toBe(false);
  });
});

describe('an upstream that refuses the credential', () => {
  it('is credentials_refused (HTTP 401), not "unreachable", for the shared credential and for a user\'s own', async () => {
    const { createServer } = await import('node:http');
    const refusing = createServer((req, res) => {
      req.resume();
      res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer' }).end('{"error":"invalid_token"}');
    });
    await new Promise<void>((resolve) => refusing.listen(0, '127.0.0.1', () => resolve()));
    const port = (refusing.address() as { port: number }).port;
    const local = await startTestNode({ hooks: { credentials } });
    try {
      const snap = await buildSnapshot({
        servers: [
          { name: 'team', url: `http://127.0.0.1:${port}/mcp`, headers: { authorization: { secret: 'Bearer stale' } } },
          { name: 'mine', url: `http://127.0.0.1:${port}/mcp` },
        ],
        keys: [{ name: 'dev', servers: [{ server: 'team', tools: ['*'] }, { server: 'mine', tools: ['*'] }] }],
      });
      local.apply(snap);
      for (const [tool, server] of [['team-echo', 'team'], ['mine-echo', 'mine']] as const) {
        const res = await postMcp(local.mcpUrl, { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: tool, arguments: { text: 'x' } } }, { authorization: `Bearer ${snap.keyValues.dev ?? ''}` });
        const body = (await res.json()) as { result: { isError: boolean; content: { text: string }[] } };
        expect(body.result.isError).toBe(true);
        expect(body.result.content[0]?.text).toBe(`upstream server '${server}' refused the gateway's credentials (HTTP 401); an administrator must update them`);
      }
      expect(local.logs.text()).not.toContain('Bearer stale');
    } finally {
      await local.close();
      await new Promise<void>((resolve) => refusing.close(() => resolve()));
    }
  });
});
