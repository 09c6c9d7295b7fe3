/**
 * Secret leaks through upstream errors: an upstream that echoes the credential the gateway injected (whole,
 * or the token without its scheme) in a JSON-RPC error's message or data, or in an HTTP error body, must
 * not hand it to the caller, on `/mcp` or on `/mcp/{server}`. Tool results are the upstream's output and
 * pass as they are (the guardrail is what reads those); error texts are the gateway's to relay safely.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSnapshot, perUserTokens, startTestNode, type BuiltSnapshot, type TestNode } from '../data-plane/helpers.js';
import { startRawUpstream, type RawUpstream } from './raw-upstream.js';

const TOKEN = `tok-${randomBytes(12).toString('hex')}`;
const API_KEY = `apikey-${randomBytes(12).toString('hex')}`;

let upstream: RawUpstream;
let node: TestNode;
let snapshot: BuiltSnapshot;

beforeAll(async () => {
  upstream = await startRawUpstream((request, message) => {
    if (message.method !== 'tools/call') return null;
    const auth = String(request.headers.authorization ?? '');
    const bare = auth.replace(/^Bearer /, '');
    const key = String(request.headers['x-api-key'] ?? request.headers['x-user-token'] ?? '');
    const echo = `rejected authorization '${auth}' (token ${bare}, key ${key})`;
    switch (message.params?.name) {
      case 'rpc_error':
        return { status: 200, body: JSON.stringify({ jsonrpc: '2.0', id: message.id, error: { code: -32000, message: echo, data: { auth, bare, key, nested: [echo] } } }) };
      case 'http_error':
        return { status: 500, body: JSON.stringify({ error: echo }) };
      case 'http_400':
        return { status: 400, type: 'text/plain', body: echo };
      case 'sse_error':
        return { status: 200, type: 'text/event-stream', body: `event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', id: message.id, error: { code: -32000, message: echo, data: { bare } } })}\n\n` };
      default:
        return null;
    }
  });
  // `mine` carries each caller's own credential (`x-user-token: token-of-<user>`), not one of the server's.
  node = await startTestNode({ hooks: { credentials: perUserTokens('mine') } });
  snapshot = await buildSnapshot({
    servers: [
      { name: 'crm', url: upstream.url, headers: { Authorization: { secret: `Bearer ${TOKEN}` }, 'X-Api-Key': { secret: API_KEY } } },
      { name: 'mine', url: upstream.url },
    ],
    keys: [{ name: 'dev', servers: [{ server: 'crm', tools: ['*'] }, { server: 'mine', tools: ['*'] }] }],
    sessionSecrets: { current: { id: 's1', secret: randomBytes(32).toString('base64url') } },
  });
  node.apply(snapshot);
});

afterAll(async () => {
  await node?.close();
  await upstream?.close();
});

async function post(path: string, name: string): Promise<{ status: number; text: string }> {
  const res = await fetch(`${node.url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${snapshot.keyValues.dev ?? ''}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name, arguments: {} } }),
  });
  return { status: res.status, text: await res.text() };
}

describe('an upstream echoing the injected credential in an error does not leak it', () => {
  for (const [route, name] of [['/mcp', 'mine-rpc_error'], ['/mcp/mine', 'rpc_error'], ['/mcp/mine', 'http_400']] as const) {
    it(`a per-user credential: ${route} ${name}`, async () => {
      const answer = await post(route, name);
      expect(upstream.requests.some((r) => r.headers['x-user-token'] === 'token-of-user_1')).toBe(true);
      expect(answer.text).not.toContain('token-of-user_1');
    });
  }

  for (const tool of ['rpc_error', 'http_error', 'http_400', 'sse_error']) {
    for (const [route, name] of [['/mcp', `crm-${tool}`], ['/mcp/crm', tool]] as const) {
      it(`${route} ${tool}`, async () => {
        const before = upstream.requests.length;
        const answer = await post(route, name);
        // The upstream did see the credential (the echo is real)…
        expect(upstream.requests.slice(before).some((r) => r.headers.authorization === `Bearer ${TOKEN}`)).toBe(true);
        // …and the caller gets an error, without it.
        expect(answer.status).toBeLessThan(600);
        expect(answer.text).not.toContain(TOKEN);
        expect(answer.text).not.toContain(API_KEY);
        expect(node.logs.text()).not.toContain(TOKEN);
        expect(node.logs.text()).not.toContain(API_KEY);
      });
    }
  }
});
