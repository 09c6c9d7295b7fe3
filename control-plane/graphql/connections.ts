/**
 * Relay connections over the repositories' keyset pages: Pothos computes edges and pageInfo from the
 * `limit + 1` rows a repository returns. Page size defaults to 20 and is capped at 100.
 */
import { resolveCursorConnection, type DefaultConnectionArguments, type ResolveCursorConnectionArgs } from '@pothos/plugin-relay';
import { InputError } from '../repos/errors.js';
import type { PageRequest } from '../repos/pagination.js';
import { badUserInput } from './errors.js';

export const DEFAULT_PAGE_SIZE = 20;
export const MAX_PAGE_SIZE = 100;

export async function resolvePage<T>(
  args: DefaultConnectionArguments,
  fetch: (page: PageRequest) => Promise<T[]>,
  toCursor: (item: T) => string,
) {
  // Pothos refuses a negative size with an error that carries no code; ours says which argument, as a cursor's does.
  for (const field of ['first', 'last'] as const) {
    const size = args[field];
    if (size !== null && size !== undefined && size < 0) throw badUserInput(new InputError('INVALID_VALUE', field, `${field} must be 0 or more`));
  }
  try {
    return await resolveCursorConnection(
      { args, toCursor, defaultSize: DEFAULT_PAGE_SIZE, maxSize: MAX_PAGE_SIZE },
      (page: ResolveCursorConnectionArgs) => fetch(page),
    );
  } catch (error) {
    if (error instanceof InputError) throw badUserInput(error);
    throw error;
  }
}
