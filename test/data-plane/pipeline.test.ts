/**
 * The request pipeline's stage contract (`data-plane/pipeline/`), over real sockets with a real upstream:
 * every refusal reaches the record stage, the limits hook admits/refuses and is settled once per admitted
 * call, the credentials hook's value is what goes upstream (and its refusal stops the call before it), and
 * a failing record sink never changes an answer.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatewayError } from '../../data-plane/errors.js';
import type { RequestRecord } from '../../data-plane/pipeline/context.js';
import { SHARED_IDENTITY, userIdentity, type CredentialSource } from '../../data-plane/pipeline/credentials.js';
import type { LimitSubject, Limiter, Usage } from '../../data-plane/pipeline/limits.js';
import { startHttpUpstream, type HttpUpstream } from '../support/upstreams.js';
import { waitFor } from '../support/wait.js';
import { buildSnapshot, postMcp, startTestNode, type BuiltSnapshot, type TestNode } from './helpers.js';

let upstream: HttpUpstream;
let node: TestNode;
let snapshot: BuiltSnapshot;
const records: RequestRecord[] = [];
const admitted: LimitSubject[] = [];
const settled: (Usage | null)[] = [];
/** Tool names the limiter refuses (as rate limited). */
const limited = new Set<string>();

const limiter: Limiter = {
  admit(subject) {
    if (subject.tool !== null && limited.has(subject.tool)) {
      return new GatewayError('rate_limited', { headers: { 'retry-after': '7' }, reason: 'test limit' });
    }
    admitted.push(subject);
    return { settle: (usage) => settled.push(usage) };
  },
};

/** `per-user` server: each caller's own header, or a refusal for a user without one. */
const credentials: CredentialSource = {
  resolve(server, caller) {
    if (server.name !== 'peruser') return { headers: server.headers, identity: SHARED_IDENTITY };
    if (caller.key.name === 'stranger') return new GatewayError('tool_blocked', { message: 'connect your account first', data: { server: server.name } });
    return { headers: { 'x-user-token': `token-of-${caller.user.id}` }, identity: userIdentity(caller.user.id) };
  },
};

function call(name: string, args: Record<string, unknown>, id = 1): unknown {
  return { jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } };
}

function auth(key: string): Record<string, string> {
  return { authorization: `Bearer ${snapshot.keyValues[key] ?? ''}` };
}

beforeAll(async () => {
  upstream = await startHttpUpstream();
  node = await startTestNode({
    allowedOrigins: ['https://console.example.com'],
    maxBodyBytes: 4096,
    hooks: {
      limiter,
      credentials,
      sinks: [
        {
          record: () => {
            throw new Error('a broken sink');
          },
        },
      ],
      onRecord: (record) => records.push(record),
    },
  });
  snapshot = await buildSnapshot({
    servers: [
      { name: 'crm', url: upstream.url },
      { name: 'peruser', url: upstream.url },
    ],
    keys: [
      { name: 'dev', servers: [{ server: 'crm', tools: ['*'] }, { server: 'peruser', tools: ['*'] }] },
      { name: 'stranger', servers: [{ server: 'peruser', tools: ['*'] }], userId: 'user_1' },
    ],
  });
});

afterAll(async () => {
  await node?.close();
  await upstream?.close();
});

describe('every refusal reaches the record stage', () => {
  it('not ready, Origin, missing and invalid key, bad JSON, too large: each answered and recorded with its code', async () => {
    const ping = { jsonrpc: '2.0', id: 1, method: 'ping' };
    const notReady = await postMcp(node.mcpUrl, ping);
    expect(notReady.status).toBe(503);
    node.apply(snapshot);
    const cases: [Record<string, string>, unknown, number, string][] = [
      [{ ...auth('dev'), origin: 'http://attacker.example' }, ping, 403, 'origin_not_allowed'],
      [{}, ping, 401, 'virtual_key_required'],
      [{ authorization: 'Bearer gk_not-a-key' }, ping, 401, 'invalid_key'],
      [auth('dev'), '{not json', 400, 'parse_error'],
      [auth('dev'), JSON.stringify({ ...ping, params: { _meta: { pad: 'x'.repeat(5000) } } }), 413, 'payload_too_large'],
    ];
    for (const [headers, body, status] of cases) expect((await postMcp(node.mcpUrl, body, headers)).status).toBe(status);
    const refusals = await waitFor(() => {
      const found = records.filter((r) => r.error !== null && r.method === null);
      return found.length >= cases.length + 1 ? found : null;
    });
    expect(refusals.map((r) => r.error)).toEqual(['not_ready', ...cases.map((c) => c[3])]);
    for (const r of refusals) expect(r.route).toBe('mcp');
    // A refusal after authentication knows who was refused.
    expect(refusals.find((r) => r.error === 'parse_error')?.keyId).toBe('key_dev');
    expect(refusals.find((r) => r.error === 'invalid_key')?.keyId).toBeNull();
  });
});

