/**
 * Spend that nodes report (one row per request id: a report retried after a lost answer counts once),
 * and its sums per key and per user, over all time or one budget window. Costs are integer nano-USD, so
 * the sums are exact. Not a config change (no version bump). It does not price anything (nodes do, from
 * the provider's price table) or enforce budgets (nodes do, against shared counters).
 */
import { sql } from 'kysely';
import { budgetWindowEnd, budgetWindowStart, nanosToUsd } from '../../data-plane/snapshot/budget-window.js';
import type { Budget } from '../../data-plane/snapshot/schema.js';
import type { SpendReport } from '../../data-plane/snapshot/stream-protocol.js';

export type { SpendReport };
import type { SpendEventRow } from '../db/schema.js';
import { nowIso, type Db } from './transaction.js';

/** Records reports; a request id seen before is skipped. Returns how many were new. */
export async function recordSpend(db: Db, nodeId: string, reports: readonly SpendReport[]): Promise<number> {
  let added = 0;
  const recordedAt = nowIso();
  for (const r of reports) {
    const row: SpendEventRow = {
      request_id: r.requestId,
      key_id: r.keyId,
      user_id: r.userId,
      node_id: nodeId,
      kind: r.kind,
      model: r.model,
      input_tokens: r.inputTokens,
      output_tokens: r.outputTokens,
      cache_creation_tokens: r.cacheCreationTokens,
      cache_read_tokens: r.cacheReadTokens,
      cost_nanos: r.costNanos,
      at: new Date(r.at).toISOString(),
      recorded_at: recordedAt,
    };
    const result = await db.insertInto('spend_events').values(row).onConflict((oc) => oc.column('request_id').doNothing()).executeTakeFirst();
    added += Number(result.numInsertedOrUpdatedRows ?? 0n);
  }
  return added;
}

export interface SpendTotals {
  requests: number;
  costNanos: number;
  costUsd: number;
  inputTokens: number;
  outputTokens: number;
  cacheCreationTokens: number;
  cacheReadTokens: number;
}

export interface SpendFilter {
  keyId?: string;
  userId?: string;
  /** ISO instants: [from, to). */
  from?: string;
  to?: string;
}

export async function spendTotals(db: Db, filter: SpendFilter): Promise<SpendTotals> {
  let q = db
    .selectFrom('spend_events')
    .select((eb) => [
      eb.fn.countAll<number>().as('requests'),
      // coalesce: sum over no rows is NULL; PostgreSQL returns sums of bigint as numeric text.
      sql<string | number>`coalesce(sum(cost_nanos), 0)`.as('cost'),
      sql<string | number>`coalesce(sum(input_tokens), 0)`.as('input'),
      sql<string | number>`coalesce(sum(output_tokens), 0)`.as('output'),
      sql<string | number>`coalesce(sum(cache_creation_tokens), 0)`.as('cache_creation'),
      sql<string | number>`coalesce(sum(cache_read_tokens), 0)`.as('cache_read'),
    ]);
  if (filter.keyId !== undefined) q = q.where('key_id', '=', filter.keyId);
  if (filter.userId !== undefined) q = q.where('user_id', '=', filter.userId);
  if (filter.from !== undefined) q = q.where('at', '>=', filter.from);
  if (filter.to !== undefined) q = q.where('at', '<', filter.to);
  const row = await q.executeTakeFirstOrThrow();
  const costNanos = Number(row.cost);
  return {
    requests: Number(row.requests),
    costNanos,
    costUsd: nanosToUsd(costNanos),
    inputTokens: Number(row.input),
    outputTokens: Number(row.output),
    cacheCreationTokens: Number(row.cache_creation),
    cacheReadTokens: Number(row.cache_read),
  };
}

export interface BudgetUsage {
  budget: Budget;
  windowStart: string;
  windowEnd: string;
  spentNanos: number;
}

/** Each budget with the spend persisted in its current window. */
export async function budgetUsage(db: Db, budgets: readonly Budget[], filter: { keyId?: string; userId?: string }, nowMs = Date.now()): Promise<BudgetUsage[]> {
  const out: BudgetUsage[] = [];
  for (const budget of budgets) {
    const start = budgetWindowStart(budget.period, nowMs);
    const end = budgetWindowEnd(budget.period, start);
    const from = new Date(start).toISOString();
    const to = new Date(end).toISOString();
    const totals = await spendTotals(db, { ...filter, from, to });
    out.push({ budget, windowStart: from, windowEnd: to, spentNanos: totals.costNanos });
  }
  return out;
}
