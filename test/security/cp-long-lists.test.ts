/**
 * Long lists in mutation input. List fields (tool lists, header names, per-user header keys, secret
 * headers, stdio env, key grants, provider prices) were bounded only by the 8 MB body and de-duplicated by
 * scanning what had been kept for each entry: one request of about a megabyte held the one event loop for
 * seconds (100,000 tool names: 17 s; 40,000 stdio env entries: 17 s) or over a minute (50,000 header
 * names), while every other request, node stream and audit batch waited; 40,000 granted servers were an
 * internal error on SQLite (too many SQL variables). Each list now takes at most MAX_LIST_ENTRIES (a typed
 * INVALID_VALUE beyond), a list at the limit is answered promptly, and /healthz is answered meanwhile.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_LIST_ENTRIES } from '../../control-plane/repos/errors.js';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';

const OVER = 40_000;
/** Generous for a shared 2-core machine; the unbounded versions took 2 to 100 times longer. */
const BOUND_MS = 5_000;

const names = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

describe('mutations with very long lists', () => {
  let cp: TestControlPlane;
  let userId = '';

  beforeAll(async () => {
    cp = await startTestControlPlane();
    await cp.gql('mutation { createMcpServer(input: {name: "crm", connectionType: HTTP, connectionString: "http://127.0.0.1:9/mcp", toolsToExecute: ["*"]}) { errors { code } } }');
    userId = (await cp.gql<{ createUser: { user: { id: string } } }>('mutation { createUser(input: {email: "lists@example.com"}) { user { id } } }')).createUser.user.id;
  }, 60_000);
  afterAll(async () => {
    await cp?.close();
  });

  async function timed(query: string, variables: Record<string, unknown>): Promise<{ ms: number; healthMs: number; codes: string[] }> {
    const started = Date.now();
    const request = fetch(`${cp.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${cp.adminToken}` },
      body: JSON.stringify({ query, variables }),
    }).then(async (r) => ({ status: r.status, body: (await r.json()) as { data?: Record<string, { errors?: Array<{ code: string }> } | null>; errors?: unknown[] } }));
    // While the list is processed, the control plane still answers others (after the body has arrived).
    await new Promise((resolve) => setTimeout(resolve, 300));
    const healthStarted = Date.now();
    const health = await fetch(`${cp.url}/healthz`);
    const healthMs = Date.now() - healthStarted;
    expect(health.status).toBe(200);
    const answer = await request;
    expect(answer.status).toBe(200);
    expect(answer.body.errors).toBeUndefined();
    const payload = Object.values(answer.body.data ?? {})[0];
    return { ms: Date.now() - started, healthMs, codes: (payload?.errors ?? []).map((e) => e.code) };
  }

  const lists = [
    ['toolsToExecute', 'mutation($l: [String!]) { p: updateMcpServer(input: {name: "crm", toolsToExecute: $l}) { errors { code } } }', (n: number) => ({ l: names('tool_', n) })],
    ['allowedExtraHeaders', 'mutation($l: [String!]) { p: updateMcpServer(input: {name: "crm", allowedExtraHeaders: $l}) { errors { code } } }', (n: number) => ({ l: names('x-extra-', n) })],
    ['perUserHeaderKeys', 'mutation($l: [String!]) { p: createMcpServer(input: {name: "per_user", connectionType: HTTP, connectionString: "http://127.0.0.1:9/mcp", authType: PER_USER_HEADERS, perUserHeaderKeys: $l}) { errors { code } } }', (n: number) => ({ l: names('x-user-', n) })],
    ['headers', 'mutation($l: [SecretInput!]) { p: updateMcpServer(input: {name: "crm", authType: HEADERS, headers: $l}) { errors { code } } }', (n: number) => ({ l: names('x-secret-', n).map((name) => ({ name, value: 'v' })) })],
    ['stdio env', 'mutation($l: [SecretInput!]!) { p: createMcpServer(input: {name: "local", connectionType: STDIO, stdio: {command: "node", args: [], env: $l}}) { errors { code } } }', (n: number) => ({ l: names('VAR_', n).map((name) => ({ name, value: 'v' })) })],
    ['key grant tools', 'mutation($u: ID!, $l: [String!]!) { p: createVirtualKey(input: {name: "k1", userId: $u, servers: [{server: "crm", tools: $l}]}) { errors { code } } }', (n: number) => ({ l: names('tool_', n) })],
    ['key grant servers', 'mutation($u: ID!, $g: [KeyServerGrantInput!]!) { p: createVirtualKey(input: {name: "k2", userId: $u, servers: $g}) { errors { code } } }', (n: number) => ({ g: names('srv_', n).map((server) => ({ server, tools: ['*'] })) })],
    ['provider prices', 'mutation($p: [ModelPriceInput!]) { p: upsertProvider(input: {name: "anthropic", baseUrl: "https://api.anthropic.com", apiKey: "sk-ant-0123456789abcdef", prices: $p}) { errors { code } } }', (n: number) => ({ p: names('model-', n).map((model) => ({ model, inputPerMTok: 1, outputPerMTok: 1, cacheWritePerMTok: 1, cacheReadPerMTok: 1 })) })],
  ] as const;

  it.each(lists)('%s: a list over the limit is refused promptly, others served meanwhile', async (_what, query, variables) => {
    const result = await timed(query, { u: userId, ...variables(OVER) });
    expect(result.codes).toContain('INVALID_VALUE');
    expect(result.ms).toBeLessThan(BOUND_MS);
    expect(result.healthMs).toBeLessThan(BOUND_MS / 2);
  }, 60_000);

  it.each(lists)('%s: a list at the limit is answered promptly', async (_what, query, variables) => {
    const result = await timed(query, { u: userId, ...variables(MAX_LIST_ENTRIES) });
    expect(result.ms).toBeLessThan(BOUND_MS);
  }, 60_000);
});
