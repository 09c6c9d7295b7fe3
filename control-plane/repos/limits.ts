/**
 * Budgets and rate limits as keys, users and access profiles store them: validation with field paths,
 * and the JSON columns (`budgets`, `rate_limit`). The shapes are the snapshot's (`Budget`, `RateLimit`),
 * so what is stored is what nodes enforce. It does not meter or enforce anything (data-plane/limits does).
 */
import { z } from 'zod';
import {
  BUDGET_PERIODS,
  BudgetSchema,
  RateLimitSchema,
  type Budget,
  type KeyLimitsEntry,
  type LimitsFallback,
  type RateLimit,
} from '../../data-plane/snapshot/schema.js';
import { isCountableUsd, MAX_USD } from '../../data-plane/snapshot/budget-window.js';
import type { IssueList } from './errors.js';

export interface BudgetInput {
  maxUsd: number;
  period: string;
}

export interface RateLimitInput {
  requestsPerMinute?: number | null;
  tokensPerMinute?: number | null;
}

/** Budgets: each positive and finite, one per period (two daily budgets would only mean the smaller). */
export function normaliseBudgets(input: readonly BudgetInput[], field: string, issues: IssueList): Budget[] {
  const out: Budget[] = [];
  input.forEach((b, i) => {
    const path = `${field}.${i}`;
    if (!(BUDGET_PERIODS as readonly string[]).includes(b.period)) {
      issues.add('INVALID_VALUE', `${path}.period`, `period must be one of ${BUDGET_PERIODS.join(', ')}`);
      return;
    }
    if (!isCountableUsd(b.maxUsd, true)) {
      issues.add('INVALID_VALUE', `${path}.maxUsd`, `maxUsd must be more than 0 and at most ${MAX_USD} (USD)`);
      return;
    }
    if (out.some((x) => x.period === b.period)) {
      issues.add('DUPLICATE', `${path}.period`, `a ${b.period.toLowerCase()} budget is given twice`);
      return;
    }
    out.push({ maxUsd: b.maxUsd, period: b.period as Budget['period'] });
  });
  return out;
}

/** A rate limit needs at least one of its two numbers; null input = no rate limit. */
export function normaliseRateLimit(input: RateLimitInput | null, field: string, issues: IssueList): RateLimit | null {
  if (input === null) return null;
  const rpm = input.requestsPerMinute ?? null;
  const tpm = input.tokensPerMinute ?? null;
  for (const [name, value] of [['requestsPerMinute', rpm], ['tokensPerMinute', tpm]] as const) {
    if (value !== null && (!Number.isInteger(value) || value < 1)) issues.add('INVALID_VALUE', `${field}.${name}`, `${name} must be a whole number of at least 1`);
  }
  if (rpm === null && tpm === null) {
    issues.add('REQUIRED', field, 'a rate limit needs requestsPerMinute or tokensPerMinute (or pass null for none)');
    return null;
  }
  return { requestsPerMinute: rpm, tokensPerMinute: tpm };
}

const BudgetsSchema = z.array(BudgetSchema);

export function parseBudgets(json: string): Budget[] {
  return BudgetsSchema.parse(JSON.parse(json));
}

export function parseRateLimit(json: string | null): RateLimit | null {
  return json === null ? null : RateLimitSchema.parse(JSON.parse(json));
}

export function serializeBudgets(budgets: readonly Budget[]): string {
  return JSON.stringify(budgets.map((b) => ({ maxUsd: b.maxUsd, period: b.period })));
}

export function serializeRateLimit(limit: RateLimit | null): string | null {
  return limit === null ? null : JSON.stringify({ requestsPerMinute: limit.requestsPerMinute, tokensPerMinute: limit.tokensPerMinute });
}

/** The snapshot's limits entry for stored columns, or undefined when the key has no limits at all. */
export function limitsEntry(budgetsJson: string, rateLimitJson: string | null, fallback: LimitsFallback): KeyLimitsEntry | undefined {
  const budgets = parseBudgets(budgetsJson);
  const rateLimit = parseRateLimit(rateLimitJson);
  if (budgets.length === 0 && rateLimit === null) return undefined;
  return { budgets, rateLimit, fallback };
}
