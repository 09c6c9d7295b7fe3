/**
 * USD amounts are bounded where they are entered: a budget, a tool's price per call and a model's price per
 * million tokens above MAX_USD (1e308, 1e12) were taken as they came. At such a price one call's cost in
 * nano-USD overflows to Infinity, which a node's spend report cannot carry (JSON has no Infinity: it went
 * as null), so the control plane refused the report and the node resent it forever, holding back every
 * spend report queued behind it. Now every entry point (GraphQL mutations and applyConfig documents) answers
 * a typed INVALID_VALUE naming the field and stores nothing; MAX_USD itself is still taken. Both dialects.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_USD } from '../../data-plane/snapshot/budget-window.js';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { openTestDatabase, testDialects, type TestDatabase } from '../support/db.js';

interface Payload {
  errors: Array<{ code: string; field: string | null; message: string }>;
}

describe.each(testDialects)('USD amounts on %s', (dialect) => {
  let testDb: TestDatabase | undefined;
  let cp: TestControlPlane;
  let userId = '';
  let keyId = '';

  beforeAll(async () => {
    if (dialect === 'postgres') testDb = await openTestDatabase('postgres');
    cp = await startTestControlPlane(testDb ? { databaseUrl: testDb.url, databaseSchema: testDb.searchPath } : {});
    await cp.gql('mutation { createMcpServer(input: {name: "crm", connectionType: HTTP, connectionString: "http://127.0.0.1:9/mcp", authType: NONE, toolsToExecute: ["*"]}) { errors { code } } }');
    userId = (await cp.gql<{ createUser: { user: { id: string } } }>('mutation { createUser(input: {email: "dev@example.com"}) { user { id } } }')).createUser.user.id;
    keyId = (await cp.gql<{ createVirtualKey: { virtualKey: { id: string } } }>('mutation($u: ID!) { createVirtualKey(input: {name: "k", userId: $u, servers: [{server: "crm", tools: ["*"]}]}) { virtualKey { id } } }', { u: userId })).createVirtualKey.virtualKey.id;
  }, 60_000);
  afterAll(async () => {
    await cp?.close();
    await testDb?.close();
  });

  /** Every way a USD amount comes in, each returning its payload's errors. */
  const entries: Array<[string, (usd: number) => Promise<Payload>]> = [
    ['updateVirtualKey budgets', async (usd) => (await cp.gql<{ p: Payload }>('mutation($id: ID!, $v: Float!) { p: updateVirtualKey(input: {id: $id, budgets: [{maxUsd: $v, period: DAILY}]}) { errors { code field message } } }', { id: keyId, v: usd })).p],
    ['setUserBudgets', async (usd) => (await cp.gql<{ p: Payload }>('mutation($u: ID!, $v: Float!) { p: setUserBudgets(input: {userId: $u, budgets: [{maxUsd: $v, period: WEEKLY}]}) { errors { code field message } } }', { u: userId, v: usd })).p],
    ['createAccessProfile budgets', async (usd) => (await cp.gql<{ p: Payload }>('mutation($n: String!, $v: Float!) { p: createAccessProfile(input: {name: $n, servers: [{server: "crm", tools: ["*"]}], budgets: [{maxUsd: $v, period: MONTHLY}]}) { errors { code field message } } }', { n: `p${Math.random().toString(36).slice(2)}`, v: usd })).p],
    ['upsertProvider prices', async (usd) => (await cp.gql<{ p: Payload }>('mutation($v: Float!) { p: upsertProvider(input: {name: "anthropic", baseUrl: "https://api.anthropic.com", apiKey: "env.ANTHROPIC_API_KEY", prices: [{model: "claude-*", inputPerMTok: 1, outputPerMTok: $v, cacheWritePerMTok: 1, cacheReadPerMTok: 1}]}) { errors { code field message } } }', { v: usd })).p],
    ['setToolPricing', async (usd) => (await cp.gql<{ p: Payload }>('mutation($v: Float!) { p: setToolPricing(input: {server: "crm", prices: [{tool: "search", usdPerCall: $v}]}) { errors { code field message } } }', { v: usd })).p],
    ['applyConfig key budget', async (usd) => (await cp.gql<{ p: Payload }>('mutation($d: JSON!) { p: applyConfig(document: $d) { errors { code field message } } }', { d: { users: [{ email: 'dev@example.com' }], virtual_keys: [{ name: 'doc-key', user: 'dev@example.com', mcp_servers: [{ server: 'crm', tools: ['*'] }], budget: { daily_usd: usd } }] } })).p],
    ['applyConfig provider prices', async (usd) => (await cp.gql<{ p: Payload }>('mutation($d: JSON!) { p: applyConfig(document: $d) { errors { code field message } } }', { d: { providers: [{ name: 'anthropic', base_url: 'https://api.anthropic.com', api_key: 'env.ANTHROPIC_API_KEY', prices: [{ model: 'claude-*', input_per_mtok: usd, output_per_mtok: 1, cache_write_per_mtok: 1, cache_read_per_mtok: 1 }] }] } })).p],
  ];

  it.each(entries)('%s: an amount above MAX_USD is a typed INVALID_VALUE, MAX_USD is taken', async (_label, enter) => {
    for (const usd of [1e308, 1e12, MAX_USD * 1.0000001]) {
      const payload = await enter(usd);
      expect(payload.errors.map((e) => e.code)).toContain('INVALID_VALUE');
      expect(payload.errors.some((e) => e.message.includes(String(MAX_USD)))).toBe(true);
    }
    expect((await enter(MAX_USD)).errors).toEqual([]);
  });

  it('nothing above MAX_USD was stored', async () => {
    const stored = JSON.stringify(await cp.gql('{ exportConfig }'));
    expect(stored).not.toMatch(/e\+|1000000000000|1000000\.1/);
  });
});