describe('limits hook', () => {
  it('admits, then settles once, a granted call; a refusal is a JSON-RPC error with the table code and nothing goes upstream', async () => {
    const before = { admitted: admitted.length, settled: settled.length };
    const res = await postMcp(node.mcpUrl, call('crm-echo', { text: 'hi' }), auth('dev'));
    expect(((await res.json()) as { result: { content: { text: string }[] } }).result.content[0]?.text).toContain('hi');
    expect(admitted.slice(before.admitted)).toMatchObject([{ route: 'mcp', method: 'tools/call', server: 'crm', tool: 'echo' }]);
    expect(settled.length).toBe(before.settled + 1);

    limited.add('add');
    const upstreamCalls = upstream.requests.filter((r) => r.rpcMethod === 'tools/call').length;
    const refused = await postMcp(node.mcpUrl, call('crm-add', { a: 1, b: 2 }, 9), auth('dev'));
    expect(refused.status).toBe(200);
    expect((await refused.json()) as unknown).toEqual({ jsonrpc: '2.0', id: 9, error: { code: -32004, message: 'rate limit exceeded', data: { type: 'rate_limited' } } });
    expect(upstream.requests.filter((r) => r.rpcMethod === 'tools/call').length).toBe(upstreamCalls);
    expect(settled.length).toBe(before.settled + 1);
    const record = await waitFor(() => records.find((r) => r.error === 'rate_limited'));
    expect(record).toMatchObject({ outcome: 'denied', server: 'crm', tool: 'add', reason: 'test limit', keyId: 'key_dev' });
  });
});

describe('credentials hook', () => {
  it("sends the source's headers for this caller and records the identity they belong to", async () => {
    const before = upstream.requests.length;
    const res = await postMcp(node.mcpUrl, call('peruser-whoami', { header: 'x-user-token' }, 3), auth('dev'));
    // The user's own credential went upstream; echoed back, it is not handed to the caller.
    expect(((await res.json()) as { result: { content: { text: string }[] } }).result.content[0]?.text).toBe('[redacted]');
    expect(upstream.requests.slice(before).filter((r) => r.rpcMethod === 'tools/call').map((r) => r.headers['x-user-token'])).toEqual(['token-of-user_1']);
    const record = await waitFor(() => records.find((r) => r.server === 'peruser' && r.tool === 'whoami'));
    expect(record).toMatchObject({ outcome: 'ok', credentialIdentity: 'user:user_1', arguments: { header: 'x-user-token' } });
    expect(records.find((r) => r.server === 'crm' && r.outcome === 'ok')?.credentialIdentity).toBe('shared');
  });

  it('a refusal from the source stops the call before the upstream, as a JSON-RPC error carrying its data', async () => {
    const upstreamCalls = upstream.requests.filter((r) => r.rpcMethod === 'tools/call').length;
    const res = await postMcp(node.mcpUrl, call('peruser-echo', { text: 'x' }, 4), auth('stranger'));
    expect((await res.json()) as unknown).toEqual({
      jsonrpc: '2.0',
      id: 4,
      error: { code: -32003, message: 'connect your account first', data: { server: 'peruser', type: 'tool_blocked' } },
    });
    expect(upstream.requests.filter((r) => r.rpcMethod === 'tools/call').length).toBe(upstreamCalls);
    expect(await waitFor(() => records.find((r) => r.keyId === 'key_stranger' && r.outcome === 'denied'))).toMatchObject({ error: 'tool_blocked', server: 'peruser' });
  });
});

describe('record stage', () => {
  it('a sink that throws changes no answer; records carry latency and the request they belong to', async () => {
    const batch = [call('crm-echo', { text: 'a' }, 1), call('crm-echo', { text: 'b' }, 2)];
    const res = await postMcp(node.mcpUrl, batch, auth('dev'));
    expect(res.status).toBe(200);
    expect(((await res.json()) as unknown[]).length).toBe(2);
    const pair = await waitFor(() => {
      const found = records.filter((r) => (r.arguments as { text?: string } | undefined)?.text === 'a' || (r.arguments as { text?: string } | undefined)?.text === 'b');
      return found.length === 2 ? found : null;
    });
    expect(pair[0]?.requestId).toBe(pair[1]?.requestId);
    for (const r of pair) expect(r.latencyMs).toBeGreaterThan(0);
    expect(node.logs.text()).toContain('record sink threw');
  });
});
