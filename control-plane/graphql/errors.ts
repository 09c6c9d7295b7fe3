/**
 * The GraphQL boundary's error table: how failures become what clients see. Expected input problems
 * (`InputError`) become `UserError`s in mutation payloads; auth failures become GraphQL errors with a
 * stable `extensions.code`; anything else is left for yoga to mask. Nothing here decides policy.
 */
import { createGraphQLError } from 'graphql-yoga';
import type { GraphQLError } from 'graphql';
import type { InputError } from '../repos/errors.js';

/** `extensions.code` of the GraphQL errors this API raises itself. */
export type GraphQLErrorCode = 'UNAUTHENTICATED' | 'FORBIDDEN' | 'BAD_USER_INPUT';

/** What a mutation payload's `errors` list holds. */
export interface UserErrorShape {
  /** Path in the operation's arguments, e.g. `input.headers.0.name`; null when no one field is at fault. */
  field: string | null;
  code: string;
  message: string;
}

export function unauthenticated(message: string): GraphQLError {
  return createGraphQLError(message, {
    extensions: {
      code: 'UNAUTHENTICATED' satisfies GraphQLErrorCode,
      // yoga turns this into the HTTP status and headers, and strips it from the response body.
      http: { status: 401, headers: { 'WWW-Authenticate': 'Bearer realm="gatehouse"' } },
    },
  });
}

export function forbidden(role: string): GraphQLError {
  return createGraphQLError(`an ${role} token may not do this; an ADMIN token is required`, {
    extensions: { code: 'FORBIDDEN' satisfies GraphQLErrorCode, http: { status: 403 } },
  });
}

/** For queries, which have no payload to carry user errors (a bad cursor, say). */
export function badUserInput(error: InputError): GraphQLError {
  return createGraphQLError(error.message, {
    extensions: { code: 'BAD_USER_INPUT' satisfies GraphQLErrorCode, field: error.field, reason: error.code },
  });
}

/** Repository fields are relative to the input object; clients see them from the argument (`input.…`). */
export function toUserErrors(error: InputError, argument = 'input'): UserErrorShape[] {
  return error.issues.map((issue) => ({
    field: issue.field === null ? argument : `${argument}.${issue.field}`,
    code: issue.code,
    message: issue.message,
  }));
}
