/**
 * Spend in GraphQL: `VirtualKey.spend` / `User.spend` (exact sums of what nodes reported, optionally over a
 * time range) and `budgetUsage` (each budget with what was spent in its current window).
 */
import { budgetUsage, spendTotals } from '../../repos/spend.js';
import { builder } from '../builder.js';
import { BudgetUsageRef, SpendSummaryRef } from './limits.js';
import { UserRef } from './users.js';
import { VirtualKeyRef } from './virtual-keys.js';

builder.objectFields(VirtualKeyRef, (t) => ({
  spend: t.field({
    type: SpendSummaryRef,
    args: { from: t.arg({ type: 'DateTime' }), to: t.arg({ type: 'DateTime' }) },
    resolve: (k, args, ctx) =>
      spendTotals(ctx.db, { keyId: k.id, ...(args.from != null ? { from: new Date(args.from).toISOString() } : {}), ...(args.to != null ? { to: new Date(args.to).toISOString() } : {}) }),
  }),
  budgetUsage: t.field({ type: [BudgetUsageRef], resolve: (k, _args, ctx) => budgetUsage(ctx.db, k.budgets, { keyId: k.id }) }),
}));

builder.objectFields(UserRef, (t) => ({
  spend: t.field({
    type: SpendSummaryRef,
    description: 'Spend over all of the user\'s keys',
    args: { from: t.arg({ type: 'DateTime' }), to: t.arg({ type: 'DateTime' }) },
    resolve: (u, args, ctx) =>
      spendTotals(ctx.db, { userId: u.id, ...(args.from != null ? { from: new Date(args.from).toISOString() } : {}), ...(args.to != null ? { to: new Date(args.to).toISOString() } : {}) }),
  }),
}));
