/**
 * Counters shared by every node, in Redis (ioredis): each decision is ONE Lua script, run atomically by
 * Redis, so N nodes admitting concurrently can never read-then-write past a cap (no per-node copies: the
 * failure mode of counting per replica, Bifrost issue #3547). The request log uses Redis's own clock
 * (`TIME`), so node clock skew does not widen the window.
 *
 * - admit: every budget counter of the key (seeded? its spend under its cap? with the reservations still
 *   outstanding too, field `r`?), then the minute's token counter,
 *   then the sliding one-minute request log (ZSET of request ids by time); the request is logged, and its
 *   reservation (a tool's price, an LLM call's cost bound) added to its budget counters and remembered
 *   under its request id, only if everything passed.
 * - settle: a `SET NX` marker per request id makes a retried settle count once; then tokens, the cost, and
 *   the reservation this Redis still holds for the request given back (a Redis that restarted since holds
 *   none, and gives nothing back: its counters never drop below the spend they have seen).
 * - seed: adds the persisted spend to a budget counter once (`s` flag in the counter hash).
 *
 * Commands fail fast while Redis is unreachable (no offline queue): the Limiter then applies the key's
 * fallback. It does not decide anything itself.
 */
import { Redis, type RedisOptions } from 'ioredis';
import { counterKeys, MINUTE_MS, reservationTtlMs, SETTLED_MARKER_MS, type AdmitPlan, type AdmitResult, type CounterStore, type SettlePlan } from './counters.js';

// KEYS: request log, token counter, reservation marker, budget counters…
// ARGV: rpm, tpm, request id, reservation, its marker's TTL, each budget's cap…
const ADMIT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local held = -1
for i = 4, #KEYS do
  local h = redis.call('HMGET', KEYS[i], 'n', 's', 'r')
  if not h[2] then return {3, i - 4} end
  local n = tonumber(h[1] or '0')
  local cap = tonumber(ARGV[i + 2])
  if n - tonumber(h[3] or '0') >= cap then return {2, i - 4} end
  if n >= cap and held < 0 then held = i - 4 end
end
if held >= 0 then return {4, held} end
local tpm = tonumber(ARGV[2])
if tpm > 0 then
  local used = tonumber(redis.call('GET', KEYS[2]) or '0')
  if used >= tpm then return {1, 60000 - (now % 60000)} end
end
local rpm = tonumber(ARGV[1])
if rpm > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 60000)
  if redis.call('ZCARD', KEYS[1]) >= rpm then
    local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    return {1, math.max(1, tonumber(oldest[2]) + 60000 - now)}
  end
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], 61000)
end
if tonumber(ARGV[4]) > 0 and #KEYS > 3 then
  for i = 4, #KEYS do
    redis.call('HINCRBY', KEYS[i], 'n', ARGV[4])
    redis.call('HINCRBY', KEYS[i], 'r', ARGV[4])
  end
  redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[5])
end
return {0, 0}
`;

// Amounts are passed to INCRBY/HINCRBY as strings (ARGV, or the stored reservation): a Lua number would
// print large values in exponent form, which Redis refuses.
// KEYS: settled marker, token counter, reservation marker, budget counters…
// ARGV: tokens, cost, settled marker TTL, token counter TTL, each budget counter's TTL…
const SETTLE = `
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[3]) then return 0 end
if tonumber(ARGV[1]) > 0 then
  redis.call('INCRBY', KEYS[2], ARGV[1])
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
end
local reserved = redis.call('GET', KEYS[3])
if reserved then redis.call('DEL', KEYS[3]) end
local cost = tonumber(ARGV[2])
for i = 4, #KEYS do
  -- Given back only where it is held: a counter that expired since took its reservation along.
  if reserved and redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('HINCRBY', KEYS[i], 'n', '-' .. reserved)
    redis.call('HINCRBY', KEYS[i], 'r', '-' .. reserved)
  end
  if cost > 0 then
    redis.call('HINCRBY', KEYS[i], 'n', ARGV[2])
    if redis.call('PTTL', KEYS[i]) < 0 then redis.call('PEXPIRE', KEYS[i], ARGV[i + 1]) end
  end
