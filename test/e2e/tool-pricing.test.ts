/**
 * MCP `toolPricing` (issue 7): a per-call price on a server's tool is charged to the same budgets as LLM
 * usage. With echo at $0.25 and a $1 daily budget, four tools/call succeed through /mcp, the fifth is
 * JSON-RPC -32005 budget_exceeded, and the key's spend in GraphQL is exactly $1; bad prices are user errors.
 * A user's budget caps the spend of all of the user's keys together.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNode, type DataPlaneNode } from '../../data-plane/node/node.js';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { postMcp } from '../support/mcp-http.js';
import { startHttpUpstream, type HttpUpstream } from '../support/upstreams.js';
import { waitFor } from '../support/wait.js';

describe('MCP tool pricing charged to budgets', () => {
  let cp: TestControlPlane;
  let upstream: HttpUpstream;
  let node: DataPlaneNode;

  beforeAll(async () => {
    cp = await startTestControlPlane();
    upstream = await startHttpUpstream({ label: 'priced' });
    await cp.gql(`mutation($url: String!) { createMcpServer(input: { name: "priced", connectionType: HTTP, connectionString: $url, toolsToExecute: ["*"] }) { errors { code } } }`, { url: upstream.url });
    node = await startNode({ controlPlaneUrl: cp.url, nodeToken: cp.cp.nodeToken, port: 0, nodeId: `pricing-${Date.now()}`, stateDir: null });
  }, 60_000);

  afterAll(async () => {
    await node?.close();
    await upstream?.close();
    await cp?.close();
  });

  it('refuses bad prices, and charges each priced call until the budget is spent', async () => {
    const bad = await cp.gql<{ setToolPricing: { errors: Array<{ field: string; code: string }> } }>(
      `mutation { setToolPricing(input: { server: "priced", prices: [{ tool: "echo", usdPerCall: -1 }, { tool: "", usdPerCall: 1 }] }) { errors { field code } } }`,
    );
    expect(bad.setToolPricing.errors).toEqual([
      { field: 'input.prices.0.usdPerCall', code: 'INVALID_VALUE' },
      { field: 'input.prices.1.tool', code: 'INVALID_VALUE' },
    ]);
    const set = await cp.gql<{ setToolPricing: { mcpServer: { toolPricing: unknown }; errors: unknown[] } }>(
      `mutation { setToolPricing(input: { server: "priced", prices: [{ tool: "echo", usdPerCall: 0.25 }] }) { mcpServer { toolPricing { tool usdPerCall } } errors { field code } } }`,
    );
    expect(set.setToolPricing).toEqual({ mcpServer: { toolPricing: [{ tool: 'echo', usdPerCall: 0.25 }] }, errors: [] });

    const user = await cp.gql<{ createUser: { user: { id: string } } }>(`mutation { createUser(input: { email: "priced@example.com" }) { user { id } } }`);
    const created = await cp.gql<{ createVirtualKey: { key: string; virtualKey: { id: string } } }>(
      `mutation($u: ID!) { createVirtualKey(input: { userId: $u, name: "p", servers: [{ server: "priced", tools: ["*"] }], budgets: [{ maxUsd: 1, period: DAILY }] }) { key virtualKey { id } } }`,
      { u: user.createUser.user.id },
    );
    const key = created.createVirtualKey.key;
    await waitFor(async () => (await postMcp(node.url, key, { id: 0, method: 'ping' })).status === 200, { what: 'key on node' });

    const codes: Array<number | null> = [];
    for (let i = 0; i < 6; i++) {
      const r = await postMcp(node.url, key, { id: i + 1, method: 'tools/call', params: { name: 'priced-echo', arguments: { text: String(i) } } });
      const body = r.body as { result?: unknown; error?: { code: number; data?: { type?: string } } };
      codes.push(body.error ? body.error.code : null);
      if (i === 5) expect(body.error?.data?.type).toBe('budget_exceeded');
    }
    expect(codes).toEqual([null, null, null, null, -32005, -32005]);
    await waitFor(
      async () => {
        const r = await cp.gql<{ virtualKey: { spend: { costNanoUsd: string; requests: number } } }>(`query($id: ID!) { virtualKey(id: $id) { spend { costNanoUsd requests } } }`, { id: created.createVirtualKey.virtualKey.id });
        return r.virtualKey.spend.costNanoUsd === '1000000000' && r.virtualKey.spend.requests === 4;
      },
      { what: 'spend of exactly $1 over 4 calls' },
    );
  });

  it('a user budget caps all of the user\'s keys together', async () => {
    const user = await cp.gql<{ createUser: { user: { id: string } } }>(`mutation { createUser(input: { email: "two-keys@example.com" }) { user { id } } }`);
    const u = user.createUser.user.id;
    const set = await cp.gql<{ setUserBudgets: { user: { budgets: unknown }; errors: unknown[] } }>(
      `mutation($u: ID!) { setUserBudgets(input: { userId: $u, budgets: [{ maxUsd: 0.5, period: DAILY }] }) { user { budgets { maxUsd period } } errors { field code } } }`,
      { u },
    );
    expect(set.setUserBudgets).toEqual({ user: { budgets: [{ maxUsd: 0.5, period: 'DAILY' }] }, errors: [] });
    const keys: string[] = [];
    for (const name of ['a', 'b']) {
      const created = await cp.gql<{ createVirtualKey: { key: string } }>(
        `mutation($u: ID!, $n: String!) { createVirtualKey(input: { userId: $u, name: $n, servers: [{ server: "priced", tools: ["*"] }] }) { key } }`,
        { u, n: name },
      );
      keys.push(created.createVirtualKey.key);
    }
    for (const key of keys) await waitFor(async () => (await postMcp(node.url, key, { id: 0, method: 'ping' })).status === 200, { what: 'key on node' });
    const call = async (key: string) =>
      (await postMcp(node.url, key, { id: 1, method: 'tools/call', params: { name: 'priced-echo', arguments: { text: 'x' } } })).body as { result?: unknown; error?: { code: number; message: string } };
    expect((await call(keys[0]!)).result).toBeDefined();
    expect((await call(keys[1]!)).result).toBeDefined();
    const refused = await call(keys[0]!);
    expect(refused.error?.code).toBe(-32005);
    expect(refused.error?.message).toContain('for this user');
    expect((await call(keys[1]!)).error?.code).toBe(-32005);
    await waitFor(
      async () => {
        const r = await cp.gql<{ user: { budgetUsage: Array<{ spentUsd: number }>; spend: { costNanoUsd: string } } }>(`query($u: ID!) { user(id: $u) { budgetUsage { spentUsd } spend { costNanoUsd } } }`, { u });
        return r.user.spend.costNanoUsd === '500000000' && r.user.budgetUsage[0]?.spentUsd === 0.5;
      },
      { what: 'user spend of $0.50' },
    );
  });
});
