/**
 * Budgets per user (issue 7): caps over the spend of all of a user's keys, enforced by nodes next to each
 * key's own budgets. Users are in snapshots, so a change bumps the config version.
 */
import type { Budget } from '../../data-plane/snapshot/schema.js';
import { bumpConfigVersion } from './config-state.js';
import { InputError, IssueList } from './errors.js';
import { normaliseBudgets, parseBudgets, serializeBudgets, type BudgetInput } from './limits.js';
import { inTransaction, nowIso, type Db } from './transaction.js';

export async function getUserBudgets(db: Db, userId: string): Promise<Budget[]> {
  const row = await db.selectFrom('users').select('budgets').where('id', '=', userId).executeTakeFirst();
  return row ? parseBudgets(row.budgets) : [];
}

/** Replaces the user's budgets ([] removes them). */
export async function setUserBudgets(db: Db, userId: string, input: readonly BudgetInput[]): Promise<void> {
  const issues = new IssueList();
  const budgets = normaliseBudgets(input, 'budgets', issues);
  issues.throwIfAny();
  await inTransaction(db, async (trx) => {
    await bumpConfigVersion(trx);
    const result = await trx.updateTable('users').set({ budgets: serializeBudgets(budgets), updated_at: nowIso() }).where('id', '=', userId).executeTakeFirst();
    if (Number(result.numUpdatedRows) === 0) throw new InputError('NOT_FOUND', 'userId', `no user with id "${userId}"`);
  });
}