end
return 1
`;

const SEED = `
if redis.call('HGET', KEYS[1], 's') then return 0 end
redis.call('HINCRBY', KEYS[1], 'n', ARGV[1])
redis.call('HSET', KEYS[1], 's', '1')
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
`;

interface GovernanceCommands {
  ghAdmit(numKeys: number, ...args: Array<string | number>): Promise<[number, number]>;
  ghSettle(numKeys: number, ...args: Array<string | number>): Promise<number>;
  ghSeed(numKeys: number, ...args: Array<string | number>): Promise<number>;
}

export interface RedisStoreOptions {
  /** Per-command timeout: a hung Redis counts as unreachable after this long (default 1000 ms). */
  commandTimeoutMs?: number;
  /** Called when the connection becomes ready again (the Limiter replays settles queued while it was down). */
  onReady?: () => void;
}

export class RedisCounterStore implements CounterStore {
  readonly redis: Redis & GovernanceCommands;

  constructor(url: string, options: RedisStoreOptions = {}) {
    const redisOptions: RedisOptions = {
      enableOfflineQueue: false,
      // Concurrent admits from one node share round trips (one pipeline per event-loop tick).
      enableAutoPipelining: true,
      maxRetriesPerRequest: 0,
      commandTimeout: options.commandTimeoutMs ?? 1000,
      // Keep reconnecting (capped backoff): a Redis restart must end in counters shared again.
      retryStrategy: (attempt) => Math.min(50 * attempt, 1000),
    };
    const redis = new Redis(url, redisOptions);
    redis.defineCommand('ghAdmit', { lua: ADMIT });
    redis.defineCommand('ghSettle', { lua: SETTLE });
    redis.defineCommand('ghSeed', { lua: SEED });
    // Errors surface on commands (and the Limiter's fallback); an 'error' listener keeps them from being unhandled.
    redis.on('error', () => undefined);
    if (options.onReady) redis.on('ready', options.onReady);
    this.redis = redis as Redis & GovernanceCommands;
  }

  /** Resolves once connected (tests and startup; requests before then use the fallback). */
  async ready(): Promise<void> {
    if (this.redis.status === 'ready') return;
    await new Promise<void>((resolve) => this.redis.once('ready', () => resolve()));
  }

  async admit(plan: AdmitPlan): Promise<AdmitResult> {
    const keys = [counterKeys.requests(plan.keyId), plan.tokenCounter, counterKeys.reserved(plan.keyId, plan.requestId), ...plan.budgets.map((b) => b.counter)];
    const [kind, value] = await this.redis.ghAdmit(
      keys.length,
      ...keys,
      plan.requestsPerMinute ?? 0,
      plan.tokensPerMinute ?? 0,
      plan.requestId,
      String(plan.reserveNanos),
      reservationTtlMs(plan.budgets),
      ...plan.budgets.map((b) => b.maxNanos),
    );
    switch (kind) {
      case 0:
        return { kind: 'ok' };
      case 1:
        return { kind: 'rate', retryAfterMs: value };
      case 2:
        return { kind: 'budget', index: value };
      case 4:
        return { kind: 'held', index: value };
      default:
        return { kind: 'seed', index: value };
    }
  }

  async settle(plan: SettlePlan): Promise<void> {
    const keys = [counterKeys.settled(plan.keyId, plan.requestId), plan.tokenCounter, counterKeys.reserved(plan.keyId, plan.requestId), ...plan.budgets.map((b) => b.counter)];
    await this.redis.ghSettle(keys.length, ...keys, String(plan.tokens), String(plan.costNanos), SETTLED_MARKER_MS, 2 * MINUTE_MS, ...plan.budgets.map((b) => b.ttlMs));
  }

  async seed(counter: string, nanos: number, ttlMs: number): Promise<void> {
    await this.redis.ghSeed(1, counter, String(nanos), ttlMs);
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }
}
