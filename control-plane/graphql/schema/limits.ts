/**
 * Limit types shared by keys, users and access profiles: Budget (`{maxUsd, period}`), RateLimit
 * (`{requestsPerMinute, tokensPerMinute}`), the fallback while shared counters are unreachable, their
 * inputs, and SpendSummary / BudgetUsage (what was spent, from the spend nodes report).
 */
import { BUDGET_PERIODS, type Budget, type RateLimit } from '../../../data-plane/snapshot/schema.js';
import { nanosToUsd } from '../../../data-plane/snapshot/budget-window.js';
import type { BudgetUsage, SpendTotals } from '../../repos/spend.js';
import { builder } from '../builder.js';

export const BudgetPeriodEnum = builder.enumType('BudgetPeriod', {
  description: 'A fixed UTC calendar window: minute, hour, day, ISO week (from Monday), month.',
  values: BUDGET_PERIODS,
});

export const LimitsFallbackEnum = builder.enumType('LimitsFallback', {
  description:
    'What nodes do while the shared counters (Redis) are unreachable: FAIL_CLOSED refuses the key\'s requests (429); ' +
    'LOCAL_ALLOWANCE admits up to a bounded share of each limit per node from local counters, and settles spend as usual.',
  values: ['FAIL_CLOSED', 'LOCAL_ALLOWANCE'] as const,
});

export const BudgetRef = builder.objectRef<Budget>('Budget').implement({
  description: 'A spend cap in USD per period.',
  fields: (t) => ({
    maxUsd: t.exposeFloat('maxUsd'),
    period: t.field({ type: BudgetPeriodEnum, resolve: (b) => b.period }),
  }),
});

export const RateLimitRef = builder.objectRef<RateLimit>('RateLimit').implement({
  description: 'Requests per minute (every /mcp call and LLM request) and LLM tokens per minute, across all nodes.',
  fields: (t) => ({
    requestsPerMinute: t.exposeInt('requestsPerMinute', { nullable: true }),
    tokensPerMinute: t.exposeInt('tokensPerMinute', { nullable: true }),
  }),
});

export const BudgetInput = builder.inputType('BudgetInput', {
  fields: (t) => ({
    maxUsd: t.float({ required: true, description: 'More than 0' }),
    period: t.field({ type: BudgetPeriodEnum, required: true }),
  }),
});

export const RateLimitInput = builder.inputType('RateLimitInput', {
  description: 'At least one of the two.',
  fields: (t) => ({
    requestsPerMinute: t.int(),
    tokensPerMinute: t.int(),
  }),
});

export const SpendSummaryRef = builder.objectRef<SpendTotals>('SpendSummary').implement({
  description: 'Spend reported by nodes (exact sums of per-request costs).',
  fields: (t) => ({
    requests: t.exposeInt('requests'),
    costUsd: t.exposeFloat('costUsd'),
    costNanoUsd: t.string({ description: 'The exact cost in 1e-9 USD (an integer, as a string)', resolve: (s) => String(s.costNanos) }),
    inputTokens: t.exposeFloat('inputTokens'),
    outputTokens: t.exposeFloat('outputTokens'),
    cacheCreationTokens: t.exposeFloat('cacheCreationTokens'),
    cacheReadTokens: t.exposeFloat('cacheReadTokens'),
  }),
});

export const BudgetUsageRef = builder.objectRef<BudgetUsage>('BudgetUsage').implement({
  description: 'A budget and what has been spent in its current window.',
  fields: (t) => ({
    maxUsd: t.float({ resolve: (u) => u.budget.maxUsd }),
    period: t.field({ type: BudgetPeriodEnum, resolve: (u) => u.budget.period }),
    windowStart: t.field({ type: 'DateTime', resolve: (u) => u.windowStart }),
    windowEnd: t.field({ type: 'DateTime', resolve: (u) => u.windowEnd }),
    spentUsd: t.float({ resolve: (u) => nanosToUsd(u.spentNanos) }),
    remainingUsd: t.float({ resolve: (u) => Math.max(0, u.budget.maxUsd - nanosToUsd(u.spentNanos)) }),
  }),
});
