/**
 * The counter store contract behind the Limiter: one atomic decision per admit (rate limit and every budget
 * checked, the request counted and its reservation held, or nothing changed) and one idempotent charge per
 * settle, which also gives back what that admit reserved in the same store. Two
 * implementations: `memory-store.ts` (in-process, the embedded default) and `redis-store.ts` (shared by
 * every node, one Lua script per decision). Plans are computed by the Limiter; stores only count.
 *
 * A budget counter holds the spend it has seen plus the reservations still outstanding (`n`), those
 * reservations apart (`r`), and each of them under its request id with its lease: an admit is refused as
 * `budget` when the spend alone reaches the cap, as `held` when only the reservations take it there. A
 * reservation whose lease ran out (its call never settled: the node died mid-call) is given back by the
 * next admit on that counter, so a crash does not hold a budget until its window ends.
 *
 * Budget counters start "unseeded": the first admit against a counter in a window returns `seed`, the
 * Limiter fetches the spend the control plane has persisted for that window and seeds it once (after a
 * Redis restart or a node restart, counters start from what was really spent, not from zero).
 */

export interface BudgetCounter {
  /** Store key of this budget's window, e.g. `gh:{keyId}:b:DAILY:1733011200000`. */
  counter: string;
  /** The cap in nano-USD. */
  maxNanos: number;
  /** How long the counter must outlive its window's start (window length + slack). */
  ttlMs: number;
}

export interface AdmitPlan {
  keyId: string;
  /** Unique per admission (also the spend report's request id). */
  requestId: string;
  requestsPerMinute: number | null;
  tokensPerMinute: number | null;
  /** Store key of the current minute's token counter. */
  tokenCounter: string;
  budgets: readonly BudgetCounter[];
  /**
   * Nano-USD added to every budget counter when the request is admitted (0: none): a priced tool call's
   * price, or an upper bound of an LLM call's cost. Held in the same atomic decision, so concurrent admits
   * on any node see it at once and a budget is crossed by at most one call, however many run at the same
   * time. Each budget counter remembers it under the request id until the settle replaces it with the
   * call's cost (a cost below it gives the rest back) or its lease runs out.
   */
  reserveNanos: number;
  /** How long a reservation may stay without its settle (`RESERVATION_LEASE_MS`; tests shorten it). */
  leaseMs: number;
}

export type AdmitResult =
  | { kind: 'ok' }
  /** Over the request or token rate: retry after this many ms. */
  | { kind: 'rate'; retryAfterMs: number }
  /** budgets[index] is spent. */
  | { kind: 'budget'; index: number }
  /**
   * budgets[index] is at its cap only with the reservations of calls still running: what they will really
   * cost is not known yet (usually less), so this is "retry when they end", not "spent".
   */
  | { kind: 'held'; index: number }
  /** budgets[index] has no seeded counter yet in this store. */
  | { kind: 'seed'; index: number };

export interface SettlePlan {
  keyId: string;
  requestId: string;
  tokens: number;
  tokenCounter: string;
  /**
   * What the call cost, whole. The store charges it and gives back what it reserved at this request's admit,
   * on each counter that still holds it (a store that restarted since, a counter that expired, the other
   * store of a fallback admit, a lease that ran out: none, and the cost alone is charged): a counter never
   * ends below the spend it has seen.
   */
  costNanos: number;
  budgets: ReadonlyArray<{ counter: string; ttlMs: number }>;
}

export interface CounterStore {
  admit(plan: AdmitPlan): AdmitResult | Promise<AdmitResult>;
  /** Charges once per request id, whatever the number of calls, and gives back that request's reservation. */
  settle(plan: SettlePlan): void | Promise<void>;
  /** Sets a budget counter's starting spend, once (a second seed of the same counter changes nothing). */
  seed(counter: string, nanos: number, ttlMs: number): void | Promise<void>;
  close(): Promise<void>;
}

/** A key's counters share the `{keyId}` hash tag, so its script's keys are in one Redis Cluster slot. */
export const counterKeys = {
  requests: (keyId: string) => `gh:{${keyId}}:rpm`,
  tokens: (keyId: string, minuteStart: number) => `gh:{${keyId}}:tpm:${minuteStart}`,
  budget: (keyId: string, period: string, windowStart: number) => `gh:{${keyId}}:b:${period}:${windowStart}`,
  /**
   * A user's budget (all of the user's keys). Its hash tag differs from the key's: one admit script then
   * spans two slots, which a single Redis (or a cluster proxy) runs; Redis Cluster itself would refuse it.
   */
  userBudget: (userId: string, period: string, windowStart: number) => `gh:{u:${userId}}:ub:${period}:${windowStart}`,
  settled: (keyId: string, requestId: string) => `gh:{${keyId}}:s:${requestId}`,
} as const;

export const MINUTE_MS = 60_000;
/** How long a settled-request marker is kept (a retried settle within this time counts once). */
export const SETTLED_MARKER_MS = 10 * MINUTE_MS;

/**
 * How long a reservation waits for its settle before the counter gives it back anyway: longer than any call
 * (an LLM answer streams for minutes at most), short enough that a node dying mid-call frees the budget soon.
 */
export const RESERVATION_LEASE_MS = 60 * MINUTE_MS;
