/**
 * Issue 7 acceptance: Claude Code end to end through one node, for both of its connections.
 * `ANTHROPIC_BASE_URL=<node>/anthropic` with `ANTHROPIC_AUTH_TOKEN=<virtual key>`, and the gateway as its
 * MCP server with the same key. The Messages API stand-in (streaming SSE, usage with cache tokens)
 * answers with a tool_use; Claude Code calls the tool through /mcp and finishes. The stand-in saw the
 * provider key on every request and never the virtual key; the key's spend in GraphQL equals the priced
 * usage exactly. After the budget is spent, a second run gets 402 and Claude Code shows the message.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectedNanos, startAnthropicStandIn, type AnthropicStandIn, type RecordedRequest } from '../support/anthropic-stand-in.js';
import { claudeMcpAdd, claudePrint, createClaudeHome, describeRun, type ClaudeHome } from '../support/claude-code.js';
import { startGatewayFixture, type GatewayFixture } from '../support/gateway-fixture.js';
import { spawnNode, type NodeProcess } from '../support/node-process.js';
import { waitFor } from '../support/wait.js';

const TOOL = 'mcp__gatehouse__crm_http-echo';
const PROVIDER_KEY = 'sk-ant-api03-provider-only-secret-7f3a9c';
const PRICE = { model: 'claude-*', inputPerMTok: 3, outputPerMTok: 15, cacheWritePerMTok: 3.75, cacheReadPerMTok: 0.3 };

const priced = (r: RecordedRequest): number => expectedNanos(PRICE, r.usage!);

describe('Claude Code through Gatehouse for the model and the tools', () => {
  let gw: GatewayFixture;
  let node: NodeProcess;
  let standIn: AnthropicStandIn;
  let home: ClaudeHome;
  let key: string;
  let keyId: string;

  beforeAll(async () => {
    gw = await startGatewayFixture('sqlite');
    standIn = await startAnthropicStandIn({ toolName: TOOL, toolInput: { text: 'via gatehouse' }, cacheTokens: { creation: 300, read: 4096 } });
    const provider = await gw.cp.gql<{ upsertProvider: { errors: unknown[] } }>(
      `mutation($input: UpsertProviderInput!) { upsertProvider(input: $input) { errors { code field message } } }`,
      { input: { name: 'anthropic', baseUrl: standIn.url, apiKey: PROVIDER_KEY, prices: [PRICE] } },
    );
    expect(provider.upsertProvider.errors).toEqual([]);
    const created = await gw.cp.gql<{ createVirtualKey: { key: string; virtualKey: { id: string } } }>(
      `mutation($u: ID!) { createVirtualKey(input: { userId: $u, name: "claude", servers: [{ server: "crm_http", tools: ["*"] }], budgets: [{ maxUsd: 100, period: DAILY }] }) { key virtualKey { id } } }`,
      { u: gw.userId },
    );
    key = created.createVirtualKey.key;
    keyId = created.createVirtualKey.virtualKey.id;
    node = await spawnNode({ controlPlaneUrl: gw.cp.url, nodeToken: gw.cp.cp.nodeToken, env: gw.nodeEnv });
    await waitFor(async () => (await fetch(`${node.url}/anthropic/v1/models`, { headers: { authorization: `Bearer ${key}` } })).status !== 503, { what: 'provider and key on the node' });
    home = await createClaudeHome({ anthropicBaseUrl: `${node.url}/anthropic`, authToken: key });
    await claudeMcpAdd(home, 'gatehouse', `${node.url}/mcp`, { Authorization: `Bearer ${key}` });
  }, 90_000);

  afterAll(async () => {
    await home?.cleanup();
    await node?.stop();
    await standIn?.close();
    await gw?.close();
  });

  async function spendNanos(): Promise<number> {
    const r = await gw.cp.gql<{ virtualKey: { spend: { costNanoUsd: string } } }>(`query($id: ID!) { virtualKey(id: $id) { spend { costNanoUsd } } }`, { id: keyId });
    return Number(r.virtualKey.spend.costNanoUsd);
  }

  it('runs the tool round trip with the model behind the gateway, and charges exactly the priced usage', async () => {
    const run = await claudePrint(home, 'Echo "via gatehouse" with the CRM echo tool.', [TOOL]);
    const dump = describeRun(run);
    expect(run.exitCode, dump).toBe(0);
    expect(run.result?.result, dump).toContain('http:via gatehouse');

    const messages = standIn.requests.filter((r) => r.usage !== undefined);
    expect(messages.some((r) => r.stream === true), dump).toBe(true);
    expect(standIn.mainRequests().length).toBeGreaterThanOrEqual(2);
    for (const r of standIn.requests) {
      expect(r.headers['x-api-key']).toBe(PROVIDER_KEY);
      expect(r.headers.authorization).toBeUndefined();
      expect(JSON.stringify(r.headers) + r.rawBody).not.toContain(key);
    }
    const expected = messages.reduce((n, r) => n + priced(r), 0);
    await waitFor(async () => (await spendNanos()) === expected, { what: `spend of ${expected} nano-USD in GraphQL` });
  }, 120_000);

  it('a second run after the budget is spent gets 402 and Claude Code shows the message', async () => {
    const spent = await spendNanos();
    // A budget below what was already spent today.
    await gw.cp.gql(`mutation($id: ID!, $usd: Float!) { updateVirtualKey(input: { id: $id, budgets: [{ maxUsd: $usd, period: DAILY }] }) { errors { code } } }`, { id: keyId, usd: spent / 2e9 });
    await waitFor(async () => (await fetch(`${node.url}/anthropic/v1/messages`, { method: 'POST', headers: { authorization: `Bearer ${key}` }, body: JSON.stringify({ model: 'claude-x', messages: [] }) })).status === 402, { what: 'budget on the node' });
    const before = standIn.requests.length;
    const run = await claudePrint(home, 'Echo "again" with the CRM echo tool.', [TOOL], { timeoutMs: 60_000 });
    const shown = `${run.stdout}\n${run.stderr}`;
    expect(shown, describeRun(run)).toMatch(/budget exceeded/i);
    expect(standIn.requests.filter((r) => r.usage !== undefined).length).toBe(standIn.requests.slice(0, before).filter((r) => r.usage !== undefined).length);
  }, 90_000);
});
