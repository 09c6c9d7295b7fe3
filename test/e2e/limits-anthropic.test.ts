/**
 * Issue 7 acceptance, budgets across nodes: three nodes sharing one Redis serve `/anthropic` for one key
 * with a budget under concurrent load, JSON and streamed; each call's cost bound is reserved at admission,
 * so the spend that gets through is at most the budget plus one call's bound, and the spend persisted by
 * the control plane equals the priced usage of every call the provider answered (not the reservations). Then Redis is stopped and restarted mid-run: a
 * FAIL_CLOSED key is refused (503 limits_unavailable) on every node while it is down, a LOCAL_ALLOWANCE key
 * keeps working from each node's bounded local share, both work again after the restart, and no spend is
 * lost (GraphQL spend = priced usage of every answered call).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { costBoundNanos, tokenBound } from '../../data-plane/anthropic/pricing.js';
import { startNode, type DataPlaneNode } from '../../data-plane/node/node.js';
import { expectedNanos, startAnthropicStandIn, type AnthropicStandIn, type RecordedRequest } from '../support/anthropic-stand-in.js';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { startRedisProcess, type RedisProcess } from '../support/redis-process.js';
import { waitFor } from '../support/wait.js';

const PRICE = { model: 'claude-*', inputPerMTok: 3, outputPerMTok: 15, cacheWritePerMTok: 3.75, cacheReadPerMTok: 0.3 };
const bodyOf = (stream: boolean): string => JSON.stringify({ model: 'claude-sonnet-4-5', max_tokens: 10, stream, messages: [{ role: 'user', content: 'hi' }] });
const body = bodyOf(false);
/** What a node reserves for one call (the larger of the two bodies). */
const BOUND = Math.max(...[true, false].map((s) => costBoundNanos(PRICE, tokenBound(JSON.parse(bodyOf(s)), Buffer.byteLength(bodyOf(s))))));

const priced = (r: RecordedRequest): number => expectedNanos(PRICE, r.usage!);

