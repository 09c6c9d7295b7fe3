/**
 * The pipeline's limits stage (`pipeline/limits.ts` → `Limiter`) for real: per virtual key, a request rate
 * (requests per minute, sliding window), an LLM token rate (tokens per minute) and budgets (USD per fixed UTC
 * window), checked at `admit` against shared counters and charged at `settle` with what the call cost.
 *
 * Exactness across nodes: with Redis every admit is one atomic script, so N nodes admit exactly the cap of
 * requests per minute between them. Budgets are checked at admit, and what a call may cost is reserved on
 * the budget counters in the same atomic admit: a priced tool call's price, or the upper bound of an LLM
 * call's cost that its route computed (`LimitSubject.maxCostNanos`: prompt size and `max_tokens` at the
 * model's prices). Concurrent calls on every node see each other's reservations, so a budget is crossed by
 * at most one call, however many run at once. A call refused only because of reservations (the spend
 * itself is under the cap) gets 429 `rate_limited` (reason `budget_held`, Retry-After), not 402: the budget
 * is not spent, and may not be when the calls in flight end. The settle replaces the reservation with what the call
 * really cost (usually less: the rest is given back; a call that failed or was refused upstream, with no
 * usage, gives it all back); the spend reported to the control plane is that cost, never the reservation.
 * A call whose cost beat its bound is charged the excess at settle (see `anthropic/pricing.ts`, costBound).
 * A reservation whose settle never comes (its node died mid-call, or an admit timed out after Redis ran it)
 * is given back when its lease (`reservationLeaseMs`, one hour) is over.
 *
 * While Redis is unreachable, each key's `fallback` decides (SPEC: decide and document):
 *  - FAIL_CLOSED (default): the key's requests are refused with `limits_unavailable` (503, Retry-After).
 *  - LOCAL_ALLOWANCE: this node admits from its own in-process counters, with every cap scaled by
 *    `localShare` (default 0.25, at least one request), so an outage lets through at most
 *    nodes × localShare × cap extra, never an unbounded amount.
 * Either way nothing is lost: settles that could not reach Redis are queued (bounded) and replayed when it
 * is back (idempotent per request id), and every priced call goes to the `SpendSink` (the control plane
 * persists it). Budget counters are seeded once per window from the persisted spend (`SpendSource`), so a
 * Redis restart, a node restart or the embedded in-process store starts from what was really spent.
 */
import { randomUUID } from 'node:crypto';
import { GatewayError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Admission, LimitSubject, Limiter, Usage } from '../pipeline/limits.js';
import { budgetWindowEnd, budgetWindowStart, usdToNanos } from '../snapshot/budget-window.js';
import type { Budget, KeyLimitsEntry, UserEntry } from '../snapshot/schema.js';
import { counterKeys, MINUTE_MS, RESERVATION_LEASE_MS, type AdmitPlan, type AdmitResult, type CounterStore, type SettlePlan } from './counters.js';
import { MemoryCounterStore } from './memory-store.js';
import { RedisCounterStore } from './redis-store.js';

/** One priced call, as the control plane persists it (`POST /nodes/spend`). */
export interface SpendEvent {
  requestId: string;
  keyId: string;
  userId: string;
  kind: 'llm' | 'tool';
  model: string | null;
  inputTokens: number;
  outputTokens: number;
  cacheCreationTokens: number;
  cacheReadTokens: number;
  costNanos: number;
  /** ISO instant the call ended. */
  at: string;
}

/** Where priced calls go (the node's reporter to the control plane); must not block or throw. */
export interface SpendSink {
  report(event: SpendEvent): void;
}

/** Whose spend: one key's, or all of one user's keys'. */
export type SpendScope = { keyId: string } | { userId: string };

/** The spend the control plane has persisted for a key or user in [fromMs, toMs), in nano-USD. */
export interface SpendSource {
  windowSpend(scope: SpendScope, fromMs: number, toMs: number): Promise<number>;
}

/** A key's limits with its user's budgets added (those count the spend of all the user's keys). */
interface EffectiveLimits {
  budgets: Array<Budget & { scope: 'key' | 'user' }>;
  rateLimit: KeyLimitsEntry['rateLimit'];
  fallback: KeyLimitsEntry['fallback'];
}

