/**
 * Types every domain shares: the DateTime scalar, UserError (the typed input problems in mutation
 * payloads), the root Query/Mutation types with their role requirements, and configVersion/viewer.
 */
import { createGraphQLError } from 'graphql-yoga';
import { currentConfigVersion } from '../../repos/config-state.js';
import type { AdminPrincipal } from '../../repos/admin-tokens.js';
import type { ObjectRef } from '@pothos/core';
import { builder, type BuilderTypes } from '../builder.js';
import type { UserErrorShape } from '../errors.js';
import type { InputWarning } from '../../repos/tool-warnings.js';

/**
 * ISO-8601 instants as strings. Input is only checked to be a string here: whether it parses, and whether
 * it is in the future, are reported as user errors with a field path by the repository.
 */
builder.scalarType('DateTime', {
  description: 'An ISO-8601 instant, e.g. 2030-01-31T00:00:00.000Z',
  serialize: (value) => value,
  parseValue: (value) => {
    if (typeof value !== 'string') throw createGraphQLError('DateTime must be an ISO-8601 string');
    return value;
  },
});

export const UserErrorRef = builder.objectRef<UserErrorShape>('UserError').implement({
  description: 'A problem with the input of a mutation; the mutation changed nothing.',
  fields: (t) => ({
    field: t.exposeString('field', { nullable: true, description: 'Path in the arguments, e.g. "input.headers.0.name"' }),
    code: t.exposeString('code', { description: 'Stable UPPER_SNAKE code, e.g. NAME_TAKEN, INVALID_URL, NOT_FOUND' }),
    message: t.exposeString('message'),
  }),
});

export const UserWarningRef = builder.objectRef<InputWarning>('UserWarning').implement({
  description: 'Something about the input worth knowing that did not stop the mutation (e.g. a tool the known catalog lacks).',
  fields: (t) => ({
    field: t.exposeString('field', { nullable: true, description: 'Path in the arguments, e.g. "input.servers.0.tools.1"' }),
    code: t.exposeString('code', { description: 'Stable UPPER_SNAKE code, e.g. UNKNOWN_TOOL, TOOL_NOT_EXECUTABLE' }),
    message: t.exposeString('message'),
  }),
});

/** Warnings from a repository, with fields seen from the argument (`input.…`) like user errors. */
export function toUserWarnings(warnings: readonly InputWarning[], argument = 'input'): InputWarning[] {
  return warnings.map((w) => ({ ...w, field: w.field === null ? argument : `${argument}.${w.field}` }));
}

export const AdminRoleEnum = builder.enumType('AdminRole', { values: ['ADMIN', 'VIEWER'] as const });

const ViewerRef = builder.objectRef<AdminPrincipal>('Viewer').implement({
  description: 'The admin token making this request.',
  fields: (t) => ({
    tokenId: t.exposeID('tokenId'),
    name: t.exposeString('name'),
    role: t.field({ type: AdminRoleEnum, resolve: (p) => p.role }),
  }),
});

// Every field of Query needs a verified token (any role); every field of Mutation needs ADMIN.
builder.queryType({ authScopes: { viewer: true } });
builder.mutationType({ authScopes: { admin: true } });

builder.queryFields((t) => ({
  configVersion: t.int({
    description: 'The configuration version data-plane nodes converge on; bumped by every change they serve.',
    resolve: (_root, _args, ctx) => currentConfigVersion(ctx.db),
  }),
  viewer: t.field({ type: ViewerRef, resolve: (_root, _args, ctx) => ctx.principal }),
}));


/** Internal shape of a payload that carries one entity; the entity's field name is per type. */
export interface EntityPayload<T> {
  value?: T | undefined;
  errors: UserErrorShape[];
  warnings?: InputWarning[] | undefined;
}

/**
 * A mutation payload type `{<entityField>: T, errors: [UserError!]!, warnings: [UserWarning!]!}`. Each mutation gets its own payload
 * type (same shape today) so one can grow a field without changing the others.
 */
export function entityPayload<T>(name: string, entityField: string, ref: ObjectRef<BuilderTypes, T>) {
  return builder.objectRef<EntityPayload<T>>(name).implement({
    fields: (t) => ({
      // Pothos cannot evaluate its conditional resolver-result type for a generic T; the ref ties T to the
      // field type, so the cast loses nothing.
      [entityField]: t.field({ type: ref, nullable: true, resolve: (p) => (p.value ?? null) as never }),
      errors: t.field({ type: [UserErrorRef], resolve: (p) => p.errors }),
      warnings: t.field({ type: [UserWarningRef], resolve: (p) => p.warnings ?? [] }),
    }),
  });
}
