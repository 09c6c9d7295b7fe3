/**
 * Concurrent `/anthropic` calls cannot overspend a budget (data-plane/anthropic + data-plane/limits): each
 * call's cost bound (prompt bytes and `max_tokens` at the model's prices) is reserved at admission in the
 * same atomic decision as the budget check, and its settle replaces it with the priced usage. Against the
 * Anthropic Messages API stand-in, in process (one node, in-process counters) and on three nodes sharing
 * Redis (TEST_REDIS_URL): calls held in flight together are admitted only while their bounds fit (a budget
 * is crossed by at most one call; the others are told to retry, 429, since nothing is spent yet), JSON and
 * streamed answers alike; 402 once the spend itself reaches the budget; the reservation is given back when the
 * call costs less, when the provider refuses it, when it cannot be reached and when the caller leaves first;
 * what is reported as spend (and what the counters hold in the end) is the priced usage, never the bound.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { costBoundNanos, tokenBound } from '../../../data-plane/anthropic/pricing.js';
import { RuntimeHolder } from '../../../data-plane/config/runtime.js';
import { counterKeys } from '../../../data-plane/limits/counters.js';
import { createLimiter, type GovernanceLimiter, type SpendEvent } from '../../../data-plane/limits/limiter.js';
import { RedisCounterStore } from '../../../data-plane/limits/redis-store.js';
import { createLogger } from '../../../data-plane/log.js';
import { createDataPlaneServer } from '../../../data-plane/node/data-plane-server.js';
import { budgetWindowStart } from '../../../data-plane/snapshot/budget-window.js';
import type { RequestRecord } from '../../../data-plane/pipeline/context.js';
import type { KeyEntry } from '../../../data-plane/snapshot/schema.js';
import { UpstreamPool } from '../../../data-plane/upstream/pool.js';
import { expectedNanos, startAnthropicStandIn, type AnthropicStandIn, type RecordedRequest } from '../../support/anthropic-stand-in.js';
import { llmKey, providerRuntime } from '../../support/provider-runtime.js';
import { waitFor } from '../../support/wait.js';

const redisUrl = process.env.TEST_REDIS_URL;
const PRICE = { model: 'claude-*', inputPerMTok: 3, outputPerMTok: 15, cacheWritePerMTok: 3.75, cacheReadPerMTok: 0.3 };
// A prompt of some size, so the bound is a few times one call's real cost (not dominated by its fixed allowance).
const PROMPT = 'Summarise the budget rules of the gateway. '.repeat(500);
const bodyOf = (stream: boolean): string => JSON.stringify({ model: 'claude-sonnet-4-5', max_tokens: 64, stream, messages: [{ role: 'user', content: PROMPT }] });
/** What the gateway reserves for one call (the larger of the streamed and JSON bodies). */
const BOUND = Math.max(...[true, false].map((s) => costBoundNanos(PRICE, tokenBound(JSON.parse(bodyOf(s)), Buffer.byteLength(bodyOf(s))))));
const priced = (r: RecordedRequest): number => expectedNanos(PRICE, r.usage!);

/** A key with a daily budget of `nanos`, under a fresh id (Redis counters outlive a test run). */
function budgetKey(nanos: number): { entry: KeyEntry; token: string } {
  const id = randomUUID();
  const token = `gk_${id.replaceAll('-', '')}reservationTestKey`;
  return {
    token,
    entry: llmKey(id, token, { limits: { budgets: [{ maxUsd: nanos / 1e9, period: 'DAILY' }], rateLimit: null, fallback: 'FAIL_CLOSED' } }),
  };
}

const keys = {
  burst: budgetKey(Math.floor(2.5 * BOUND)),
  loop: budgetKey(3 * BOUND),
  sequential: budgetKey(Math.floor(BOUND / 2)),
  failures: budgetKey(Math.floor(BOUND / 2)),
};

interface TestNode {
  url: string;
  server: Server;
}

async function listen(server: Server): Promise<TestNode> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

const modes = [
  { name: 'in process (one node, in-process counters)', nodes: 1, redis: false },
  { name: 'three nodes sharing Redis', nodes: 3, redis: true },
] as const;

