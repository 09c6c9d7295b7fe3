/**
 * Legacy SSE upstreams get each call's own headers without a side channel: a call whose headers are not the
 * server's configured ones (a user's own credential, allowlisted caller headers) goes over an SDK connection
 * opened with exactly those headers, kept per (server, credential identity, headers). Two users' concurrent
 * calls each reach the upstream with their own credential, on their own SSE session, and never the other's;
 * the shared connection never carries a caller's header; the per-identity connections are bounded (a busy one
 * is never evicted for another caller) and closed when idle. `/mcp/{server}` in front of a legacy SSE upstream
 * uses the same per-identity connections (it refused per-user credentials before).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SHARED_IDENTITY, userIdentity, type CredentialSource } from '../../data-plane/pipeline/credentials.js';
import type { UpstreamPoolOptions } from '../../data-plane/upstream/pool.js';
import { closeServer, listen, startSseUpstream, type HttpUpstream } from '../support/upstreams.js';
import { waitFor } from '../support/wait.js';
import { buildSnapshot, postMcp, startTestNode, type BuiltSnapshot, type TestNode } from './helpers.js';

/**
 * What a `whoami` echo of a credential reads as. The node removes from a result every credential *this
 * call* sent (an upstream must not hand the gateway's credentials to a caller), so an echo of the caller's
 * own token reads `[redacted]`; another user's token, had the call gone out on their session, would pass
 * unchanged and fail the assertion. What reached the upstream is also read from its recorded requests.
 */
const OWN_CREDENTIAL = '[redacted]';

/** `mine` is per user (each user's own token); `team` shares the server's configured credential. */
const credentials: CredentialSource = {
  resolve(server, caller) {
    if (server.name !== 'mine') return { headers: server.headers, identity: SHARED_IDENTITY };
    return { headers: { ...server.headers, 'x-user-token': `token-of-${caller.user.id}` }, identity: userIdentity(caller.user.id) };
  },
};

const USERS = ['alice', 'bob', 'carol'] as const;

let upstream: HttpUpstream;
let node: TestNode;
let snapshot: BuiltSnapshot;

async function start(pool: Partial<Omit<UpstreamPoolOptions, 'holder' | 'logger'>> = {}): Promise<void> {
  upstream = await startSseUpstream();
  node = await startTestNode({ hooks: { credentials }, pool });
  snapshot = await buildSnapshot({
    servers: [
      { name: 'mine', connectionType: 'SSE', url: upstream.url, headers: { 'x-static': { secret: 'static-value' } }, toolTimeoutMs: 5_000 },
      { name: 'team', connectionType: 'SSE', url: upstream.url, headers: { 'x-team-token': { secret: 'team-secret' } }, allowedExtraHeaders: ['x-request-source'] },
    ],
    users: USERS.map((id) => ({ id, email: `${id}@example.com` })),
    keys: USERS.map((id) => ({ name: id, userId: id, servers: [{ server: 'mine', tools: ['*'] }, { server: 'team', tools: ['*'] }] })),
  });
  node.apply(snapshot);
}

afterEach(async () => {
  await node?.close();
  await upstream?.close();
});

interface ToolAnswer {
  text: string;
  isError: boolean;
}

async function call(key: string, tool: string, args: Record<string, unknown>, headers: Record<string, string> = {}): Promise<ToolAnswer> {
  const res = await postMcp(
    node.mcpUrl,
    { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: tool, arguments: args } },
    { authorization: `Bearer ${snapshot.keyValues[key] ?? ''}`, ...headers },
  );
  const body = (await res.json()) as { result: { content: { text: string }[]; isError?: boolean } };
  return { text: body.result.content[0]?.text ?? '', isError: body.result.isError === true };
}

