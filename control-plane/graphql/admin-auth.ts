/**
 * Admin-token authentication as a yoga plugin, run before the request body is read or a document parsed: a request
 * without a valid token gets 401 and learns nothing about the schema, not even from validation errors.
 * Validation errors then keep their "Did you mean …?" suggestions for ADMIN tokens only (anyone else gets
 * them masked, as graphql-armor's blockFieldSuggestion did for everyone). The principal is kept per request
 * for the context factory. It does not check roles on fields (scope-auth does, see builder.ts).
 */
import type { Plugin } from 'graphql-yoga';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { authenticateAdminToken, type AdminPrincipal } from '../repos/admin-tokens.js';
import { unauthenticated } from './errors.js';
import { parseBearer } from '../../data-plane/snapshot/rules.js';

/** `Bearer <token>` → token: the one parser both planes use (`data-plane/snapshot/rules.ts`). */
export { parseBearer };

const principals = new WeakMap<Request, AdminPrincipal>();

/** The principal the plugin verified for this request, if any. */
export function principalOf(request: Request): AdminPrincipal | undefined {
  return principals.get(request);
}

export async function authenticateRequest(db: Kysely<Database>, request: Request): Promise<AdminPrincipal> {
  const known = principals.get(request);
  if (known) return known;
  const presented = parseBearer(request.headers.get('authorization'));
  if (presented === null) throw unauthenticated('an admin token is required: send Authorization: Bearer <token>');
  const principal = await authenticateAdminToken(db, presented);
  if (!principal) throw unauthenticated('the admin token is not valid or has been revoked');
  principals.set(request, principal);
  return principal;
}

/**
 * Every "Did you mean …?" graphql-js writes: fields, arguments, types, and enum values ("Did you mean the
 * enum value …?", which armor's pattern missed).
 */
const SUGGESTION = /\s*Did you mean [^?]*\?/g;

export function withoutSuggestions<E extends Error>(error: E): E {
  // An error's message is writable; armor masks the same way, keeping locations and extensions.
  error.message = error.message.replace(SUGGESTION, '').trim();
  return error;
}

export function adminAuthPlugin(db: Kysely<Database>): Plugin {
  return {
    // Before yoga reads the body (onRequestParse, not onParams): an anonymous caller's body is never
    // parsed, however large, malformed or deeply nested, and every such request answers the same 401.
    async onRequestParse({ request }) {
      await authenticateRequest(db, request);
    },
    onValidate({ context }) {
      const request = (context as { request?: Request }).request;
      const principal = request ? principals.get(request) : undefined;
      return ({ valid, result, setResult }) => {
        if (!valid && principal?.role !== 'ADMIN') setResult(result.map(withoutSuggestions));
      };
    },
  };
}