describe.each(modes)('/anthropic budget reservations: $name', (mode) => {
  const skip = mode.redis && !redisUrl;
  let standIn: AnthropicStandIn;
  /** Every answer is held until `open()`; open by default. */
  let gate: Promise<void> = Promise.resolve();
  const nodes: TestNode[] = [];
  /** A node whose provider cannot be reached (a port nobody listens on), sharing the counters. */
  let deadEnd: TestNode;
  const limiters: GovernanceLimiter[] = [];
  const events: SpendEvent[] = [];
  const records: RequestRecord[] = [];
  let reader: RedisCounterStore | null = null;

  beforeAll(async () => {
    if (skip) return;
    standIn = await startAnthropicStandIn({ toolName: 'x', toolInput: {}, hold: () => gate });
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
    const closedUrl = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
    await new Promise((r) => closed.close(r));

    const runtime = (providerUrl: string) => providerRuntime({ baseUrl: providerUrl, apiKey: 'sk-ant-reservation-test', keys: Object.values(keys).map((k) => k.entry), prices: [PRICE] });
    const logger = createLogger('test-reservation', { level: 'silent' });
    const nodeOn = async (providerUrl: string, limiter: GovernanceLimiter): Promise<TestNode> => {
      const holder = new RuntimeHolder();
      holder.set(runtime(providerUrl));
      return listen(createDataPlaneServer({ holder, pool: new UpstreamPool({ holder, logger }), logger, limiter, onRecord: (r) => records.push(r) }));
    };
    const spendSink = { report: (e: SpendEvent) => events.push(e) };
    for (let i = 0; i < mode.nodes; i++) {
      let limiter: GovernanceLimiter;
      if (mode.redis) {
        const store = new RedisCounterStore(redisUrl!);
        await store.ready();
        limiter = createLimiter({ store, spendSink });
      } else limiter = createLimiter({ spendSink });
      limiters.push(limiter);
      nodes.push(await nodeOn(standIn.url, limiter));
    }
    // In process it is the same node's counters; with Redis, another node's.
    let deadEndLimiter = limiters[0]!;
    if (mode.redis) {
      const store = new RedisCounterStore(redisUrl!);
      await store.ready();
      limiters.push((deadEndLimiter = createLimiter({ store, spendSink })));
    }
    deadEnd = await nodeOn(closedUrl, deadEndLimiter);
    if (mode.redis) {
      reader = new RedisCounterStore(redisUrl!);
      await reader.ready();
    }
  });

  afterAll(async () => {
    for (const n of [...nodes, deadEnd]) {
      if (!n) continue;
      n.server.closeAllConnections();
      await new Promise((r) => n.server.close(r));
    }
    for (const l of limiters) await l.close();
    await reader?.close();
    await standIn?.close();
  });

  const call = (node: TestNode, token: string, body: string, signal?: AbortSignal): Promise<Response> =>
    fetch(`${node.url}/anthropic/v1/messages`, { method: 'POST', headers: { 'x-api-key': token, 'content-type': 'application/json' }, body, ...(signal ? { signal } : {}) });
  const eventsOf = (key: { entry: KeyEntry }): SpendEvent[] => events.filter((e) => e.keyId === key.entry.id);
  const counter = async (key: { entry: KeyEntry }): Promise<number> => Number(await reader!.redis.hget(counterKeys.budget(key.entry.id, 'DAILY', budgetWindowStart('DAILY', Date.now())), 'n'));
  /** Every answered call of the key reported, and (Redis) its counter holding exactly their cost: nothing reserved is left. */
  async function settled(key: { entry: KeyEntry }, answered: number): Promise<number> {
    await waitFor(() => eventsOf(key).length === answered, { what: `${answered} spend reports` });
    const spent = eventsOf(key).reduce((n, e) => n + e.costNanos, 0);
    if (reader) await waitFor(async () => (await counter(key)) === spent, { what: 'Redis counter = reported spend' });
    return spent;
  }

  it.skipIf(skip)('calls held in flight together are admitted only while their bounds fit: the budget is crossed by at most one call', async () => {
    let open!: () => void;
    gate = new Promise((r) => (open = r));
    const before = standIn.requests.length;
    const statuses: number[] = [];
    // 24 calls at once on every node, half of them streamed; none is answered before all are decided.
    const calls = Array.from({ length: 24 }, async (_, i) => {
      const r = await call(nodes[i % nodes.length]!, keys.burst.token, bodyOf(i % 2 === 0));
      statuses.push(r.status);
      const text = await r.text();
      // Nothing is spent yet, only held by the calls in flight: retry later (429), not 402.
      if (r.status === 429) {
        expect(JSON.parse(text)).toMatchObject({ type: 'rate_limited', message: expect.stringContaining('held by calls still running') });
        expect(r.headers.get('retry-after')).toBe('2');
      }
      return r.status;
    });
    // 2.5 bounds of budget: admitted at 0, 1 and 2 bounds reserved; the 4th and every later call see 3 > 2.5.
    await waitFor(() => statuses.length === 21 && standIn.requests.length - before === 3, { what: '21 refusals and 3 calls at the provider' });
    expect(statuses.every((s) => s === 429)).toBe(true);
    open();
    const all = await Promise.all(calls);
    gate = Promise.resolve();
    expect(all.filter((s) => s === 200)).toHaveLength(3);
    expect(all.filter((s) => s === 429)).toHaveLength(21);
    const answered = standIn.requests.slice(before);
    expect(answered).toHaveLength(3);
    // Spend is what the provider's usage priced to, not what was reserved.
    // Spend (reports and counters) is what the provider's usage priced to, not what was reserved.
    expect(await settled(keys.burst, 3)).toBe(answered.reduce((n, r) => n + priced(r), 0));
    // The rest of each reservation was given back: the next call fits again.
    const next = await call(nodes[0]!, keys.burst.token, bodyOf(true));
    await next.text();
    expect(next.status).toBe(200);
  });

  it.skipIf(skip)('workers calling until refused, JSON and streamed: spend ends between the budget and one bound over it, all of it reported', async () => {
    const before = standIn.requests.length;
    const maxUsd = 3 * BOUND;
    let refused = 0;
    let held = 0;
    await Promise.all(
      Array.from({ length: 12 }, async (_, w) => {
        for (let i = 0; ; i++) {
          const r = await call(nodes[w % nodes.length]!, keys.loop.token, bodyOf((w + i) % 2 === 0));
          await r.text();
          if (r.status === 402) {
            refused++;
            return;
          }
          if (r.status === 429) {
            // Held by calls in flight: retry as a client would (a short back-off instead of Retry-After's 2 s).
            held++;
            await new Promise((resolve) => setTimeout(resolve, 5));
            continue;
          }
          expect(r.status).toBe(200);
        }
      }),
    );
    // 402 only once the settled spend itself reached the budget.
    expect(refused).toBe(12);
    expect(held).toBeGreaterThan(0);
    const answered = standIn.requests.slice(before);
    expect(answered.some((r) => r.stream) && answered.some((r) => !r.stream)).toBe(true);
    const total = answered.reduce((n, r) => n + priced(r), 0);
    expect(await settled(keys.loop, answered.length)).toBe(total);
    expect(total).toBeGreaterThanOrEqual(maxUsd);
    expect(total).toBeLessThanOrEqual(maxUsd + BOUND);
  });

  it.skipIf(skip)('a call that costs less than its bound gives the rest back: a budget under one bound serves calls until their real cost reaches it', async () => {
    const before = standIn.requests.length;
    let admitted = 0;
    for (let i = 0; i < 50; i++) {
      const r = await call(nodes[i % nodes.length]!, keys.sequential.token, bodyOf(i % 2 === 0));
      await r.text();
      if (r.status === 402) break;
      expect(r.status).toBe(200);
      admitted++;
      // With Redis, the next node must see this settle (it reaches Redis just after the answer).
      await settled(keys.sequential, admitted);
    }
    const cost = priced(standIn.requests[before]!);
    // Without the give-back the first call's bound alone (more than the budget) would refuse the second.
    expect(admitted).toBe(Math.ceil(Math.floor(BOUND / 2) / cost));
    expect(admitted).toBeGreaterThan(1);
  });

  it.skipIf(skip)('a call the provider refuses, one it cannot reach and one whose caller leaves before the answer give their whole reservation back', async () => {
    const before = standIn.requests.length;
    // The stand-in refuses a body without messages (400): nothing to charge.
    const refusedUpstream = await call(nodes[0]!, keys.failures.token, JSON.stringify({ model: 'claude-sonnet-4-5', max_tokens: 64, note: PROMPT }));
    expect(refusedUpstream.status).toBe(400);
    await refusedUpstream.text();
    // A node whose provider is not listening: 502-class provider_error.
    const unreachable = await call(deadEnd, keys.failures.token, bodyOf(true));
    expect(((await unreachable.json()) as { type: string }).type).toBe('provider_error');
    // The caller leaves while the provider holds the answer.
    let open!: () => void;
    gate = new Promise((r) => (open = r));
    const caller = new AbortController();
    const leaving = call(nodes[nodes.length - 1]!, keys.failures.token, bodyOf(true), caller.signal).catch(() => null);
    await waitFor(() => standIn.requests.length - before === 2, { what: 'the held call at the provider' });
    caller.abort();
    expect(await leaving).toBeNull();
    // Recorded once the node has seen the caller go (and aborted the provider request): only then does the provider answer.
    await waitFor(() => records.filter((r) => r.keyId === keys.failures.entry.id).length === 3, { what: 'the three failed calls recorded (settled)' });
    expect(records.filter((r) => r.keyId === keys.failures.entry.id).map((r) => r.reason)).toEqual([null, 'ECONNREFUSED', 'caller_gone']);
    open();
    gate = Promise.resolve();
    // Each failure alone would hold a bound (more than this budget) if it were not given back.
    expect(await settled(keys.failures, 0)).toBe(0);
    const ok = await call(nodes[0]!, keys.failures.token, bodyOf(false));
    await ok.text();
    expect(ok.status).toBe(200);
    await waitFor(() => eventsOf(keys.failures).length === 1, { what: 'one spend report' });
    expect(eventsOf(keys.failures)[0]!.costNanos).toBe(priced(standIn.requests.at(-1)!));
  });
});