describe('legacy SSE: per-user credentials', () => {
  beforeEach(() => start());

  it("two users' concurrent calls each reach the upstream with their own credential, on their own SSE session", async () => {
    const calls: Promise<[string, string]>[] = [];
    for (let i = 0; i < 10; i++) {
      for (const user of ['alice', 'bob']) calls.push(call(user, 'mine-whoami', { header: 'x-user-token' }).then((a) => [user, a.text]));
    }
    for (const [, got] of await Promise.all(calls)) expect(got).toBe(OWN_CREDENTIAL);

    // Each user's event stream (GET /sse) was opened with that user's credential, once.
    const streams = upstream.requests.filter((r) => r.httpMethod === 'GET' && r.headers['x-user-token'] !== undefined);
    expect(streams.map((r) => r.headers['x-user-token']).sort()).toEqual(['token-of-alice', 'token-of-bob']);
    for (const r of streams) expect(r.headers['x-static']).toBe('static-value');
    // Every message POSTed with a user's token went over that user's connection: whoami answered it above.
    expect(node.pool.identityConnectionCount('mine')).toBe(2);
    // One initialize per user: ten calls each reused the user's one connection.
    const inits = upstream.requests.filter((r) => r.rpcMethod === 'initialize' && r.headers['x-user-token'] !== undefined);
    expect(inits.map((r) => r.headers['x-user-token']).sort()).toEqual(['token-of-alice', 'token-of-bob']);
    // No request ever carried two credentials (a user's and the team's).
    for (const r of upstream.requests) expect(r.headers['x-team-token'] !== undefined && r.headers['x-user-token'] !== undefined).toBe(false);
  });

  it("/mcp/{server}: each user's calls reach the upstream with their own credential, on their own connection", async () => {
    const passThrough = async (user: string): Promise<string> => {
      const res = await postMcp(
        `${node.url}/mcp/mine`,
        { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'whoami', arguments: { header: 'x-user-token' } } },
        { authorization: `Bearer ${snapshot.keyValues[user] ?? ''}` },
      );
      expect(res.status).toBe(200);
      const body = (await res.json()) as { result?: { content: { text: string }[] } };
      return body.result?.content[0]?.text ?? JSON.stringify(body);
    };
    const answers = await Promise.all(['alice', 'bob', 'alice', 'bob'].map(async (user) => [user, await passThrough(user)] as const));
    for (const [, got] of answers) expect(got).toBe(OWN_CREDENTIAL);
    expect(node.pool.identityConnectionCount('mine')).toBe(2);
    // The server's shared connection never carried a user's credential.
    for (const r of upstream.requests) expect(r.headers['x-team-token'] !== undefined && r.headers['x-user-token'] !== undefined).toBe(false);
  });
});

describe('legacy SSE: allowlisted caller headers', () => {
  beforeEach(() => start());

  it("each caller's header reaches the upstream on its own calls only; the shared connection carries none", async () => {
    const calls: Promise<[string, ToolAnswer]>[] = [];
    for (let i = 0; i < 5; i++) {
      for (const source of ['one', 'two']) {
        calls.push(call('alice', 'team-whoami', { header: 'x-request-source' }, { 'x-request-source': source }).then((a) => [source, a]));
      }
    }
    for (const [source, answer] of await Promise.all(calls)) expect(answer.text).toBe(source);
    // A call without the header rides the shared connection and carries none.
    expect((await call('bob', 'team-whoami', { header: 'x-request-source' })).text).toBe('');
    expect((await call('bob', 'team-whoami', { header: 'x-team-token' })).text).toBe(OWN_CREDENTIAL);

    const team = upstream.requests.filter((r) => r.headers['x-team-token'] === 'team-secret');
    const shared = team.filter((r) => r.headers['x-request-source'] === undefined);
    // The shared connection (opened for the eager catalog) never carried a caller's header.
    expect(shared.some((r) => r.rpcMethod === 'tools/list')).toBe(true);
    for (const source of ['one', 'two']) {
      const own = team.filter((r) => r.headers['x-request-source'] === source);
      expect(own.filter((r) => r.httpMethod === 'GET')).toHaveLength(1);
      expect(own.filter((r) => r.rpcMethod === 'tools/call')).toHaveLength(5);
    }
    expect(node.pool.identityConnectionCount('team')).toBe(2);
  });
});

