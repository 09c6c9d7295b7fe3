/**
 * The one error class the SDK throws, with a stable `code` per failure kind: the call did not reach a
 * GraphQL answer (NETWORK, HTTP), the caller may not make it (UNAUTHENTICATED, FORBIDDEN), or the server
 * refused the operation itself (GRAPHQL). It does not cover a mutation's `errors: [UserError]`: those are
 * expected outcomes, returned in the payload for the caller to handle, never thrown.
 */

/** Stable codes: scripts branch on these, so never rename one. */
export type GatehouseErrorCode =
  /** HTTP 401 or a GraphQL error with code UNAUTHENTICATED: the admin token is missing, unknown or revoked. */
  | 'UNAUTHENTICATED'
  /** HTTP 403 or a GraphQL error with code FORBIDDEN: e.g. a VIEWER token used for a mutation. */
  | 'FORBIDDEN'
  /** The request never got an HTTP answer: connection refused, DNS failure, timeout, reset. */
  | 'NETWORK'
  /** The server answered with GraphQL `errors` (invalid variables, BAD_USER_INPUT, masked internal error). */
  | 'GRAPHQL'
  /** The server answered, but not with a usable GraphQL response (e.g. 502 from a proxy, HTML, bad JSON). */
  | 'HTTP';

export const GATEHOUSE_ERROR_CODES = ['UNAUTHENTICATED', 'FORBIDDEN', 'NETWORK', 'GRAPHQL', 'HTTP'] as const satisfies readonly GatehouseErrorCode[];

/** One entry of a GraphQL response's `errors`, reduced to what a caller can act on. */
export interface GraphQLErrorInfo {
  message: string;
  /** `extensions.code` when the server gave one (UNAUTHENTICATED, FORBIDDEN, BAD_USER_INPUT, …). */
  code: string | null;
  path: ReadonlyArray<string | number> | null;
}

export interface GatehouseErrorDetails {
  /** The HTTP status, when the server answered at all. */
  status?: number;
  /** The GraphQL errors of the response, when it had any. */
  graphqlErrors?: readonly GraphQLErrorInfo[];
}

export class GatehouseError extends Error {
  override readonly name = 'GatehouseError';
  readonly code: GatehouseErrorCode;
  readonly status: number | null;
  readonly graphqlErrors: readonly GraphQLErrorInfo[];

  constructor(code: GatehouseErrorCode, message: string, details: GatehouseErrorDetails = {}) {
    // No `cause`: the underlying error (a fetch failure, say) is described in the scrubbed message instead,
    // because an error object attached as is could carry request details that loggers would serialize.
    super(message);
    this.code = code;
    this.status = details.status ?? null;
    this.graphqlErrors = details.graphqlErrors ?? [];
  }
}

/**
 * Removes every occurrence of `secret` from `text`. Error messages are built from server answers and
 * runtime errors that the SDK does not control, so the admin token is scrubbed from each one before it
 * can reach a log, whatever echoed it.
 */
export function scrub(text: string, secret: string): string {
  return secret.length === 0 ? text : text.split(secret).join('[redacted]');
}
