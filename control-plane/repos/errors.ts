/**
 * Expected failures of repository operations (bad input, unknown ids, name clashes): one error class with
 * stable codes, thrown by validation and translated once per boundary (GraphQL payload `errors`, later
 * `applyConfig` diffs). Unexpected failures stay plain `Error`s and are masked by the API layer.
 */

/** Stable, UPPER_SNAKE codes: automation scripts match on these, so never rename one. */
export type InputErrorCode =
  | 'REQUIRED'
  | 'INVALID_VALUE'
  | 'INVALID_NAME'
  | 'NAME_TAKEN'
  | 'INVALID_URL'
  | 'INVALID_EMAIL'
  | 'EMAIL_TAKEN'
  | 'INVALID_DATETIME'
  | 'EXPIRES_IN_PAST'
  | 'DUPLICATE'
  | 'NOT_FOUND'
  | 'UNKNOWN_SERVER'
  | 'KEY_REVOKED'
  | 'LAST_ADMIN_TOKEN'
  | 'INVALID_CURSOR'
  /** A virtual key with no servers, without `allowNoServers: true`. */
  | 'NO_SERVERS'
  /** A field of a configuration document this version does not accept yet. */
  | 'NOT_SUPPORTED'
  /** A field a configuration document does not have (usually a typo). */
  | 'UNKNOWN_FIELD'
  /** A document entry that matches more than one stored entity. */
  | 'AMBIGUOUS'
  /** A caller-chosen virtual key value: Gatehouse issues every key value itself. */
  | 'KEY_VALUE_REFUSED'

  /** An access profile that keys were allocated from (deleting it would orphan them). */
  | 'PROFILE_IN_USE'
  | 'NOT_PENDING'
  | 'FINGERPRINT_MISMATCH'
  | 'NODE_CONNECTED';

export interface InputIssue {
  code: InputErrorCode;
  /** Dotted path inside the operation's input (`headers.1.name`), or null when it concerns the whole input. */
  field: string | null;
  message: string;
}

export class InputError extends Error {
  readonly issues: readonly InputIssue[];

  constructor(code: InputErrorCode, field: string | null, message: string);
  constructor(issues: readonly InputIssue[]);
  constructor(codeOrIssues: InputErrorCode | readonly InputIssue[], field?: string | null, message?: string) {
    const issues =
      typeof codeOrIssues === 'string' ? [{ code: codeOrIssues, field: field ?? null, message: message ?? codeOrIssues }] : codeOrIssues;
    if (issues.length === 0) throw new Error('InputError needs at least one issue');
    super(issues.map((i) => i.message).join('; '));
    this.name = 'InputError';
    this.issues = issues;
  }

  get code(): InputErrorCode {
    // The constructor guarantees at least one issue.
    return this.issues[0]!.code;
  }

  get field(): string | null {
    return this.issues[0]!.field;
  }
}

/**
 * The most entries a list in an entity's input may have (tool names, header names, secret headers, stdio
 * env, key grants, model prices). Far above any real configuration; it bounds the work and the snapshot
 * size one request can cause (a list is otherwise bounded only by the 8 MB body: 40,000 entries took
 * 2 to 17 s of the one event loop, and 40,000 granted servers failed the SQLite statement).
 */
export const MAX_LIST_ENTRIES = 1000;

/** Collects every problem with an input before failing, so a caller fixes them all in one round trip. */
export class IssueList {
  private readonly issues: InputIssue[] = [];

  /** Whether `list` is within MAX_LIST_ENTRIES; reports it at `field` when not (the caller then skips it). */
  withinListLimit(list: readonly unknown[], field: string): boolean {
    if (list.length <= MAX_LIST_ENTRIES) return true;
    this.add('INVALID_VALUE', field, `at most ${MAX_LIST_ENTRIES} entries (got ${list.length})`);
    return false;
  }

  add(code: InputErrorCode, field: string | null, message: string): void {
    this.issues.push({ code, field, message });
  }

  get isEmpty(): boolean {
    return this.issues.length === 0;
  }

  /**
   * Whether a problem was already reported at `field` or below it: a requirement such as "needs at least
   * one header" must not be added on top of "this header name is invalid", which is the real cause.
   */
  hasAt(field: string): boolean {
    return this.issues.some((i) => i.field === field || (i.field?.startsWith(`${field}.`) ?? false));
  }

  get all(): readonly InputIssue[] {
    return this.issues;
  }

  throwIfAny(): void {
    if (this.issues.length > 0) throw new InputError(this.issues);
  }
}

/**
 * Whether a database error is a unique-constraint violation (PostgreSQL SQLSTATE 23505, SQLite
 * SQLITE_CONSTRAINT_UNIQUE): the race between our "is it taken?" check and the insert ends here.
 */
export function isUniqueViolation(error: unknown): boolean {
  if (typeof error !== 'object' || error === null || !('code' in error)) return false;
  const code = (error as { code: unknown }).code;
  return code === '23505' || code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}
