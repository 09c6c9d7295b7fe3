/**
 * Keyset pagination for list queries: opaque cursors over a unique sort key ((created_at, id) or (id)),
 * so a page costs one indexed range scan however deep it is. It does not compute Relay pageInfo (the API
 * layer does, from the `limit + 1` rows asked for here).
 */
import { sql, type SelectQueryBuilder, type SqlBool } from 'kysely';
import { InputError } from './errors.js';

/** A page request with cursors still opaque, as the API layer receives it. */
export interface PageRequest {
  after?: string | undefined;
  before?: string | undefined;
  /** Rows to fetch (the API layer asks for one more than it shows, to know whether a next page exists). */
  limit: number;
  /** True when paging backwards (`last`): rows come back in descending order. */
  inverted: boolean;
}

const CURSOR_VERSION = 'v1';

/** Cursor = base64url(JSON [version, ...sort key values]); opaque to clients, stable across replicas. */
export function encodeCursor(values: readonly string[]): string {
  return Buffer.from(JSON.stringify([CURSOR_VERSION, ...values]), 'utf8').toString('base64url');
}

/** Keys whose columns are integers (audit row ids): their cursor values must be digits. */
const INTEGER_KEY = /^\d{1,15}$/;

/**
 * `integer`: the key's columns are integers. A cursor is the caller's text: a non-number compared with an
 * integer column is an error on PostgreSQL (not a page), so it is refused here like any foreign cursor.
 */
export function decodeCursor(cursor: string, arity: number, field: string, integer = false): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    parsed = null;
  }
  if (
    !Array.isArray(parsed) ||
    parsed[0] !== CURSOR_VERSION ||
    parsed.length !== arity + 1 ||
    !parsed.every((v): v is string => typeof v === 'string') ||
    (integer && !parsed.slice(1).every((v) => INTEGER_KEY.test(v)))
  ) {
    throw new InputError('INVALID_CURSOR', field, `${field} is not a cursor from this list`);
  }
  return parsed.slice(1);
}

/**
 * Applies cursor bounds, order and limit over `columns` (a unique key, most significant first). Row-value
 * comparison `(a, b) > (x, y)` works the same on SQLite (3.15+) and PostgreSQL and uses a composite index.
 */
export function applyKeysetPage<DB, TB extends keyof DB, O>(
  qb: SelectQueryBuilder<DB, TB, O>,
  columns: readonly string[],
  page: PageRequest,
  options: { integer?: boolean } = {},
): SelectQueryBuilder<DB, TB, O> {
  const key = sql.join(columns.map((c) => sql.ref(c)));
  let q = qb;
  if (page.after !== undefined) {
    const values = decodeCursor(page.after, columns.length, 'after', options.integer);
    q = q.where(sql<SqlBool>`(${key}) > (${sql.join(values)})`);
  }
  if (page.before !== undefined) {
    const values = decodeCursor(page.before, columns.length, 'before', options.integer);
    q = q.where(sql<SqlBool>`(${key}) < (${sql.join(values)})`);
  }
  const direction = page.inverted ? sql`desc` : sql`asc`;
  for (const column of columns) q = q.orderBy(sql`${sql.ref(column)} ${direction}`);
  return q.limit(page.limit);
}
