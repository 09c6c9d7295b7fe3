/**
 * Budget windows: which fixed UTC calendar window an instant falls in for each budget period (minute,
 * hour, day, ISO week from Monday, month). Both planes compute windows the same way from this module, so
 * a node's shared counter and the control plane's persisted spend describe the same interval. Pure.
 */
import type { BudgetPeriod } from './schema.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** Start of the window containing `ms` (epoch milliseconds, UTC). */
export function budgetWindowStart(period: BudgetPeriod, ms: number): number {
  switch (period) {
    case 'MINUTELY':
      return ms - (ms % MINUTE);
    case 'HOURLY':
      return ms - (ms % HOUR);
    case 'DAILY':
      return ms - (ms % DAY);
    case 'WEEKLY': {
      const day = ms - (ms % DAY);
      // 1970-01-01 was a Thursday: days since the Monday before it, modulo 7.
      const sinceMonday = (Math.floor(day / DAY) + 3) % 7;
      return day - sinceMonday * DAY;
    }
    case 'MONTHLY': {
      const d = new Date(ms);
      return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
    }
  }
}

/** End (exclusive) of the window starting at `start`. */
export function budgetWindowEnd(period: BudgetPeriod, start: number): number {
  switch (period) {
    case 'MINUTELY':
      return start + MINUTE;
    case 'HOURLY':
      return start + HOUR;
    case 'DAILY':
      return start + DAY;
    case 'WEEKLY':
      return start + 7 * DAY;
    case 'MONTHLY': {
      const d = new Date(start);
      return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
    }
  }
}

/** USD ↔ nano-USD: spend is counted in integers so sums across nodes and reports are exact. */
export const NANOS_PER_USD = 1_000_000_000;

/**
 * The largest USD amount the control plane takes as a budget, a tool's price per call or a model's price per
 * million tokens. In nano-USD it, and one call's cost at such a price (a million-token prompt and its output),
 * stay exact integers below 2^53; an amount such as 1e308 made a call's cost Infinity, which a spend report
 * cannot carry (JSON has no Infinity), so the report was refused and resent forever.
 */
export const MAX_USD = 1_000_000;

/** Whether `usd` is an amount the planes can count: finite, not negative (or, `positive`, above 0), at most MAX_USD. */
export function isCountableUsd(usd: number, positive: boolean): boolean {
  return Number.isFinite(usd) && (positive ? usd > 0 : usd >= 0) && usd <= MAX_USD;
}

export function usdToNanos(usd: number): number {
  return Math.round(usd * NANOS_PER_USD);
}

export function nanosToUsd(nanos: number): number {
  return nanos / NANOS_PER_USD;
}
