/**
 * The Pothos schema builder and its plugins, nothing else: scope-auth first (so no other plugin's wrapper
 * runs before authorization), then relay for connections and mutation payloads. Types live in schema/.
 */
import SchemaBuilder from '@pothos/core';
import RelayPlugin from '@pothos/plugin-relay';
import ScopeAuthPlugin from '@pothos/plugin-scope-auth';
import type { GraphQLContext } from './context.js';
import { forbidden } from './errors.js';

export const builder = new SchemaBuilder<{
  Context: GraphQLContext;
  AuthScopes: {
    /** Any verified admin token (ADMIN or VIEWER): may read. */
    viewer: boolean;
    /** An ADMIN token: may change things. */
    admin: boolean;
  };
  DefaultFieldNullability: false;
  Scalars: {
    DateTime: { Input: string; Output: string };
    ID: { Input: string; Output: string };
    JSON: { Input: unknown; Output: unknown };
  };
}>({
  plugins: [ScopeAuthPlugin, RelayPlugin],
  defaultFieldNullability: false,
  scopeAuth: {
    // Unauthenticated requests never get this far (the context factory answers 401), so every request
    // here carries a verified principal and only the role remains to check.
    authScopes: (ctx) => ({ viewer: true, admin: ctx.principal.role === 'ADMIN' }),
    unauthorizedError: (_parent, ctx) => forbidden(ctx.principal.role),
  },
  relay: {
    // Plain UUIDs are the ids automation scripts pass around; no global Node lookup to guard.
    nodeQueryOptions: false,
    nodesQueryOptions: false,
    clientMutationId: 'omit',
    cursorType: 'String',
  },
});

/** The builder's schema types, for helpers that take refs (`ObjectRef<BuilderTypes, T>`). */
export type BuilderTypes = typeof builder extends PothosSchemaTypes.SchemaBuilder<infer T> ? T : never;
