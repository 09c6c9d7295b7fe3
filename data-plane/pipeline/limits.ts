/**
 * The limits stage's hook: a `Limiter` admits a call before anything is sent upstream and is told what it
 * cost afterwards. Rate limits refuse at `admit` (`rate_limited`, with `Retry-After` in the error's headers);
 * budgets refuse at `admit` (`budget_exceeded`) and are charged at `settle`.
 *
 * Contract: `admit` runs after authorize, once per upstream-bound JSON-RPC request (`tools/call`,
 * `tools/list`) or LLM call; `settle` is called exactly once for every admission, after the forward stage,
 * whatever its outcome (`usage` null when nothing was metered). `settle` must not throw or block the
 * answer (queue the write). The implementation lives in `data-plane/limits/` (governance); until then the
 * node runs `NO_LIMITS`.
 */
import type { GatewayError } from '../errors.js';
import type { Caller, RouteName } from './context.js';

/** What one call cost, as far as the forward stage knows it. */
export interface Usage {
  costUsd?: number;
  inputTokens?: number;
  outputTokens?: number;
  cacheReadTokens?: number;
  cacheWriteTokens?: number;
  /** The LLM model the tokens were priced for (spend reports). */
  model?: string;
}

/** What is being admitted. */
export interface LimitSubject {
  readonly route: RouteName;
  readonly caller: Caller;
  /** JSON-RPC method, or `POST /v1/messages` style for HTTP routes. */
  readonly method: string;
  readonly server: string | null;
  readonly tool: string | null;
  /**
   * An upper bound of what the call can cost, in nano-USD, when it is known before the call runs but its
   * cost is not (an LLM call: its prompt size and `max_tokens` at the model's prices). The Limiter reserves
   * it on the budgets at admission and settles the actual cost against it. Undefined: no bound known.
   */
  readonly maxCostNanos?: number | undefined;
}

export interface Admission {
  settle(usage: Usage | null): void;
}

export interface Limiter {
  admit(subject: LimitSubject): Admission | GatewayError | Promise<Admission | GatewayError>;
}

const NOTHING_TO_SETTLE: Admission = { settle: () => undefined };

/** Admits everything (the limits stage until a real Limiter is configured). */
export const NO_LIMITS: Limiter = { admit: () => NOTHING_TO_SETTLE };
