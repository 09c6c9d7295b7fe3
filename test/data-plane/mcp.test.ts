/**
 * `/mcp` end to end over real sockets: the MCP SDK's own Client against a node whose Runtime comes from
 * a signed, sealed, verified snapshot, in front of real SDK upstreams over Streamable HTTP, SSE and stdio.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import type { BuildRuntimeResult } from '../../data-plane/config/runtime.js';
import { readStdioStarts, startHttpUpstream, startSseUpstream, stdioUpstreamCommand, type HttpUpstream } from '../support/upstreams.js';
import { buildSnapshot, connectClient, postMcp, resultText, startTestNode, type BuiltSnapshot, type TestNode } from './helpers.js';

const CRM_SECRET = 'Bearer crm-upstream-secret-7f3a';
const WIKI_SECRET = 'wiki-api-secret-91bd';
const STDIO_SECRET = 'stdio-identity-secret-c0de';
/** Set in this (the node's) process environment: a stdio upstream must not inherit it. */
const NODE_ONLY_VAR = 'GATEHOUSE_TEST_NODE_ONLY_SECRET';

let http: HttpUpstream;
let sse: HttpUpstream;
let node: TestNode;
let snapshot: BuiltSnapshot;
let built: BuildRuntimeResult;
let dir: string;
let stdioRecord: string;
const clients: Client[] = [];

async function client(keyName: string, headers: Record<string, string> = {}): Promise<Client> {
  const c = await connectClient(node.mcpUrl, snapshot.keyValues[keyName] ?? '', headers);
  clients.push(c);
  return c;
}

beforeAll(async () => {
  process.env[NODE_ONLY_VAR] = 'node-process-secret';
  dir = mkdtempSync(join(tmpdir(), 'gatehouse-mcp-'));
  stdioRecord = join(dir, 'stdio-starts.jsonl');
  [http, sse] = await Promise.all([startHttpUpstream(), startSseUpstream()]);
  const stdio = stdioUpstreamCommand(stdioRecord);

  snapshot = await buildSnapshot({
    servers: [
      {
        name: 'crm',
        url: http.url,
        headers: { authorization: { secret: CRM_SECRET }, 'x-tenant': { env: 'CRM_TENANT' } },
        // The caller's Authorization is listed on purpose: it must still never be forwarded.
        allowedExtraHeaders: ['X-Request-Source', 'authorization', 'x-trace-note'],
        toolTimeoutMs: 500,
      },
      // Same upstream, no credential of its own, Authorization allowlisted: the caller's must still not go.
      { name: 'open', url: http.url, allowedExtraHeaders: ['authorization', 'x-request-source'] },
      {
        name: 'wiki',
        connectionType: 'SSE',
        url: { env: 'WIKI_URL' },
        headers: { 'x-api-key': { secret: WIKI_SECRET } },
        toolsToExecute: ['echo', 'add', 'whoami', 'find-contact'],
      },
      {
        name: 'local',
        connectionType: 'STDIO',
        stdio: { command: stdio.command, args: stdio.args, env: { STDIO_IDENTITY: { secret: STDIO_SECRET }, PLAIN_SETTING: 'on' } },
        toolsToExecute: ['*'],
      },
      { name: 'broken', url: http.url, headers: { authorization: { env: 'BROKEN_TOKEN' } } },
      { name: 'off', url: http.url, disabled: true },
    ],
    keys: [
      {
        name: 'full',
        servers: [
          { server: 'crm', tools: ['*'] },
          { server: 'open', tools: ['whoami'] },
          { server: 'wiki', tools: ['*'] },
          { server: 'local', tools: ['echo', 'add', 'env_value'] },
          { server: 'broken', tools: ['*'] },
          { server: 'off', tools: ['*'] },
        ],
      },
      { name: 'narrow', servers: [{ server: 'crm', tools: ['echo'] }, { server: 'wiki', tools: ['add', 'secret_tool'] }] },
      { name: 'revoked', servers: [{ server: 'crm', tools: ['*'] }], revoked: true },
      { name: 'expired', servers: [{ server: 'crm', tools: ['*'] }], expiresAt: '2020-01-01T00:00:00.000Z' },
    ],
  });
  node = await startTestNode();
  built = node.apply(snapshot, { CRM_TENANT: 'tenant-42', WIKI_URL: sse.url });
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
  await node?.close();
  await Promise.all([http?.close(), sse?.close()]);
  rmSync(dir, { recursive: true, force: true });
  delete process.env[NODE_ONLY_VAR];
});

