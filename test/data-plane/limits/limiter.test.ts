/**
 * The Limiter (data-plane/limits) against real Redis (TEST_REDIS_URL) and in-process: requests per minute
 * exact across three nodes sharing Redis under concurrent admits; a priced tool call's price reserved at
 * admission, so concurrent calls cross a budget by at most one call; an LLM call's cost bound reserved the
 * same way and settled to its real cost (the rest given back, in each store only what that store holds, so a
 * Redis restart between admit and settle never leaves a counter below the spend); a call without a bound
 * charged at settle, never more than the cap plus the requests in flight at the crossing; a settle counted
 * once; counters seeded from persisted spend; and with Redis stopped and restarted mid-run, FAIL_CLOSED
 * refuses, LOCAL_ALLOWANCE admits a bounded share, and settles made while it was down are replayed (no
 * spend lost).
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RuntimeKey } from '../../../data-plane/config/runtime.js';
import { GatewayError } from '../../../data-plane/errors.js';
import { counterKeys } from '../../../data-plane/limits/counters.js';
import { createLimiter, type GovernanceLimiter, type SpendEvent } from '../../../data-plane/limits/limiter.js';
import { RedisCounterStore } from '../../../data-plane/limits/redis-store.js';
import type { Admission, LimitSubject } from '../../../data-plane/pipeline/limits.js';
import { budgetWindowStart } from '../../../data-plane/snapshot/budget-window.js';
import type { KeyLimitsEntry } from '../../../data-plane/snapshot/schema.js';
import { startRedisProcess, type RedisProcess } from '../../support/redis-process.js';

const redisUrl = process.env.TEST_REDIS_URL;

function subjectFor(limits: KeyLimitsEntry | null, keyId = randomUUID()): LimitSubject {
  const user = { id: `user-${keyId}`, email: 'u@example.com' };
  const key: RuntimeKey = { id: keyId, name: 'k', hash: 'h', user, revoked: false, expiresAtMs: null, tools: new Map(), limits };
  return { route: 'mcp', caller: { key, user, token: 'gk_x' }, method: 'tools/call', server: 's', tool: 't' };
}

/** An `/anthropic` call whose route bounded its cost at `boundUsd` (reserved at admission). */
function llmSubjectFor(limits: KeyLimitsEntry, boundUsd: number, keyId = randomUUID()): LimitSubject {
  return { ...subjectFor(limits, keyId), route: 'anthropic', method: 'POST /v1/messages', server: 'anthropic', tool: null, maxCostNanos: Math.round(boundUsd * 1e9) };
}

const rpm = (n: number, fallback: KeyLimitsEntry['fallback'] = 'FAIL_CLOSED'): KeyLimitsEntry => ({ budgets: [], rateLimit: { requestsPerMinute: n, tokensPerMinute: null }, fallback });
const dailyBudget = (usd: number, fallback: KeyLimitsEntry['fallback'] = 'FAIL_CLOSED'): KeyLimitsEntry => ({ budgets: [{ maxUsd: usd, period: 'DAILY' }], rateLimit: null, fallback });

function isAdmission(x: Admission | GatewayError): x is Admission {
  return !(x instanceof GatewayError);
}

/**
 * A priced tool's calls all admitted at once, settled only after every admission was decided (the worst
 * case: nothing charged yet at settle time): the ones that got through.
 */
async function concurrentPricedCalls(limiters: readonly GovernanceLimiter[], subject: LimitSubject, calls: number): Promise<Admission[]> {
  const results = await Promise.all(Array.from({ length: calls }, (_, i) => limiters[i % limiters.length]!.admit(subject)));
  const refused = results.filter((r): r is GatewayError => r instanceof GatewayError);
  // Nothing settled yet: the budget is held by the admitted calls' reservations, not spent (429, retry).
  expect(refused.every((r) => r.code === 'rate_limited' && r.reason === 'budget_held' && r.headers?.['retry-after'] === '2')).toBe(true);
  const admitted = results.filter(isAdmission);
  for (const a of admitted) a.settle(null);
  return admitted;
}