function effectiveLimits(key: KeyLimitsEntry | null, user: UserEntry): EffectiveLimits | null {
  const userBudgets = user.budgets ?? [];
  if (key === null && userBudgets.length === 0) return null;
  return {
    budgets: [...(key?.budgets ?? []).map((b) => ({ ...b, scope: 'key' as const })), ...userBudgets.map((b) => ({ ...b, scope: 'user' as const }))],
    rateLimit: key?.rateLimit ?? null,
    fallback: key?.fallback ?? 'FAIL_CLOSED',
  };
}

export interface LimiterOptions {
  /** Shared counters; without it, in-process counters (exact for one node only). */
  redisUrl?: string | undefined;
  /** A store to use instead (tests). */
  store?: CounterStore;
  spendSink?: SpendSink;
  spendSource?: SpendSource;
  /** Share of each cap a node may admit on its own while Redis is unreachable (LOCAL_ALLOWANCE keys). */
  localShare?: number;
  /** At most this many settles are queued while Redis is unreachable (older ones are dropped, logged). */
  maxPendingSettles?: number;
  logger?: Pick<Logger, 'warn' | 'error'>;
  now?: () => number;
  /** How long a reservation waits for its call's settle before it is given back anyway (default one hour). */
  reservationLeaseMs?: number;
  /** USD per call of an MCP tool (the server's `toolPricing`), charged like LLM usage; undefined = free. */
  toolPrice?: (server: string, tool: string) => number | undefined;
}

export interface GovernanceLimiter extends Limiter {
  /** Settles still waiting for Redis. */
  readonly pendingSettles: number;
  /** Replays queued settles now (also done whenever Redis becomes ready). */
  flush(): Promise<void>;
  close(): Promise<void>;
}

const NO_OP_ADMISSION: Admission = { settle: () => undefined };
/** Retry-After of a budget held by calls in flight (an LLM call lasts seconds to minutes). */
const HELD_RETRY_MS = 2000;

/** Tokens that count against tokens-per-minute: input, output and cache writes (cache reads are not new work). */
function rateTokens(usage: Usage): number {
  return (usage.inputTokens ?? 0) + (usage.outputTokens ?? 0) + (usage.cacheWriteTokens ?? 0);
}

function retryAfter(ms: number): Record<string, string> {
  return { 'retry-after': String(Math.max(1, Math.ceil(ms / 1000))) };
}

