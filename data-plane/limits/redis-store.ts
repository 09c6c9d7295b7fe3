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
 *   in each under its request id with a lease, only if everything passed; reservations whose lease ran
 *   out (never settled) are given back first.
 * - settle: a `SET NX` marker per request id makes a retried settle count once; then tokens, the cost, and
 *   the reservation each counter still holds for the request given back (a Redis that restarted since holds
 *   none, and gives nothing back: its counters never drop below the spend they have seen).
 * - seed: adds the persisted spend to a budget counter once (`s` flag in the counter hash).
 *
 * Commands fail fast while Redis is unreachable (no offline queue): the Limiter then applies the key's
 * fallback. It does not decide anything itself.
 */
import { Redis, type RedisOptions } from 'ioredis';
import { counterKeys, MINUTE_MS, SETTLED_MARKER_MS, type AdmitPlan, type AdmitResult, type CounterStore, type SettlePlan } from './counters.js';

// KEYS: request log, token counter, budget counters…
// ARGV: rpm, tpm, request id, reservation, its lease (ms), each budget's cap…
// A budget counter is a hash: n (spend + reservations), s (seeded), r (reservations), and x:<request id> =
// '<nanos>:<lease end ms>' for each reservation outstanding.
const ADMIT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local held = -1
for i = 3, #KEYS do
  local h = redis.call('HGETALL', KEYS[i])
  local n, r, seeded = 0, 0, false
  local expired = {}
  for j = 1, #h, 2 do
    local f = h[j]
    if f == 'n' then n = tonumber(h[j + 1])
    elseif f == 'r' then r = tonumber(h[j + 1])
    elseif f == 's' then seeded = true
    elseif string.sub(f, 1, 2) == 'x:' then
      local v = h[j + 1]
      local sep = string.find(v, ':', 1, true)
      -- A lease that ran out: its call never settled (its node died). Given back now.
      if tonumber(string.sub(v, sep + 1)) <= now then
        local nanos = string.sub(v, 1, sep - 1)
        expired[#expired + 1] = f
        redis.call('HINCRBY', KEYS[i], 'n', '-' .. nanos)
        redis.call('HINCRBY', KEYS[i], 'r', '-' .. nanos)
        n = n - tonumber(nanos)
        r = r - tonumber(nanos)
      end
    end
  end
  if #expired > 0 then redis.call('HDEL', KEYS[i], unpack(expired)) end
  if not seeded then return {3, i - 3} end
  local cap = tonumber(ARGV[i + 3])
  if n - r >= cap then return {2, i - 3} end
  if n >= cap and held < 0 then held = i - 3 end
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
if tonumber(ARGV[4]) > 0 then
  local lease = ARGV[4] .. ':' .. string.format('%d', now + tonumber(ARGV[5]))
  for i = 3, #KEYS do
    redis.call('HINCRBY', KEYS[i], 'n', ARGV[4])
    redis.call('HINCRBY', KEYS[i], 'r', ARGV[4])
    redis.call('HSET', KEYS[i], 'x:' .. ARGV[3], lease)
  end
end
return {0, 0}
`;

// Amounts are passed to INCRBY/HINCRBY as strings (ARGV, or the stored reservation): a Lua number would
// print large values in exponent form, which Redis refuses.
// KEYS: settled marker, token counter, budget counters…
// ARGV: tokens, cost, settled marker TTL, token counter TTL, request id, each budget counter's TTL…
const SETTLE = `
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[3]) then return 0 end
if tonumber(ARGV[1]) > 0 then
  redis.call('INCRBY', KEYS[2], ARGV[1])
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
end
local field = 'x:' .. ARGV[5]
local cost = tonumber(ARGV[2])
for i = 3, #KEYS do
  -- Given back only where it is held (not by a counter that expired or restarted since, nor after its lease).
  local v = redis.call('HGET', KEYS[i], field)
  if v then
    local nanos = string.sub(v, 1, string.find(v, ':', 1, true) - 1)
    redis.call('HDEL', KEYS[i], field)
    redis.call('HINCRBY', KEYS[i], 'n', '-' .. nanos)
    redis.call('HINCRBY', KEYS[i], 'r', '-' .. nanos)
  end
  if cost > 0 then
    redis.call('HINCRBY', KEYS[i], 'n', ARGV[2])
    if redis.call('PTTL', KEYS[i]) < 0 then redis.call('PEXPIRE', KEYS[i], ARGV[i + 3]) end
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
    const keys = [counterKeys.requests(plan.keyId), plan.tokenCounter, ...plan.budgets.map((b) => b.counter)];
    const [kind, value] = await this.redis.ghAdmit(
      keys.length,
      ...keys,
      plan.requestsPerMinute ?? 0,
      plan.tokensPerMinute ?? 0,
      plan.requestId,
      String(plan.reserveNanos),
      plan.leaseMs,
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
    const keys = [counterKeys.settled(plan.keyId, plan.requestId), plan.tokenCounter, ...plan.budgets.map((b) => b.counter)];
    await this.redis.ghSettle(keys.length, ...keys, String(plan.tokens), String(plan.costNanos), SETTLED_MARKER_MS, 2 * MINUTE_MS, plan.requestId, ...plan.budgets.map((b) => b.ttlMs));
  }

  async seed(counter: string, nanos: number, ttlMs: number): Promise<void> {
    await this.redis.ghSeed(1, counter, String(nanos), ttlMs);
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }
}