describe('in-process limiter (the embedded default)', () => {
  it('admits exactly N requests per minute and answers rate_limited with Retry-After', async () => {
    const limiter = createLimiter();
    const subject = subjectFor(rpm(5));
    const results = await Promise.all(Array.from({ length: 12 }, () => limiter.admit(subject)));
    expect(results.filter(isAdmission)).toHaveLength(5);
    const refused = results.filter((r): r is GatewayError => r instanceof GatewayError);
    expect(refused.every((r) => r.code === 'rate_limited' && Number(r.headers?.['retry-after']) >= 1)).toBe(true);
    await limiter.close();
  });

  it("reserves a priced tool call's price at admission: concurrent calls cross the budget by at most one call", async () => {
    const events: SpendEvent[] = [];
    const limiter = createLimiter({ spendSink: { report: (e) => events.push(e) }, toolPrice: () => 0.07 });
    const subject = subjectFor(dailyBudget(1));
    // $1 at $0.07 a call: admitted while under the cap, so the 15th (at $0.98) is the last.
    expect(await concurrentPricedCalls([limiter], subject, 40)).toHaveLength(15);
    expect(events).toHaveLength(15);
    expect(events.every((e) => e.costNanos === 70_000_000)).toBe(true);
    // Settling charged nothing twice: the next call is refused, and so is every later one.
    const next = await limiter.admit(subject);
    expect(next instanceof GatewayError && next.code).toBe('budget_exceeded');
    await limiter.close();
  });

  it("reserves an LLM call's cost bound at admission and settles it to the real cost: cheaper, dearer, or nothing", async () => {
    const events: SpendEvent[] = [];
    const limiter = createLimiter({ spendSink: { report: (e) => events.push(e) } });
    const subject = llmSubjectFor(dailyBudget(1), 0.1);
    // $1 and a $0.1 bound: admitted while reservations are under the cap, so exactly 10 of 40 at once.
    const decided = await Promise.all(Array.from({ length: 40 }, () => limiter.admit(subject)));
    const first = decided.filter(isAdmission);
    expect(first).toHaveLength(10);
    // Nothing is spent yet: the others are told to retry (429), not that the budget is gone.
    expect(decided.filter((r) => r instanceof GatewayError).every((r) => r.code === 'rate_limited' && r.reason === 'budget_held' && r.status === 429)).toBe(true);
    // Each cost $0.03: $0.3 spent, the other $0.7 reserved is given back; reported is the cost, not the bound.
    for (const a of first) a.settle({ costUsd: 0.03, inputTokens: 100, outputTokens: 10, model: 'claude-x' });
    expect(events.map((e) => e.costNanos)).toEqual(Array.from({ length: 10 }, () => 30_000_000));
    const second = (await Promise.all(Array.from({ length: 40 }, () => limiter.admit(subject)))).filter(isAdmission);
    expect(second).toHaveLength(7); // at $0.3, 0.4, …, 0.9
    // One costs more than its bound (charged the excess), one ends without usage (gives it all back), the rest $0.
    second[0]!.settle({ costUsd: 0.25 });
    second[1]!.settle(null);
    for (const a of second.slice(2)) a.settle({ costUsd: 0 });
    second[1]!.settle({ costUsd: 1 }); // settled once: ignored
    // $0.55 spent: admitted at 0.55, 0.65, …, 0.95.
    expect((await Promise.all(Array.from({ length: 40 }, () => limiter.admit(subject)))).filter(isAdmission)).toHaveLength(5);
    expect(events.reduce((n, e) => n + e.costNanos, 0)).toBe(550_000_000);
    await limiter.close();
  });

  it('gives back the reservation of a call that never settles once its lease is over', async () => {
    let clock = Date.now();
    const limiter = createLimiter({ now: () => clock, reservationLeaseMs: 60_000 });
    const subject = llmSubjectFor(dailyBudget(1), 0.6);
    const lost = await limiter.admit(subject); // its node "dies": never settled
    expect(isAdmission(lost) && isAdmission(await limiter.admit(subject))).toBe(true);
    const held = await limiter.admit(subject);
    expect(held instanceof GatewayError && held.reason).toBe('budget_held');
    clock += 60_001;
    const after = await limiter.admit(subject);
    expect(isAdmission(after)).toBe(true);
    await limiter.close();
  });

  it('refuses with budget_exceeded once settled spend reaches the budget, and reports every priced call', async () => {
    const events: SpendEvent[] = [];
    const limiter = createLimiter({ spendSink: { report: (e) => events.push(e) } });
    const subject = subjectFor(dailyBudget(0.3));
    let admitted = 0;
    for (let i = 0; i < 10; i++) {
      const a = await limiter.admit(subject);
      if (!isAdmission(a)) {
        expect(a.code).toBe('budget_exceeded');
        expect(a.status).toBe(402);
        break;
      }
      admitted++;
      a.settle({ costUsd: 0.1, inputTokens: 10, outputTokens: 5 });
      a.settle({ costUsd: 0.1 }); // a second settle of one admission charges nothing
    }
    expect(admitted).toBe(3);
    expect(events.map((e) => e.costNanos)).toEqual([100_000_000, 100_000_000, 100_000_000]);
    expect(new Set(events.map((e) => e.requestId)).size).toBe(3);
    await limiter.close();
  });

  it('refuses with rate_limited once the minute\'s tokens reach tokensPerMinute (cache reads not counted)', async () => {
    const limiter = createLimiter();
    const subject = subjectFor({ budgets: [], rateLimit: { requestsPerMinute: null, tokensPerMinute: 1000 }, fallback: 'FAIL_CLOSED' });
    const first = await limiter.admit(subject);
    if (!isAdmission(first)) throw new Error('expected admission');
    first.settle({ inputTokens: 400, outputTokens: 100, cacheReadTokens: 100_000 });
    const second = await limiter.admit(subject);
    if (!isAdmission(second)) throw new Error('expected admission');
    second.settle({ inputTokens: 300, outputTokens: 150, cacheWriteTokens: 50 });
    const third = await limiter.admit(subject);
    expect(third).toBeInstanceOf(GatewayError);
    expect((third as GatewayError).code).toBe('rate_limited');
    expect(Number((third as GatewayError).headers?.['retry-after'])).toBeLessThanOrEqual(60);
    await limiter.close();
  });

  it('seeds budget counters from persisted spend', async () => {
    const limiter = createLimiter({ spendSource: { windowSpend: async () => 950_000_000 } });
    const subject = subjectFor(dailyBudget(1));
    const first = await limiter.admit(subject);
    expect(isAdmission(first)).toBe(true);
    if (isAdmission(first)) first.settle({ costUsd: 0.06 });
    const second = await limiter.admit(subject);
    expect(second).toBeInstanceOf(GatewayError);
    await limiter.close();
  });
});