describe('budgets on /anthropic across three nodes sharing Redis', () => {
  let redis: RedisProcess;
  let cp: TestControlPlane;
  let standIn: AnthropicStandIn;
  const nodes: DataPlaneNode[] = [];
  let userId: string;

  beforeAll(async () => {
    redis = await startRedisProcess();
    cp = await startTestControlPlane();
    standIn = await startAnthropicStandIn({ toolName: 'x', toolInput: {}, cacheTokens: { creation: 100, read: 4000 } });
    await cp.gql(`mutation($u: String!) { upsertProvider(input: { name: "anthropic", baseUrl: $u, apiKey: "sk-ant-budget-test-provider-key", prices: [{ model: "claude-*", inputPerMTok: 3, outputPerMTok: 15, cacheWritePerMTok: 3.75, cacheReadPerMTok: 0.3 }] }) { errors { code } } }`, { u: standIn.url });
    userId = (await cp.gql<{ createUser: { user: { id: string } } }>(`mutation { createUser(input: { email: "budget@example.com" }) { user { id } } }`)).createUser.user.id;
    for (let i = 0; i < 3; i++) nodes.push(await startNode({ controlPlaneUrl: cp.url, nodeToken: cp.cp.nodeToken, port: 0, nodeId: `budget-${i}-${Date.now()}`, stateDir: null, redisUrl: redis.url }));
  }, 60_000);

  afterAll(async () => {
    for (const node of nodes) await node.close();
    await standIn?.close();
    await cp?.close();
    await redis?.stop();
  });

  async function key(limits: string): Promise<{ id: string; key: string }> {
    const r = await cp.gql<{ createVirtualKey: { key: string; virtualKey: { id: string } } }>(
      `mutation($u: ID!) { createVirtualKey(input: { userId: $u, name: "k${Math.random()}", servers: [], allowNoServers: true, ${limits} }) { key virtualKey { id } } }`,
      { u: userId },
    );
    const k = { id: r.createVirtualKey.virtualKey.id, key: r.createVirtualKey.key };
    for (const node of nodes) await waitFor(async () => (await fetch(`${node.url}/anthropic/v1/models`, { headers: { 'x-api-key': k.key } })).status === 404, { what: 'key and provider on node' });
    return k;
  }

  async function spendNanos(id: string): Promise<number> {
    const r = await cp.gql<{ virtualKey: { spend: { costNanoUsd: string } } }>(`query($id: ID!) { virtualKey(id: $id) { spend { costNanoUsd } } }`, { id });
    return Number(r.virtualKey.spend.costNanoUsd);
  }

  const call = (node: DataPlaneNode, k: string, stream = false) =>
    fetch(`${node.url}/anthropic/v1/messages`, { method: 'POST', headers: { 'x-api-key': k, 'content-type': 'application/json' }, body: stream ? bodyOf(true) : body });

  it('lets through at most the budget plus one call, and persists exactly what was priced', async () => {
    const k = await key('budgets: [{ maxUsd: 0.03, period: DAILY }]');
    const before = standIn.requests.length;
    let refused = 0;
    // Two workers per node, one streaming, each calling until refused.
    await Promise.all(
      nodes.flatMap((node) =>
        [false, true].map(async (stream) => {
          for (;;) {
            const r = await call(node, k.key, stream);
            await r.arrayBuffer();
            if (r.status === 402) {
              refused++;
              return;
            }
            // 429: the budget is held by calls in flight (not spent): retry, with a short back-off.
            if (r.status === 429) await new Promise((resolve) => setTimeout(resolve, 5));
            else expect(r.status).toBe(200);
          }
        }),
      ),
    );
    // 402 only once the settled spend itself reached the budget, on every node.
    expect(refused).toBe(6);
    const answered = standIn.requests.slice(before).filter((r) => r.usage !== undefined);
    expect(answered.some((r) => r.stream) && answered.some((r) => !r.stream)).toBe(true);
    const total = answered.reduce((n, r) => n + priced(r), 0);
    expect(total).toBeGreaterThanOrEqual(30_000_000);
    expect(total).toBeLessThanOrEqual(30_000_000 + BOUND);
    await waitFor(async () => (await spendNanos(k.id)) === total, { what: 'persisted spend = priced usage' });
  }, 60_000);

  it('with Redis stopped and restarted mid-run: FAIL_CLOSED refuses, LOCAL_ALLOWANCE serves, no spend is lost', async () => {
    const closed = await key('budgets: [{ maxUsd: 10, period: DAILY }], limitsFallback: FAIL_CLOSED');
    const open = await key('budgets: [{ maxUsd: 10, period: DAILY }], rateLimit: { requestsPerMinute: 40 }, limitsFallback: LOCAL_ALLOWANCE');
    const charged = new Map<string, number>([[closed.id, 0], [open.id, 0]]);
    const run = async (node: DataPlaneNode, k: { id: string; key: string }): Promise<number> => {
      const r = await call(node, k.key);
      await r.arrayBuffer();
      if (r.status === 200) charged.set(k.id, (charged.get(k.id) ?? 0) + priced(standIn.requests.at(-1)!));
      return r.status;
    };
    for (const node of nodes) {
      expect(await run(node, closed)).toBe(200);
      expect(await run(node, open)).toBe(200);
    }

    await redis.stop();
    for (const node of nodes) {
      const r = await call(node, closed.key);
      expect(r.status).toBe(503);
      expect(((await r.json()) as { type: string }).type).toBe('limits_unavailable');
      expect(r.headers.get('retry-after')).toBe('1');
      // Each node admits a quarter of 40 rpm (10) from its own counters while Redis is down.
      for (let i = 0; i < 3; i++) expect(await run(node, open)).toBe(200);
    }

    await redis.start();
    for (const node of nodes) await waitFor(async () => (await run(node, closed)) === 200, { what: 'FAIL_CLOSED key served again', timeoutMs: 15_000 });
    for (const node of nodes) expect(await run(node, open)).toBe(200);
    for (const [id, nanos] of charged) await waitFor(async () => (await spendNanos(id)) === nanos, { what: `no spend lost for ${id}` });
  }, 60_000);
});
