/**
 * Spend in GraphQL: `VirtualKey.spend` / `User.spend` (exact sums of what nodes reported, optionally over a
 * time range) and `budgetUsage` (each budget with what was spent in its current window); `User.budgets`
 * and `setUserBudgets` (caps over all of a user's keys).
 */
import { budgetUsage, spendTotals } from '../../repos/spend.js';
import { getUser } from '../../repos/users.js';
import { getUserBudgets, setUserBudgets } from '../../repos/user-budgets.js';
import { InputError } from '../../repos/errors.js';
import { builder } from '../builder.js';
import { badUserInput } from '../errors.js';
import { runMutation } from '../mutation.js';
import { entityPayload } from './common.js';
import { BudgetInput, BudgetRef, BudgetUsageRef, SpendSummaryRef } from './limits.js';
import { UserRef } from './users.js';
import { VirtualKeyRef } from './virtual-keys.js';

/** `from`/`to` arguments as canonical ISO instants; an unparsable one is a BAD_USER_INPUT error, not a crash. */
function range(args: { from?: string | null; to?: string | null }): { from?: string; to?: string } {
  const out: { from?: string; to?: string } = {};
  for (const name of ['from', 'to'] as const) {
    const value = args[name];
    if (value == null) continue;
    const ms = Date.parse(value);
    if (Number.isNaN(ms)) throw badUserInput(new InputError('INVALID_DATETIME', name, `${name} is not an ISO-8601 date-time (e.g. 2030-01-31T00:00:00Z)`));
    out[name] = new Date(ms).toISOString();
  }
  return out;
}

builder.objectFields(VirtualKeyRef, (t) => ({
  spend: t.field({
    type: SpendSummaryRef,
    args: { from: t.arg({ type: 'DateTime' }), to: t.arg({ type: 'DateTime' }) },
    resolve: (k, args, ctx) => spendTotals(ctx.db, { keyId: k.id, ...range(args) }),
  }),
  budgetUsage: t.field({ type: [BudgetUsageRef], resolve: (k, _args, ctx) => budgetUsage(ctx.db, k.budgets, { keyId: k.id }) }),
}));

builder.objectFields(UserRef, (t) => ({
  spend: t.field({
    type: SpendSummaryRef,
    description: 'Spend over all of the user\'s keys',
    args: { from: t.arg({ type: 'DateTime' }), to: t.arg({ type: 'DateTime' }) },
    resolve: (u, args, ctx) => spendTotals(ctx.db, { userId: u.id, ...range(args) }),
  }),
}));

builder.objectFields(UserRef, (t) => ({
  budgets: t.field({ type: [BudgetRef], description: 'Budgets over all of the user\'s keys', resolve: (u, _args, ctx) => getUserBudgets(ctx.db, u.id) }),
  budgetUsage: t.field({
    type: [BudgetUsageRef],
    resolve: async (u, _args, ctx) => budgetUsage(ctx.db, await getUserBudgets(ctx.db, u.id), { userId: u.id }),
  }),
}));

const SetUserBudgetsInput = builder.inputType('SetUserBudgetsInput', {
  description: 'Replaces the user\'s budgets ([] removes them); they cap the spend of all the user\'s keys together.',
  fields: (t) => ({
    userId: t.id({ required: true }),
    budgets: t.field({ type: [BudgetInput], required: true }),
  }),
});

const SetUserBudgetsPayload = entityPayload('SetUserBudgetsPayload', 'user', UserRef);

builder.mutationFields((t) => ({
  setUserBudgets: t.field({
    type: SetUserBudgetsPayload,
    args: { input: t.arg({ type: SetUserBudgetsInput, required: true }) },
    resolve: (_root, { input }, ctx) =>
      runMutation(ctx, async (trx) => {
        await setUserBudgets(trx, input.userId, input.budgets);
        return { value: (await getUser(trx, input.userId)) ?? undefined };
      }),
  }),
}));
