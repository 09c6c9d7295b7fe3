/**
 * The upstream pool through the node's `/mcp`: one pooled connection per upstream reused by every
 * caller, reconnect after an upstream dies and comes back, catalog refresh on list_changed, and
 * connection replacement when a new snapshot changes a server.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import {
  readStdioStarts,
  startHttpUpstream,
  startSseUpstream,
  stdioUpstreamCommand,
  type HttpUpstream,
} from '../support/upstreams.js';
import { waitFor } from '../support/wait.js';
import { buildSnapshot, connectClient, resultText, startTestNode, type TestConfig, type TestNode } from './helpers.js';

let node: TestNode;
let upstreams: HttpUpstream[];
let clients: Client[];
let dir: string;

beforeEach(async () => {
  node = await startTestNode();
  upstreams = [];
  clients = [];
  dir = mkdtempSync(join(tmpdir(), 'gatehouse-pool-'));
});

afterEach(async () => {
  await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
  await node.close();
  await Promise.all(upstreams.map((u) => u.close()));
  rmSync(dir, { recursive: true, force: true });
});

async function connect(key: string, headers: Record<string, string> = {}): Promise<Client> {
  const c = await connectClient(node.mcpUrl, key, headers);
  clients.push(c);
  return c;
}

function crmConfig(url: string, headerValue = 'Bearer one', version = 1): TestConfig {
  return {
    version,
    servers: [{ name: 'crm', url, headers: { authorization: { secret: headerValue } }, toolTimeoutMs: 2_000 }],
    keys: [{ name: 'dev', servers: [{ server: 'crm', tools: ['*'] }] }],
  };
}

describe('pooling', () => {
  it('reuses one upstream connection across many callers and calls', async () => {
    const http = await startHttpUpstream();
    const sse = await startSseUpstream();
    upstreams.push(http, sse);
    const snap = await buildSnapshot({
      servers: [
        { name: 'crm', url: http.url },
        { name: 'wiki', connectionType: 'SSE', url: sse.url },
      ],
      keys: [{ name: 'dev', servers: [{ server: 'crm', tools: ['*'] }, { server: 'wiki', tools: ['*'] }] }],
    });
    node.apply(snap);
    const callers = await Promise.all([1, 2, 3, 4].map(() => connect(snap.keyValues.dev ?? '')));
    const calls: Promise<unknown>[] = [];
    for (const [i, c] of callers.entries()) {
      for (let n = 0; n < 10; n++) {
        calls.push(c.callTool({ name: 'crm-add', arguments: { a: i, b: n } }));
        calls.push(c.callTool({ name: 'wiki-add', arguments: { a: i, b: n } }));
      }
      calls.push(c.listTools());
    }
    const results = await Promise.all(calls);
    expect(results).toHaveLength(84);
    // 40 calls per upstream, 4 tools/list, from 4 clients: one initialize at each upstream.
    expect(http.initializeCount()).toBe(1);
    expect(sse.initializeCount()).toBe(1);
    expect(http.requests.filter((r) => r.rpcMethod === 'tools/call')).toHaveLength(40);
    // The catalog is cached: concurrent tools/list calls caused one upstream tools/list.
    expect(http.requests.filter((r) => r.rpcMethod === 'tools/list')).toHaveLength(1);
  });

  it('answers each caller its own result under concurrency (no id mix-up)', async () => {
    const http = await startHttpUpstream();
    upstreams.push(http);
    const snap = await buildSnapshot(crmConfig(http.url));
    node.apply(snap);
    const callers = await Promise.all([1, 2, 3].map(() => connect(snap.keyValues.dev ?? '')));
    const jobs = callers.flatMap((c, i) =>
      Array.from({ length: 20 }, (_, n) => c.callTool({ name: 'crm-echo', arguments: { text: `${i}-${n}` } }).then((r) => [resultText(r), `http:${i}-${n}`])),
    );
    for (const [got, want] of await Promise.all(jobs)) expect(got).toBe(want);
  });
});

describe('caller headers on a shared connection', () => {
  it("a connection opened by a caller's call does not carry that caller's headers on its own requests", async () => {
    const http = await startHttpUpstream();
    upstreams.push(http);
    const snap = await buildSnapshot({
      servers: [{ name: 'crm', url: http.url, allowedExtraHeaders: ['x-request-source'] }],
      keys: [{ name: 'dev', servers: [{ server: 'crm', tools: ['*'] }] }],
    });
    node.apply(snap);
    // The very first use of crm is a call carrying an allowlisted header: it triggers the connect.
    const first = await connect(snap.keyValues.dev ?? '', { 'x-request-source': 'caller-one' });
    expect(resultText(await first.callTool({ name: 'crm-whoami', arguments: { header: 'x-request-source' } }))).toBe('caller-one');
    const second = await connect(snap.keyValues.dev ?? '', { 'x-request-source': 'caller-two' });
    expect(resultText(await second.callTool({ name: 'crm-whoami', arguments: { header: 'x-request-source' } }))).toBe('caller-two');
    expect(resultText(await second.callTool({ name: 'crm-echo', arguments: { text: 'x' } }))).toBe('http:x');
    const own = http.requests.filter((r) => r.rpcMethod !== 'tools/call');
    expect(own.map((r) => r.rpcMethod ?? r.httpMethod)).toContain('initialize');
    for (const r of own) expect(r.headers['x-request-source'], `${r.httpMethod} ${r.rpcMethod ?? ''}`).toBeUndefined();
    expect(http.initializeCount()).toBe(1);
  });
});

describe('reconnect', () => {
  it.each([
    ['Streamable HTTP', startHttpUpstream, 'HTTP'],
    ['SSE', startSseUpstream, 'SSE'],
  ] as const)('an upstream (%s) that dies gives a clear error, then works again once it is back', async (_label, start, connectionType) => {
    const http = await start({ label: 'http' });
    const snap = await buildSnapshot({
      servers: [{ name: 'crm', connectionType, url: http.url, headers: { authorization: { secret: 'Bearer one' } }, toolTimeoutMs: 2_000 }],
      keys: [{ name: 'dev', servers: [{ server: 'crm', tools: ['*'] }] }],
    });
    node.apply(snap);
    const c = await connect(snap.keyValues.dev ?? '');
    expect(resultText(await c.callTool({ name: 'crm-echo', arguments: { text: 'a' } }))).toBe('http:a');

    const port = http.port;
    await http.close();
    const down = await c.callTool({ name: 'crm-echo', arguments: { text: 'b' } });
    expect(down.isError).toBe(true);
    expect(resultText(down)).toMatch(/^upstream server 'crm' is unreachable: /);
    expect(resultText(down)).not.toContain('127.0.0.1');
    expect(resultText(down)).not.toContain('Bearer one');

    // While it is down, calls keep failing fast (backoff), never hanging.
    const started = Date.now();
    const again = await c.callTool({ name: 'crm-echo', arguments: { text: 'c' } });
    expect(again.isError).toBe(true);
    expect(Date.now() - started).toBeLessThan(2_000);

    const restarted = await start({ port, label: 'http' });
    upstreams.push(restarted);
    const text = await waitFor(
      async () => {
        const r = await c.callTool({ name: 'crm-echo', arguments: { text: 'd' } });
        return r.isError ? undefined : resultText(r);
      },
      { what: 'crm to answer after restart' },
    );
    expect(text).toBe('http:d');
    expect(restarted.initializeCount()).toBe(1);
  });

  it('an upstream that restarts between calls (session gone, 404) is reconnected transparently', async () => {
    const http = await startHttpUpstream();
    const snap = await buildSnapshot(crmConfig(http.url));
    node.apply(snap);
    const c = await connect(snap.keyValues.dev ?? '');
    expect(resultText(await c.callTool({ name: 'crm-echo', arguments: { text: 'a' } }))).toBe('http:a');
    const port = http.port;
    await http.close();
    const restarted = await startHttpUpstream({ port });
    upstreams.push(restarted);
    // The pooled client still holds the old session id; the upstream answers 404 and the pool reconnects.
    expect(resultText(await c.callTool({ name: 'crm-echo', arguments: { text: 'b' } }))).toBe('http:b');
    const posts = restarted.requests.filter((r) => r.httpMethod === 'POST').map((r) => [r.rpcMethod, r.headers['mcp-session-id'] !== undefined]);
    expect(posts.slice(0, 2)).toEqual([
      ['tools/call', true], // old session: 404, not executed
      ['initialize', false],
    ]);
    expect(posts.filter(([m]) => m === 'tools/call')).toHaveLength(2);
  });

  it('a stdio upstream that exits is restarted on the next call', async () => {
    const record = join(dir, 'starts.jsonl');
    const stdio = stdioUpstreamCommand(record);
    const snap = await buildSnapshot({
      servers: [{ name: 'local', connectionType: 'STDIO', stdio: { command: stdio.command, args: stdio.args, env: {} } }],
      keys: [{ name: 'dev', servers: [{ server: 'local', tools: ['*'] }] }],
    });
    node.apply(snap);
    const c = await connect(snap.keyValues.dev ?? '');
    expect(resultText(await c.callTool({ name: 'local-echo', arguments: { text: 'a' } }))).toBe('stdio:a');
    const first = readStdioStarts(record);
    expect(first).toHaveLength(1);
    process.kill(first[0]?.pid ?? 0, 'SIGKILL');
    await waitFor(() => !node.pool.isConnected('local'), { what: 'the pool to notice the exit' });
    expect(resultText(await c.callTool({ name: 'local-echo', arguments: { text: 'b' } }))).toBe('stdio:b');
    expect(readStdioStarts(record)).toHaveLength(2);
  });

  it('a stdio command that does not exist is a clear error', async () => {
    const snap = await buildSnapshot({
      servers: [{ name: 'ghost', connectionType: 'STDIO', stdio: { command: join(dir, 'no-such-binary'), args: [], env: {} } }],
      keys: [{ name: 'dev', servers: [{ server: 'ghost', tools: ['*'] }] }],
    });
    node.apply(snap);
    const c = await connect(snap.keyValues.dev ?? '');
    const result = await c.callTool({ name: 'ghost-echo', arguments: {} });
    expect(result.isError).toBe(true);
    expect(resultText(result)).toBe("upstream server 'ghost' is unreachable: command not found");
    // tools/list skips it instead of failing.
    expect((await c.listTools()).tools).toEqual([]);
  });
});

describe('cancellation', () => {
  it('a caller that disconnects cancels its upstream call; the pooled connection stays up', async () => {
    const http = await startHttpUpstream();
    upstreams.push(http);
    const snap = await buildSnapshot(crmConfig(http.url));
    node.apply(snap);
    const c = await connect(snap.keyValues.dev ?? '');
    await c.callTool({ name: 'crm-echo', arguments: { text: 'warm' } });
    const abort = new AbortController();
    const pending = fetch(node.mcpUrl, {
      method: 'POST',
      headers: { authorization: `Bearer ${snap.keyValues.dev}`, 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'crm-slow', arguments: { ms: 60_000 } } }),
      signal: abort.signal,
    }).catch((e: unknown) => e);
    await waitFor(() => http.requests.filter((r) => r.rpcMethod === 'tools/call').length === 2, { what: 'the slow call to reach the upstream' });
    abort.abort();
    await pending;
    await waitFor(() => http.requests.some((r) => r.rpcMethod === 'notifications/cancelled'), { what: 'notifications/cancelled upstream' });
    expect(node.pool.isConnected('crm')).toBe(true);
    expect(resultText(await c.callTool({ name: 'crm-echo', arguments: { text: 'after' } }))).toBe('http:after');
    expect(http.initializeCount()).toBe(1);
  });
});

describe('catalog', () => {
  it('is fetched as soon as a server appears in a snapshot, before any client asks (per-user servers excepted)', async () => {
    const http = await startHttpUpstream();
    upstreams.push(http);
    const snap = await buildSnapshot({
      servers: [
        { name: 'crm', url: http.url },
        { name: 'mine', url: http.url, authType: 'PER_USER_HEADERS' },
      ],
      keys: [],
    });
    node.apply(snap);
    const catalogs = await waitFor(() => (node.pool.catalogs().length > 0 ? node.pool.catalogs() : null), { what: 'an eager catalog' });
    expect(catalogs.map((c) => c.server)).toEqual(['crm']);
    expect(catalogs[0]?.tools.map((t) => t.name)).toEqual(expect.arrayContaining(['echo', 'add']));
    expect(http.requests.filter((r) => r.rpcMethod === 'tools/list')).toHaveLength(1);
  });

  it('refreshes on notifications/tools/list_changed', async () => {
    const http = await startHttpUpstream();
    upstreams.push(http);
    const snap = await buildSnapshot(crmConfig(http.url));
    node.apply(snap);
    const c = await connect(snap.keyValues.dev ?? '');
    expect((await c.listTools()).tools.map((t) => t.name)).not.toContain('crm-fresh');
    http.addTool('fresh');
    await waitFor(async () => (await c.listTools()).tools.some((t) => t.name === 'crm-fresh'), { what: 'crm-fresh to be listed' });
    expect(resultText(await c.callTool({ name: 'crm-fresh', arguments: {} }))).toBe('http:fresh');
  });
});

describe('snapshot swap', () => {
  it('replaces the connection of a changed server, keeps the others, and drops removed ones', async () => {
    const a = await startHttpUpstream({ label: 'a' });
    const b = await startHttpUpstream({ label: 'b' });
    upstreams.push(a, b);
    const keys = [{ name: 'dev', servers: [{ server: 'alpha', tools: ['*'] }, { server: 'beta', tools: ['*'] }] }];
    const v1 = await buildSnapshot({
      version: 1,
      servers: [
        { name: 'alpha', url: a.url, headers: { authorization: { secret: 'Bearer alpha-v1' } } },
        { name: 'beta', url: b.url, headers: { authorization: { secret: 'Bearer beta-v1' } } },
      ],
      keys,
    });
    node.apply(v1);
    const c = await connect(v1.keyValues.dev ?? '');
    await c.callTool({ name: 'alpha-echo', arguments: { text: '1' } });
    await c.callTool({ name: 'beta-echo', arguments: { text: '1' } });
    expect(a.initializeCount()).toBe(1);
    expect(b.initializeCount()).toBe(1);

    // v2: alpha's credential changes (re-sealed under a new data key), beta's stays the same.
    const v2 = await buildSnapshot(
      {
        version: 2,
        servers: [
          { name: 'alpha', url: a.url, headers: { authorization: { secret: 'Bearer alpha-v2' } } },
          { name: 'beta', url: b.url, headers: { authorization: { secret: 'Bearer beta-v1' } } },
        ],
        keys,
      },
      v1.keyValues,
    );
    node.apply(v2);
    expect(node.pool.isConnected('alpha')).toBe(false);
    expect(node.pool.isConnected('beta')).toBe(true);
    await c.callTool({ name: 'alpha-echo', arguments: { text: '2' } });
    await c.callTool({ name: 'beta-echo', arguments: { text: '2' } });
    expect(a.initializeCount()).toBe(2);
    expect(b.initializeCount()).toBe(1);
    const lastAlphaCall = a.requests.filter((r) => r.rpcMethod === 'tools/call').at(-1);
    expect(lastAlphaCall?.headers.authorization).toBe('Bearer alpha-v2');

    // v3: beta removed; its tools disappear and calling one is blocked.
    const v3 = await buildSnapshot(
      { version: 3, servers: [{ name: 'alpha', url: a.url, headers: { authorization: { secret: 'Bearer alpha-v2' } } }], keys },
      v1.keyValues,
    );
    node.apply(v3);
    expect(node.pool.isConnected('beta')).toBe(false);
    expect((await c.listTools()).tools.every((t) => t.name.startsWith('alpha-'))).toBe(true);
    const error = await c.callTool({ name: 'beta-echo', arguments: { text: '3' } }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(McpError);
    expect((error as McpError).code).toBe(-32003);
  });

  it('a revocation in a new snapshot is enforced on the next request', async () => {
    const http = await startHttpUpstream();
    upstreams.push(http);
    const v1 = await buildSnapshot(crmConfig(http.url));
    node.apply(v1);
    const c = await connect(v1.keyValues.dev ?? '');
    await c.callTool({ name: 'crm-echo', arguments: { text: '1' } });
    const v2 = await buildSnapshot(
      { ...crmConfig(http.url, 'Bearer one', 2), keys: [{ name: 'dev', servers: [{ server: 'crm', tools: ['*'] }], revoked: true }] },
      v1.keyValues,
    );
    node.apply(v2);
    await expect(c.callTool({ name: 'crm-echo', arguments: { text: '2' } })).rejects.toThrow(/403|key_revoked/);
  });
});