describe('legacy SSE: per-identity connections are bounded and closed when idle', () => {
  it('keeps at most maxPerServer, evicting the least recently used idle one; idle ones close', async () => {
    await start({ identityConnections: { maxPerServer: 2, idleMs: 300 } });
    for (const user of USERS) expect((await call(user, 'mine-whoami', { header: 'x-user-token' })).text).toBe(OWN_CREDENTIAL);
    expect(node.pool.identityConnectionCount('mine')).toBe(2);
    // alice's connection was the least recently used: evicted, and reopened with her credential when she returns.
    expect((await call('alice', 'mine-whoami', { header: 'x-user-token' })).text).toBe(OWN_CREDENTIAL);
    const aliceStreams = upstream.requests.filter((r) => r.httpMethod === 'GET' && r.headers['x-user-token'] === 'token-of-alice');
    expect(aliceStreams).toHaveLength(2);
    await waitFor(() => node.pool.identityConnectionCount('mine') === 0, { what: 'idle connections to close' });
    expect((await call('bob', 'mine-whoami', { header: 'x-user-token' })).text).toBe(OWN_CREDENTIAL);
  });

  it("never evicts a connection with a call in flight: at the bound, the new caller's call fails clearly and the other's completes", async () => {
    await start({ identityConnections: { maxPerServer: 1, idleMs: 60_000 } });
    const slow = call('alice', 'mine-slow', { ms: 600 });
    await waitFor(() => upstream.requests.some((r) => r.rpcMethod === 'tools/call' && r.headers['x-user-token'] === 'token-of-alice'), { what: "alice's call to reach the upstream" });
    const refused = await call('bob', 'mine-whoami', { header: 'x-user-token' });
    expect(refused.isError).toBe(true);
    expect(refused.text).toMatch(/^upstream server 'mine' is unreachable: too many concurrent connections/);
    expect(await slow).toEqual({ text: 'slept 600', isError: false });
    // Once alice's call is done, bob's call may take the slot.
    expect((await call('bob', 'mine-whoami', { header: 'x-user-token' })).text).toBe(OWN_CREDENTIAL);
  });
});

describe('legacy SSE: trace context', () => {
  it("rides each call's message (_meta), not the connection's headers, so every call keeps its own", async () => {
    // An SSE upstream whose tool answers with the _meta and traceparent header it received.
    const seen: string[] = [];
    const http = createServer((req: IncomingMessage, res: ServerResponse) => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      if (req.method === 'GET' && url.pathname === '/sse') {
        const transport = new SSEServerTransport('/messages', res);
        transports.set(transport.sessionId, transport);
        const server = new McpServer({ name: 'trace', version: '1.0.0' });
        server.registerTool('meta', { description: 'returns its _meta' }, (extra) => {
          seen.push(String(extra.requestInfo?.headers.traceparent ?? ''));
          return { content: [{ type: 'text', text: JSON.stringify(extra._meta ?? {}) }] };
        });
        void server.connect(transport);
        return;
      }
      const transport = transports.get(url.searchParams.get('sessionId') ?? '');
      if (req.method === 'POST' && transport) return void transport.handlePostMessage(req, res);
      res.writeHead(404).end();
    });
    const transports = new Map<string, SSEServerTransport>();
    const port = await listen(http, 0);
    node = await startTestNode();
    snapshot = await buildSnapshot({ servers: [{ name: 'trace', connectionType: 'SSE', url: `http://127.0.0.1:${port}/sse` }], keys: [{ name: 'dev', servers: [{ server: 'trace', tools: ['*'] }] }] });
    node.apply(snapshot);
    upstream = { close: () => closeServer(http) } as HttpUpstream;
    const traceIds = ['a'.repeat(32), 'b'.repeat(32)];
    for (const traceId of traceIds) {
      const answer = await call('dev', 'trace-meta', {}, { traceparent: `00-${traceId}-${'1'.repeat(16)}-01` });
      const meta = JSON.parse(answer.text) as { traceparent?: string };
      // Same trace, this hop as the parent.
      expect(meta.traceparent).toMatch(new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`));
      expect(meta.traceparent).not.toContain('1'.repeat(16));
    }
    expect(seen).toEqual(['', '']);
    // Both calls shared the one connection: trace context does not make a connection of its own.
    expect(node.pool.identityConnectionCount('trace')).toBe(0);
  });
});