/** A Redis store and plans for one key with one budget counter capped at 1,000 nano-USD. */
async function oneBudgetStore() {
  const store = new RedisCounterStore(redisUrl!);
  await store.ready();
  const keyId = randomUUID();
  const counter = counterKeys.budget(keyId, 'DAILY', 0);
  const budgets = [{ counter, maxNanos: 1_000, ttlMs: 60_000 }];
  const tokenCounter = counterKeys.tokens(keyId, 0);
  return {
    store,
    counter,
    admit: (requestId: string, reserveNanos = 400, leaseMs = 60_000) => store.admit({ keyId, requestId, requestsPerMinute: null, tokensPerMinute: null, tokenCounter, budgets, reserveNanos, leaseMs }),
    settle: (requestId: string, costNanos: number) => store.settle({ keyId, requestId, tokens: 0, tokenCounter, costNanos, budgets }),
  };
}

describe.skipIf(!redisUrl)('Redis limiter: three nodes, one Redis', () => {
  const nodes: GovernanceLimiter[] = [];
  beforeAll(async () => {
    for (let i = 0; i < 3; i++) {
      const store = new RedisCounterStore(redisUrl!);
      await store.ready();
      nodes.push(createLimiter({ store }));
    }
  });
  afterAll(async () => {
    for (const n of nodes) await n.close();
  });

  it('admits exactly N requests per minute across the three nodes under concurrent load', async () => {
    const subject = subjectFor(rpm(25));
    const results = await Promise.all(Array.from({ length: 90 }, (_, i) => nodes[i % 3]!.admit(subject)));
    const admitted = results.filter(isAdmission).length;
    expect(admitted).toBe(25);
    const refused = results.filter((r): r is GatewayError => r instanceof GatewayError);
    expect(refused).toHaveLength(65);
    expect(refused.every((r) => r.code === 'rate_limited' && Number(r.headers?.['retry-after']) >= 1)).toBe(true);
  });

  it('lets through at most the budget plus the requests in flight when it was crossed', async () => {
    const subject = subjectFor(dailyBudget(1));
    const cost = 0.07;
    let spent = 0;
    let admittedCount = 0;
    // Three workers (one per node), each: admit, wait a tick (the call), settle.
    await Promise.all(
      nodes.map(async (node) => {
        for (;;) {
          const a = await node.admit(subject);
          if (!isAdmission(a)) {
            expect(a.code).toBe('budget_exceeded');
            return;
          }
          admittedCount++;
          await new Promise((r) => setImmediate(r));
          spent += cost;
          a.settle({ costUsd: cost });
          await new Promise((r) => setTimeout(r, 5)); // let the settle reach Redis
        }
      }),
    );
    expect(spent).toBeGreaterThanOrEqual(1);
    // At most one request per node was in flight when the budget was crossed.
    expect(spent).toBeLessThanOrEqual(1 + 3 * cost + 1e-9);
    expect(admittedCount).toBeGreaterThanOrEqual(Math.ceil(1 / cost));
  });

  it('a user budget counts every key of the user on every node', async () => {
    const userId = randomUUID();
    const [a, b] = [subjectFor(null), subjectFor(null)].map((s) => ({ ...s, caller: { ...s.caller, user: { id: userId, email: 'u@example.com', budgets: [{ maxUsd: 0.3, period: 'DAILY' as const }] } } }));
    let admitted = 0;
    for (let i = 0; i < 6; i++) {
      const adm = await nodes[i % 3]!.admit(i % 2 === 0 ? a! : b!);
      if (!isAdmission(adm)) {
        expect(adm.message).toContain('for this user');
        break;
      }
      admitted++;
      adm.settle({ costUsd: 0.1 });
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(admitted).toBe(3);
  });

  it("reserves a priced tool call's price at admission: three nodes' concurrent calls cross the budget by at most one call", async () => {
    const events: SpendEvent[] = [];
    const priced: GovernanceLimiter[] = [];
    for (let i = 0; i < 3; i++) {
      const store = new RedisCounterStore(redisUrl!);
      await store.ready();
      priced.push(createLimiter({ store, spendSink: { report: (e) => events.push(e) }, toolPrice: () => 0.07 }));
    }
    const subject = subjectFor(dailyBudget(1));
    expect(await concurrentPricedCalls(priced, subject, 60)).toHaveLength(15);
    expect(events.reduce((sum, e) => sum + e.costNanos, 0)).toBe(15 * 70_000_000);
    // What Redis holds is what was reserved, once: the settles added nothing on top.
    await Promise.all(priced.map((l) => l.flush()));
    const reader = new RedisCounterStore(redisUrl!);
    await reader.ready();
    const counter = counterKeys.budget(subject.caller.key.id, 'DAILY', budgetWindowStart('DAILY', Date.now()));
    expect(await reader.redis.hget(counter, 'n')).toBe(String(15 * 70_000_000));
    await reader.close();
    for (const l of priced) await l.close();
  });

  it("reserves LLM cost bounds across three nodes' concurrent calls and leaves Redis holding the real cost, no reservation", async () => {
    const events: SpendEvent[] = [];
    const llm: GovernanceLimiter[] = [];
    for (let i = 0; i < 3; i++) {
      const store = new RedisCounterStore(redisUrl!);
      await store.ready();
      llm.push(createLimiter({ store, spendSink: { report: (e) => events.push(e) } }));
    }
    const subject = llmSubjectFor(dailyBudget(1), 0.1);
    const admitted = (await Promise.all(Array.from({ length: 60 }, (_, i) => llm[i % 3]!.admit(subject)))).filter(isAdmission);
    expect(admitted).toHaveLength(10);
    admitted.forEach((a, i) => a.settle(i % 4 === 3 ? null : { costUsd: 0.03 }));
    await Promise.all(llm.map((l) => l.flush()));
    const reader = new RedisCounterStore(redisUrl!);
    await reader.ready();
    const counter = counterKeys.budget(subject.caller.key.id, 'DAILY', budgetWindowStart('DAILY', Date.now()));
    // Settles reach Redis after `settle` returns: wait for the last one.
    for (let i = 0; i < 200 && (await reader.redis.hget(counter, 'n')) !== String(8 * 30_000_000); i++) await new Promise((r) => setTimeout(r, 10));
    expect(await reader.redis.hget(counter, 'n')).toBe(String(8 * 30_000_000));
    expect(events.map((e) => e.costNanos)).toEqual(Array.from({ length: 8 }, () => 30_000_000));
    expect(await reader.redis.hgetall(counter)).toEqual({ n: String(8 * 30_000_000), r: '0', s: '1' });
    await reader.close();
    for (const l of llm) await l.close();
  });

  it('a settle gives back only the reservation this Redis holds for the request, once', async () => {
    const { store, counter, admit, settle } = await oneBudgetStore();
    const n = async () => Number(await store.redis.hget(counter, 'n'));
    await store.seed(counter, 50, 60_000);
    expect(await admit('a')).toEqual({ kind: 'ok' });
    expect(await n()).toBe(450);
    await settle('a', 30);
    expect(await n()).toBe(80);
    await settle('a', 30); // a retry changes nothing
    expect(await n()).toBe(80);
    // A request this Redis reserved nothing for (admitted elsewhere, or before a restart) is charged its cost alone.
    await settle('never-admitted', 30);
    expect(await n()).toBe(110);
    expect(await admit('b')).toEqual({ kind: 'ok' });
    expect(await admit('c')).toEqual({ kind: 'ok' });
    // Admitted at 910 (under the cap) and crossing it; nothing after, while 1,200 of it is only reserved: held.
    expect(await admit('d')).toEqual({ kind: 'ok' });
    expect(await admit('e')).toEqual({ kind: 'held', index: 0 });
    expect(await n()).toBe(1310);
    await settle('b', 0);
    await settle('c', 500); // dearer than its reservation: the excess is charged
    await settle('d', 0);
    expect(await n()).toBe(610);
    expect(await store.redis.hgetall(counter)).toEqual({ n: '610', r: '0', s: '1' });
    // Spent for real once the settled spend alone reaches the cap.
    expect(await admit('f')).toEqual({ kind: 'ok' });
    await settle('f', 400);
    expect(await admit('g')).toEqual({ kind: 'budget', index: 0 });
    await store.close();
  });

  it('a reservation whose call never settles (its node died) is given back once its lease is over', async () => {
    const { store, counter, admit, settle } = await oneBudgetStore();
    await store.seed(counter, 0, 60_000);
    expect(await admit('lost', 1_500, 20)).toEqual({ kind: 'ok' });
    expect(await admit('kept', 100, 60_000)).toEqual({ kind: 'held', index: 0 });
    // The next admits after the lease (Redis's clock) give it back.
    let result = await admit('kept', 100, 60_000);
    for (let i = 0; i < 200 && result.kind !== 'ok'; i++) result = await admit('kept', 100, 60_000);
    expect(result).toEqual({ kind: 'ok' });
    expect(await store.redis.hget(counter, 'n')).toBe('100');
    expect(await store.redis.hexists(counter, 'x:lost')).toBe(0);
    // Its settle, if it ever comes, charges the cost alone (there is nothing left to give back).
    await settle('lost', 30);
    expect(await store.redis.hgetall(counter)).toEqual({ n: '130', r: '100', s: '1', 'x:kept': expect.stringMatching(/^100:\d+$/) });
    await store.close();
  });

  it('counts a retried settle once (idempotent on the request id)', async () => {
    const store = new RedisCounterStore(redisUrl!);
    await store.ready();
    const keyId = randomUUID();
    const counter = counterKeys.budget(keyId, 'DAILY', 0);
    const plan = { keyId, requestId: 'r1', tokens: 10, tokenCounter: counterKeys.tokens(keyId, 0), costNanos: 5, budgets: [{ counter, ttlMs: 60_000 }] };
    await store.settle(plan);
    await store.settle(plan);
    await store.seed(counter, 100, 60_000);
    await store.seed(counter, 100, 60_000);
    expect(await store.redis.hget(counter, 'n')).toBe('105');
    await store.close();
  });
});

describe('Redis stopped and restarted mid-run', () => {
  let redis: RedisProcess;
  beforeAll(async () => {
    redis = await startRedisProcess();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it("an LLM call admitted before a Redis restart and settled after it never leaves the counter below the real spend", async () => {
    const persisted: SpendEvent[] = [];
    const store = new RedisCounterStore(redis.url, { commandTimeoutMs: 300 });
    const limiter = createLimiter({
      store,
      spendSink: { report: (e) => persisted.push(e) },
      spendSource: { windowSpend: async (scope) => persisted.filter((e) => 'keyId' in scope && e.keyId === scope.keyId).reduce((n, e) => n + e.costNanos, 0) },
    });
    await store.ready();
    const subject = llmSubjectFor(dailyBudget(10), 0.5);
    const counter = counterKeys.budget(subject.caller.key.id, 'DAILY', budgetWindowStart('DAILY', Date.now()));
    const inFlight = await limiter.admit(subject);
    if (!isAdmission(inFlight)) throw new Error('expected admission');
    expect(await store.redis.hget(counter, 'n')).toBe('500000000');

    await redis.stop();
    await redis.start(); // without persistence: the counter and the reservation are gone
    await store.ready();
    inFlight.settle({ costUsd: 0.2 });
    await limiter.flush();
    for (let i = 0; i < 200 && (await store.redis.hget(counter, 'n')) === null; i++) await new Promise((r) => setTimeout(r, 10));
    // Charged its cost; the $0.5 it reserved in the old Redis is not taken off the new one.
    expect(await store.redis.hget(counter, 'n')).toBe('200000000');
    const next = await limiter.admit(subject);
    expect(isAdmission(next)).toBe(true);
    // Seeded from the persisted $0.2 on top (over-counting the restart, never under) plus the next $0.5 bound.
    expect(Number(await store.redis.hget(counter, 'n'))).toBeGreaterThanOrEqual(200_000_000 + 500_000_000);
    await limiter.close();
  }, 30_000);

  it('FAIL_CLOSED refuses while down; LOCAL_ALLOWANCE admits a bounded share; queued settles are replayed', async () => {
    const persisted: SpendEvent[] = [];
    const store = new RedisCounterStore(redis.url, { commandTimeoutMs: 300, onReady: () => void limiter.flush() });
    const limiter = createLimiter({
      store,
      localShare: 0.25,
      spendSink: { report: (e) => persisted.push(e) },
      spendSource: { windowSpend: async (scope) => persisted.filter((e) => 'keyId' in scope && e.keyId === scope.keyId).reduce((n, e) => n + e.costNanos, 0) },
    });
    await store.ready();
    const closed = subjectFor({ budgets: [{ maxUsd: 10, period: 'DAILY' }], rateLimit: { requestsPerMinute: 100, tokensPerMinute: null }, fallback: 'FAIL_CLOSED' });
    const open = subjectFor({ budgets: [{ maxUsd: 10, period: 'DAILY' }], rateLimit: { requestsPerMinute: 8, tokensPerMinute: null }, fallback: 'LOCAL_ALLOWANCE' });

    const before = await limiter.admit(open);
    if (!isAdmission(before)) throw new Error('expected admission');
    before.settle({ costUsd: 1 });
    // Wait for the settle to land.
    for (let i = 0; i < 100 && (await store.redis.hget(counterKeys.budget(open.caller.key.id, 'DAILY', Date.now() - (Date.now() % 86_400_000)), 'n')) !== '1000000000'; i++) await new Promise((r) => setTimeout(r, 10));

    await redis.stop();
    const inFlight = await limiter.admit(open); // admitted locally; settled while down
    expect(isAdmission(inFlight)).toBe(true);
    const refused = await limiter.admit(closed);
    expect(refused).toBeInstanceOf(GatewayError);
    expect((refused as GatewayError).code).toBe('limits_unavailable');
    expect((refused as GatewayError).headers?.['retry-after']).toBe('1');
    // LOCAL_ALLOWANCE: a quarter of 8 rpm per node, i.e. 2 (the one above included).
    const local = await Promise.all(Array.from({ length: 5 }, () => limiter.admit(open)));
    expect(local.filter(isAdmission)).toHaveLength(1);
    if (isAdmission(inFlight)) inFlight.settle({ costUsd: 2 });
    await new Promise((r) => setTimeout(r, 50));
    expect(limiter.pendingSettles).toBeGreaterThan(0);

    await redis.start(); // a restart without persistence: Redis lost every counter
    for (let i = 0; i < 300 && limiter.pendingSettles > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(limiter.pendingSettles).toBe(0);
    // No spend lost: the control plane got both calls, and the counter after the restart is seeded from it.
    expect(persisted.filter((e) => e.keyId === open.caller.key.id).map((e) => e.costNanos)).toEqual([1_000_000_000, 2_000_000_000]);
    const after = await limiter.admit(open);
    expect(isAdmission(after)).toBe(true);
    const counter = await store.redis.hget(counterKeys.budget(open.caller.key.id, 'DAILY', Date.now() - (Date.now() % 86_400_000)), 'n');
    // The replayed 2 USD settle plus the persisted 3 USD seed: over-counting the outage, never under.
    expect(Number(counter)).toBeGreaterThanOrEqual(3_000_000_000);
    await limiter.close();
  }, 30_000);
});