describe('tools/list', () => {
  it('lists the tools of all three upstreams, prefixed, filtered by toolsToExecute ∩ key grant', async () => {
    const c = await client('full');
    const { tools } = await c.listTools();
    const names = tools.map((t) => t.name).sort();
    expect(names).toEqual(
      [
        'crm-add',
        'crm-echo',
        'crm-find-contact',
        'crm-secret_tool',
        'crm-slow',
        'crm-whoami',
        'open-whoami',
        'wiki-add',
        'wiki-echo',
        'wiki-find-contact',
        'wiki-whoami',
        'local-add',
        'local-echo',
        'local-env_value',
      ].sort(),
    );
    const echo = tools.find((t) => t.name === 'crm-echo');
    expect(echo?.description).toBe('echo from http');
    expect(echo?.annotations?.readOnlyHint).toBe(true);
    expect(echo?.inputSchema.properties).toHaveProperty('text');
  });

  it('shows a narrow key exactly its grant (a grant outside toolsToExecute shows nothing)', async () => {
    const c = await client('narrow');
    const { tools } = await c.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(['crm-echo', 'wiki-add']);
  });
});

describe('tools/call', () => {
  it('routes calls to the HTTP, SSE and stdio upstreams', async () => {
    const c = await client('full');
    expect(resultText(await c.callTool({ name: 'crm-echo', arguments: { text: 'hi' } }))).toBe('http:hi');
    expect(resultText(await c.callTool({ name: 'wiki-add', arguments: { a: 2, b: 3 } }))).toBe('5');
    expect(resultText(await c.callTool({ name: 'local-echo', arguments: { text: 'x' } }))).toBe('stdio:x');
    // Tool names may contain hyphens; only the first one separates the server.
    expect(resultText(await c.callTool({ name: 'wiki-find-contact', arguments: { name: 'ada' } }))).toBe('sse:contact:ada');
  });

  it('refuses a tool outside the key grant or outside toolsToExecute with a tool_blocked JSON-RPC error', async () => {
    const c = await client('narrow');
    for (const name of ['crm-secret_tool', 'wiki-secret_tool', 'local-echo', 'nosuch-echo', 'echo']) {
      const error = await c.callTool({ name, arguments: {} }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(error, name).toBeInstanceOf(McpError);
      expect((error as McpError).code).toBe(-32003);
      expect((error as McpError).data).toEqual({ type: 'tool_blocked' });
    }
    // The blocked call never reached an upstream.
    expect(http.requests.some((r) => JSON.stringify(r).includes('secret_tool'))).toBe(false);
  });

  it('a server whose env variable is missing answers with a clear error naming it, and missingEnv lists it', async () => {
    expect(built.missingEnv).toEqual([{ name: 'BROKEN_TOKEN', servers: ['broken'] }]);
    const c = await client('full');
    const result = await c.callTool({ name: 'broken-echo', arguments: { text: 'x' } });
    expect(result.isError).toBe(true);
    expect(resultText(result)).toBe("server 'broken' unavailable on this node: environment variable BROKEN_TOKEN is not set");
    const off = await c.callTool({ name: 'off-echo', arguments: { text: 'x' } });
    expect(off.isError).toBe(true);
    expect(resultText(off)).toBe("server 'off' unavailable on this node: the server is disabled");
  });

  it('a slow tool fails with a timeout error within toolTimeoutMs', async () => {
    const c = await client('full');
    const started = Date.now();
    const result = await c.callTool({ name: 'crm-slow', arguments: { ms: 10_000 } });
    expect(result.isError).toBe(true);
    expect(resultText(result)).toBe("upstream server 'crm' timed out after 500 ms");
    expect(Date.now() - started).toBeLessThan(3_000);
  });
});

describe('credentials', () => {
  it('injects the sealed credential and env-resolved headers; never sends the virtual key upstream', async () => {
    const full = await client('full', { 'x-request-source': 'cli-7' });
    await full.callTool({ name: 'crm-echo', arguments: { text: 'cred' } });
    await full.callTool({ name: 'wiki-echo', arguments: { text: 'cred' } });
    await full.callTool({ name: 'open-whoami', arguments: { header: 'authorization' } });

    const crmRequests = http.requests.filter((r) => r.headers['x-tenant'] !== undefined || r.headers.authorization === CRM_SECRET);
    expect(crmRequests.length).toBeGreaterThan(0);
    for (const r of crmRequests) {
      expect(r.headers.authorization).toBe(CRM_SECRET);
      expect(r.headers['x-tenant']).toBe('tenant-42');
    }
    const sseRequests = sse.requests;
    expect(sseRequests.some((r) => r.httpMethod === 'GET' && r.path === '/sse')).toBe(true);
    for (const r of sseRequests) expect(r.headers['x-api-key']).toBe(WIKI_SECRET);

    // Every header of every request any upstream received: no virtual key anywhere.
    const keyValues = Object.values(snapshot.keyValues);
    for (const r of [...http.requests, ...sse.requests]) {
      for (const [name, value] of Object.entries(r.headers)) {
        const text = Array.isArray(value) ? value.join(',') : (value ?? '');
        for (const key of keyValues) expect(text.includes(key), `${name} carried a virtual key`).toBe(false);
      }
    }
  });

  it('gives a stdio upstream its configured env (sealed and plain) and not the node environment', async () => {
    const c = await client('full');
    // The upstream got the sealed value (its recorded env, below); echoed back, it never reaches the caller.
    expect(resultText(await c.callTool({ name: 'local-env_value', arguments: {} }))).toBe('[redacted]');
    const starts = readStdioStarts(stdioRecord);
    expect(starts.length).toBeGreaterThan(0);
    const env = starts[starts.length - 1]?.env ?? {};
    expect(env.STDIO_IDENTITY).toBe(STDIO_SECRET);
    expect(env.PLAIN_SETTING).toBe('on');
    expect(env[NODE_ONLY_VAR]).toBeUndefined();
    expect(env.CRM_TENANT).toBeUndefined();
    for (const key of Object.values(snapshot.keyValues)) expect(JSON.stringify(env).includes(key)).toBe(false);
  });

  it('forwards an allowlisted caller header only to the server that allows it', async () => {
    const c = await client('full', { 'x-request-source': 'cli-9', 'x-not-listed': 'nope' });
    expect(resultText(await c.callTool({ name: 'crm-whoami', arguments: { header: 'x-request-source' } }))).toBe('cli-9');
    expect(resultText(await c.callTool({ name: 'crm-whoami', arguments: { header: 'x-not-listed' } }))).toBe('');
    expect(resultText(await c.callTool({ name: 'wiki-whoami', arguments: { header: 'x-request-source' } }))).toBe('');
    expect(sse.requests.some((r) => r.headers['x-request-source'] !== undefined)).toBe(false);
    // The pool's own requests (initialize, tools/list) never carry a caller's header.
    for (const r of http.requests.filter((q) => q.rpcMethod === 'initialize' || q.rpcMethod === 'tools/list')) {
      expect(r.headers['x-request-source']).toBeUndefined();
    }
  });

  it("never forwards the caller's Authorization, even when allowlisted", async () => {
    const c = await client('full');
    // `open` has no credential of its own and allowlists authorization: the upstream sees none.
    expect(resultText(await c.callTool({ name: 'open-whoami', arguments: { header: 'authorization' } }))).toBe('');
    // `crm` allowlists it too: the upstream sees only the configured credential (which, echoed back, the
    // caller never gets to read).
    const before = http.requests.length;
    expect(resultText(await c.callTool({ name: 'crm-whoami', arguments: { header: 'authorization' } }))).toBe('[redacted]');
    const sent = http.requests.slice(before).filter((r) => r.rpcMethod === 'tools/call');
    expect(sent.map((r) => r.headers.authorization)).toEqual([CRM_SECRET]);
  });

  it('does not forward an allowlisted header whose value carries the virtual key', async () => {
    const key = snapshot.keyValues.full ?? '';
    const c = await client('full', { 'x-trace-note': `copied ${key}` });
    expect(resultText(await c.callTool({ name: 'crm-whoami', arguments: { header: 'x-trace-note' } }))).toBe('');
  });

  it('logs no secret value and no key value', () => {
    const logs = node.logs.text();
    for (const secret of [CRM_SECRET, WIKI_SECRET, STDIO_SECRET, ...Object.values(snapshot.keyValues)]) {
      expect(logs.includes(secret)).toBe(false);
    }
  });
});

describe('authentication', () => {
  const initialize = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } };

  it('401 virtual_key_required without a key, with WWW-Authenticate', async () => {
    const res = await postMcp(node.mcpUrl, initialize);
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(await res.json()).toEqual({ type: 'virtual_key_required', message: expect.any(String) });
    const empty = await postMcp(node.mcpUrl, initialize, { authorization: 'Bearer ' });
    expect(empty.status).toBe(401);
  });

  it('401 invalid_key for an unknown key', async () => {
    const res = await postMcp(node.mcpUrl, initialize, { authorization: 'Bearer gk_not-a-real-key' });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect((await res.json()) as unknown).toMatchObject({ type: 'invalid_key' });
  });

  it('403 key_revoked and key_expired', async () => {
    const revoked = await postMcp(node.mcpUrl, initialize, { authorization: `Bearer ${snapshot.keyValues.revoked}` });
    expect(revoked.status).toBe(403);
    expect((await revoked.json()) as unknown).toMatchObject({ type: 'key_revoked' });
    const expired = await postMcp(node.mcpUrl, initialize, { authorization: `Bearer ${snapshot.keyValues.expired}` });
    expect(expired.status).toBe(403);
    expect((await expired.json()) as unknown).toMatchObject({ type: 'key_expired' });
  });

  it('the SDK client fails to connect without a key', async () => {
    await expect(connectClient(node.mcpUrl, null)).rejects.toThrow(/401|virtual_key_required/);
  });
});
