/**
 * A virtual key's spend budgets and rate limit as a configuration document gives them (the article's
 * `budget: {daily_usd}` and `rate_limit: {rpm}`, or SPEC's `budgets: [{maxUsd, period}]` and
 * `rateLimit: {requestsPerMinute, tokensPerMinute}`), parsed into SPEC's shape, and the one adapter that
 * hands them to the key repository. It does not meter or enforce anything.
 *
 * `keyLimitsForRepository` turns them into the key repository's input fields (issue 7: keys store them).
 */
import { isCountableUsd, MAX_USD } from '../../data-plane/snapshot/budget-window.js';
import { BUDGET_PERIODS, type BudgetPeriod } from '../../data-plane/snapshot/schema.js';
import type { IssueList } from '../repos/errors.js';
import { childPath, isRecord, ObjectReader, type FieldSpec } from './document-reader.js';

export { BUDGET_PERIODS, type BudgetPeriod };

export interface KeyBudget {
  maxUsd: number;
  period: BudgetPeriod;
}

export interface KeyRateLimit {
  requestsPerMinute: number | null;
  tokensPerMinute: number | null;
}

export interface KeyLimits {
  /** null when the document says nothing about budgets. */
  budgets: KeyBudget[] | null;
  budgetsPath: string;
  /** null when the document says nothing about a rate limit. */
  rateLimit: KeyRateLimit | null;
  rateLimitPath: string;
}

/** The key fields this module reads, in both spellings; document.ts adds them to a key's field list. */
export const KEY_LIMIT_FIELDS: readonly FieldSpec[] = [
  { name: 'budgets' },
  { name: 'budget' },
  { name: 'rateLimit', aliases: ['rate_limit'] },
];

const ARTICLE_BUDGET_FIELDS: readonly FieldSpec[] = [
  { name: 'dailyUsd', aliases: ['daily_usd'] },
  { name: 'weeklyUsd', aliases: ['weekly_usd'] },
  { name: 'monthlyUsd', aliases: ['monthly_usd'] },
];
const BUDGET_FIELDS: readonly FieldSpec[] = [{ name: 'maxUsd', aliases: ['max_usd'] }, { name: 'period' }];
const RATE_LIMIT_FIELDS: readonly FieldSpec[] = [
  { name: 'requestsPerMinute', aliases: ['rpm', 'requests_per_minute'] },
  { name: 'tokensPerMinute', aliases: ['tpm', 'tokens_per_minute'] },
];

function positiveUsd(value: number | undefined, path: string, issues: IssueList): value is number {
  if (value === undefined) return false;
  if (!isCountableUsd(value, true)) {
    issues.add('INVALID_VALUE', path, `must be more than 0 and at most ${MAX_USD} (USD)`);
    return false;
  }
  return true;
}

function perMinute(value: number | undefined, path: string, issues: IssueList): number | null {
  if (value === undefined) return null;
  if (value < 1) {
    issues.add('INVALID_VALUE', path, 'must be at least 1 per minute');
    return null;
  }
  return value;
}

/** Reads `budget` / `budgets` / `rate_limit` of one key entry. */
export function readKeyLimits(key: ObjectReader): KeyLimits {
  const issues = key.issues;
  let budgets: KeyBudget[] | null = null;

  if (key.has('budget') && key.has('budgets')) {
    issues.add('DUPLICATE', key.pathOf('budgets'), 'give either budget (the article\'s {daily_usd}) or budgets ([{maxUsd, period}]), not both');
  }
  const article = key.object('budget', ARTICLE_BUDGET_FIELDS);
  if (article) {
    budgets = [];
    const pairs: Array<[string, BudgetPeriod]> = [
      ['dailyUsd', 'DAILY'],
      ['weeklyUsd', 'WEEKLY'],
      ['monthlyUsd', 'MONTHLY'],
    ];
    for (const [field, period] of pairs) {
      const usd = article.number(field);
      if (positiveUsd(usd, article.pathOf(field), issues)) budgets.push({ maxUsd: usd, period });
    }
    if (Object.keys(article.source).length === 0) issues.add('REQUIRED', article.path, 'budget needs daily_usd, weekly_usd or monthly_usd');
  }
  const list = key.list('budgets');
  if (list) {
    budgets = [];
    list.value.forEach((item, i) => {
      const path = childPath(list.path, i);
      if (!isRecord(item)) {
        issues.add('INVALID_VALUE', path, 'must be an object {maxUsd, period}');
        return;
      }
      const b = new ObjectReader(item, path, issues, BUDGET_FIELDS);
      b.required('maxUsd');
      b.required('period');
      const usd = b.number('maxUsd');
      const period = b.enumValue('period', BUDGET_PERIODS);
      if (positiveUsd(usd, b.pathOf('maxUsd'), issues) && period !== undefined) {
        if (budgets?.some((x) => x.period === period)) issues.add('DUPLICATE', b.pathOf('period'), `a ${period.toLowerCase()} budget is given twice`);
        else budgets?.push({ maxUsd: usd, period });
      }
    });
  }

  let rateLimit: KeyRateLimit | null = null;
  const rl = key.object('rateLimit', RATE_LIMIT_FIELDS);
  if (rl) {
    const rpm = perMinute(rl.integer('requestsPerMinute'), rl.pathOf('requestsPerMinute'), issues);
    const tpm = perMinute(rl.integer('tokensPerMinute'), rl.pathOf('tokensPerMinute'), issues);
    if (!rl.has('requestsPerMinute') && !rl.has('tokensPerMinute')) {
      issues.add('REQUIRED', rl.path, 'rate_limit needs rpm (requestsPerMinute) or tpm (tokensPerMinute)');
    }
    rateLimit = { requestsPerMinute: rpm, tokensPerMinute: tpm };
  }

  return {
    budgets,
    budgetsPath: key.has('budget') ? key.pathOf('budget') : key.pathOf('budgets'),
    rateLimit,
    rateLimitPath: key.pathOf('rateLimit'),
  };
}

/** Whether the key repository stores budgets and rate limits (it does since 0012_governance). */
export const KEY_REPOSITORY_ACCEPTS_LIMITS = true;

/** The key input fields for these limits; what the document leaves out is left as stored. */
export function keyLimitsForRepository(limits: KeyLimits, _issues: IssueList): { budgets?: KeyBudget[]; rateLimit?: KeyRateLimit | null } {
  return {
    ...(limits.budgets !== null ? { budgets: limits.budgets } : {}),
    ...(limits.rateLimit !== null ? { rateLimit: limits.rateLimit } : {}),
  };
}
