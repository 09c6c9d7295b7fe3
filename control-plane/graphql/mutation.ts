/**
 * How every mutation runs: one transaction, `InputError`s translated once into the payload's `errors`,
 * and a snapshot publish requested after commit when the config version moved. Unexpected errors are
 * rethrown for yoga to mask. It does not validate anything itself (repositories do).
 */
import { currentConfigVersion } from '../repos/config-state.js';
import { InputError } from '../repos/errors.js';
import type { Trx } from '../repos/transaction.js';
import type { GraphQLContext } from './context.js';
import { toUserErrors, type UserErrorShape } from './errors.js';

export type Payload<T extends object> = Partial<T> & { errors: UserErrorShape[] };

export async function runMutation<T extends object>(ctx: GraphQLContext, work: (trx: Trx) => Promise<T>): Promise<Payload<T>> {
  let versionMoved = false;
  try {
    const result = await ctx.db.transaction().execute(async (trx) => {
      // Comparing versions (rather than trusting each caller to say whether it bumped) keeps the rule
      // "notify after every committed bump" true for any repository function a mutation calls. A
      // concurrent commit can make this true spuriously; an extra publish is harmless.
      const before = await currentConfigVersion(trx);
      const value = await work(trx);
      versionMoved = (await currentConfigVersion(trx)) !== before;
      return value;
    });
    if (versionMoved) ctx.configChanged();
    return { ...result, errors: [] };
  } catch (error) {
    // Every entity field of a payload is optional, so an errors-only object is a valid Payload<T>; TypeScript
    // cannot see that for a generic T.
    if (error instanceof InputError) return { errors: toUserErrors(error) } as Payload<T>;
    throw error;
  }
}