export function createLimiter(options: LimiterOptions = {}): GovernanceLimiter {
  const now = options.now ?? Date.now;
  const localShare = options.localShare ?? 0.25;
  const leaseMs = options.reservationLeaseMs ?? RESERVATION_LEASE_MS;
  const maxPending = options.maxPendingSettles ?? 100_000;
  const logger = options.logger;
  const local = new MemoryCounterStore(now);
  const pending: SettlePlan[] = [];
  let flushing: Promise<void> | null = null;
  // Budget counters this node has seeded in the shared store; cleared when Redis reconnects (it may have restarted).
  const seeded = new Set<string>();

  const shared: CounterStore | null =
    options.store ??
    (options.redisUrl
      ? new RedisCounterStore(options.redisUrl, {
          onReady: () => {
            seeded.clear();
            void flush();
          },
        })
      : null);
  const primary: CounterStore = shared ?? local;

  function plan(keyId: string, userId: string, limits: EffectiveLimits, at: number, requestId: string, share: number, reserveNanos = 0): AdmitPlan {
    const minute = at - (at % MINUTE_MS);
    const scale = (n: number | null): number | null => (n === null ? null : Math.max(1, Math.floor(n * share)));
    return {
      keyId,
      requestId,
      reserveNanos,
      leaseMs,
      requestsPerMinute: scale(limits.rateLimit?.requestsPerMinute ?? null),
      tokensPerMinute: scale(limits.rateLimit?.tokensPerMinute ?? null),
      tokenCounter: counterKeys.tokens(keyId, minute),
      budgets: limits.budgets.map((b) => {
        const start = budgetWindowStart(b.period, at);
        const end = budgetWindowEnd(b.period, start);
        const counter = b.scope === 'key' ? counterKeys.budget(keyId, b.period, start) : counterKeys.userBudget(userId, b.period, start);
        return { counter, maxNanos: Math.max(1, Math.floor(usdToNanos(b.maxUsd) * share)), ttlMs: end - start + MINUTE_MS };
      }),
    };
  }

  /**
   * The persisted spend of a window; 0 when the control plane cannot say (it is down): serving goes on, and
   * only a Redis restart during a control-plane outage can then undercount the spend before the restart.
   */
  async function persistedSpend(scope: SpendScope, from: number, to: number): Promise<number> {
    if (!options.spendSource) return 0;
    try {
      return await options.spendSource.windowSpend(scope, from, to);
    } catch (error) {
      logger?.warn({ ...scope, err: error instanceof Error ? error.message : String(error) }, 'persisted spend unavailable: budget counter seeded from 0');
      return 0;
    }
  }

  async function admitIn(store: CounterStore, admitPlan: AdmitPlan, limits: EffectiveLimits, userId: string, at: number): Promise<AdmitResult> {
    // One seed per budget at most, then the decision.
    for (let attempt = 0; attempt <= admitPlan.budgets.length; attempt++) {
      const result = await store.admit(admitPlan);
      if (result.kind !== 'seed') return result;
      const budget = admitPlan.budgets[result.index]!;
      const { period, scope } = limits.budgets[result.index]!;
      const start = budgetWindowStart(period, at);
      const spent = await persistedSpend(scope === 'key' ? { keyId: admitPlan.keyId } : { userId }, start, budgetWindowEnd(period, start));
      await store.seed(budget.counter, spent, budget.ttlMs);
      if (store === shared) seeded.add(budget.counter);
    }
    throw new Error('budget counters did not stay seeded');
  }

  function refusal(result: AdmitResult, limits: EffectiveLimits): GatewayError | null {
    switch (result.kind) {
      case 'ok':
      case 'seed':
        return null;
      case 'rate':
        return new GatewayError('rate_limited', { headers: retryAfter(result.retryAfterMs), reason: 'rate' });
      case 'budget': {
        const b = limits.budgets[result.index]!;
        return new GatewayError('budget_exceeded', {
          message: `budget exceeded: the ${b.period.toLowerCase()} budget of $${b.maxUsd} for this ${b.scope} is spent`,
          data: { period: b.period, maxUsd: b.maxUsd, scope: b.scope },
          reason: `budget_${b.period.toLowerCase()}`,
        });
      }
      case 'held': {
        // Not spent: held by what calls still running may cost (most give part of it back), so 429 and a
        // retry, which Anthropic SDKs and MCP clients make on their own, rather than a final 402.
        const b = limits.budgets[result.index]!;
        return new GatewayError('rate_limited', {
          message: `the ${b.period.toLowerCase()} budget of $${b.maxUsd} for this ${b.scope} is held by calls still running (the most they may cost); retry when they end`,
          headers: retryAfter(HELD_RETRY_MS),
          data: { period: b.period, maxUsd: b.maxUsd, scope: b.scope },
          reason: 'budget_held',
        });
      }
    }
  }

  // One line per outage, not one per refused request.
  let lastWarned = 0;
  function warnUnreachable(error: unknown): void {
    const at = now();
    if (at - lastWarned < 10_000) return;
    lastWarned = at;
    logger?.warn({ err: error instanceof Error ? error.message : String(error) }, 'shared counters unreachable: FAIL_CLOSED keys are refused, LOCAL_ALLOWANCE keys use local counters');
  }

  function queue(settle: SettlePlan): void {
    if (pending.length >= maxPending) {
      const dropped = pending.shift();
      logger?.error({ keyId: dropped?.keyId }, 'settle queue full while Redis is unreachable: oldest counter update dropped (spend itself is still reported)');
    }
    pending.push(settle);
  }

  async function flush(): Promise<void> {
    if (!shared || flushing) return flushing ?? undefined;
    flushing = (async () => {
      while (pending.length > 0) {
        const next = pending[0]!;
        try {
          await shared.settle(next);
          pending.shift();
        } catch {
          return; // still down: the next 'ready' retries
        }
      }
    })().finally(() => {
      flushing = null;
    });
    return flushing;
  }

  /** An MCP tool call's price, known at admission (charged whatever the call's outcome); undefined if none. */
  function toolPriceOf(subject: LimitSubject): number | undefined {
    return subject.route !== 'anthropic' && subject.server !== null && subject.tool !== null ? options.toolPrice?.(subject.server, subject.tool) : undefined;
  }

  /** What an admission reserves on its budgets, in nano-USD: a priced tool's price, else the route's cost bound (an LLM call). */
  function reservationOf(subject: LimitSubject, toolUsd: number | undefined): number {
    if (toolUsd) return usdToNanos(toolUsd);
    const bound = subject.maxCostNanos;
    return bound !== undefined && Number.isFinite(bound) && bound > 0 ? Math.ceil(bound) : 0;
  }

  /**
   * `requestId` null: no counter was charged under an id, so one is made only if spend is reported.
   * `settlePlanOf(usage)`: the settle of the call's whole cost (each store gives back what it reserved
   * itself), null without counters. `reserved`: the admit reserved something, so a call that ends without
   * usage is still settled (to give it back).
   */
  function admission(subject: LimitSubject, requestId: string | null, settlePlanOf: ((usage: Usage) => SettlePlan) | null, localToo: boolean, reserved: boolean): Admission {
    let settled = false;
    const toolUsd = toolPriceOf(subject);
    return {
      settle(reported: Usage | null): void {
        if (settled || (reported === null && !toolUsd && !reserved)) return;
        settled = true;
        const usage: Usage = toolUsd ? { ...reported, costUsd: (reported?.costUsd ?? 0) + toolUsd } : (reported ?? {});
        const costNanos = usage.costUsd !== undefined ? usdToNanos(usage.costUsd) : 0;
        if (costNanos > 0 || rateTokens(usage) > 0) {
          options.spendSink?.report({
            requestId: requestId ?? randomUUID(),
            keyId: subject.caller.key.id,
            userId: subject.caller.user.id,
            kind: subject.route === 'anthropic' ? 'llm' : 'tool',
            model: usage.model ?? null,
            inputTokens: usage.inputTokens ?? 0,
            outputTokens: usage.outputTokens ?? 0,
            cacheCreationTokens: usage.cacheWriteTokens ?? 0,
            cacheReadTokens: usage.cacheReadTokens ?? 0,
            costNanos,
            at: new Date(now()).toISOString(),
          });
        }
        if (settlePlanOf === null) return;
        const settlePlan = settlePlanOf(usage);
        if (localToo || primary === local) local.settle(settlePlan);
        if (primary === local) return;
        if (pending.length > 0) {
          queue(settlePlan);
          return;
        }
        Promise.resolve()
          .then(() => primary.settle(settlePlan))
          .catch(() => queue(settlePlan));
      },
    };
  }

  const limiter: GovernanceLimiter = {
    get pendingSettles() {
      return pending.length;
    },
    flush,
    admit(subject: LimitSubject): Admission | GatewayError | Promise<Admission | GatewayError> {
      const limits = effectiveLimits(subject.caller.key.limits, subject.caller.user);
      // No limits: nothing to count, only spend to report (a UUID per call showed in the hot path's profile).
      if (limits === null) return options.spendSink ? admission(subject, null, null, false, false) : NO_OP_ADMISSION;
      const requestId = randomUUID();
      const at = now();
      const keyId = subject.caller.key.id;
      const userId = subject.caller.user.id;
      const reserveNanos = limits.budgets.length > 0 ? reservationOf(subject, toolPriceOf(subject)) : 0;
      // Settles go to the counters of the admission's windows (a call that ends after midnight is charged where it was reserved).
      const settlePlanOf = (usage: Usage): SettlePlan => {
        const p = plan(keyId, userId, limits, at, requestId, 1);
        const costNanos = usage.costUsd !== undefined ? usdToNanos(usage.costUsd) : 0;
        return { keyId, requestId, tokens: rateTokens(usage), tokenCounter: p.tokenCounter, costNanos, budgets: p.budgets };
      };
      return admitIn(primary, plan(keyId, userId, limits, at, requestId, 1, reserveNanos), limits, userId, at).then(
        (result) => {
          if (pending.length > 0) void flush(); // a transient failure queued settles without a reconnect
          return refusal(result, limits) ?? admission(subject, requestId, settlePlanOf, false, reserveNanos > 0);
        },
        async (error: unknown) => {
          warnUnreachable(error);
          if (limits.fallback === 'FAIL_CLOSED') {
            return new GatewayError('limits_unavailable', { headers: retryAfter(1000), reason: 'counters_unreachable' });
          }
          try {
            const result = await admitIn(local, plan(keyId, userId, limits, at, requestId, localShare, reserveNanos), limits, userId, at);
            // Admitted locally: settle local counters now and the shared ones (which reserved nothing) when Redis is back.
            return refusal(result, limits) ?? admission(subject, requestId, settlePlanOf, true, reserveNanos > 0);
          } catch (localError) {
            logger?.error({ keyId, err: localError instanceof Error ? localError.message : String(localError) }, 'local limits failed');
            return new GatewayError('limits_unavailable', { headers: retryAfter(1000), reason: 'local_limits_failed' });
          }
        },
      );
    },
    async close() {
      await shared?.close();
      await local.close();
    },
  };
  return limiter;
}
