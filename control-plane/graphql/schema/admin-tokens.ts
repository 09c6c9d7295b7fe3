/**
 * AdminToken in GraphQL: the type, the `adminTokens` query and create/revoke mutations. The token value
 * appears only in the create payload (`token`), once. Verification of presented tokens is in context.ts.
 */
import {
  adminTokenCursor,
  createAdminToken,
  listAdminTokens,
  revokeAdminToken,
  type AdminToken,
} from '../../repos/admin-tokens.js';
import { builder } from '../builder.js';
import { resolvePage } from '../connections.js';
import type { UserErrorShape } from '../errors.js';
import { runMutation } from '../mutation.js';
import { AdminRoleEnum, entityPayload, UserErrorRef, UserWarningRef } from './common.js';

const AdminTokenRef = builder.objectRef<AdminToken>('AdminToken').implement({
  description: 'A bearer token for this API. ADMIN may change everything; VIEWER may only query.',
  fields: (t) => ({
    id: t.exposeID('id'),
    name: t.exposeString('name'),
    role: t.field({ type: AdminRoleEnum, resolve: (a) => a.role }),
    tokenPreview: t.exposeString('tokenPreview'),
    revoked: t.boolean({ resolve: (a) => a.revokedAt !== null }),
    revokedAt: t.field({ type: 'DateTime', nullable: true, resolve: (a) => a.revokedAt }),
    lastUsedAt: t.field({ type: 'DateTime', nullable: true, resolve: (a) => a.lastUsedAt }),
    createdAt: t.field({ type: 'DateTime', resolve: (a) => a.createdAt }),
  }),
});

const AdminTokenConnection = builder.connectionObject({ type: AdminTokenRef, name: 'AdminTokenConnection' }, { name: 'AdminTokenEdge' });

builder.queryFields((t) => ({
  adminTokens: t.connection(
    { type: AdminTokenRef, resolve: (_root, args, ctx) => resolvePage(args, (page) => listAdminTokens(ctx.db, page), adminTokenCursor) },
    AdminTokenConnection,
  ),
}));

const CreateAdminTokenInput = builder.inputType('CreateAdminTokenInput', {
  fields: (t) => ({
    name: t.string({ required: true }),
    role: t.field({ type: AdminRoleEnum, required: true }),
  }),
});

const RevokeAdminTokenInput = builder.inputType('RevokeAdminTokenInput', { fields: (t) => ({ id: t.id({ required: true }) }) });

interface IssuedTokenPayload {
  value?: AdminToken | undefined;
  token?: string | undefined;
  errors: UserErrorShape[];
}

const CreateAdminTokenPayload = builder.objectRef<IssuedTokenPayload>('CreateAdminTokenPayload').implement({
  fields: (t) => ({
    adminToken: t.field({ type: AdminTokenRef, nullable: true, resolve: (p) => p.value ?? null }),
    token: t.string({ nullable: true, description: 'The token value (gha_…). Shown this once.', resolve: (p) => p.token ?? null }),
    errors: t.field({ type: [UserErrorRef], resolve: (p) => p.errors }),
    warnings: t.field({ type: [UserWarningRef], resolve: () => [] }),
  }),
});

const RevokeAdminTokenPayload = entityPayload('RevokeAdminTokenPayload', 'adminToken', AdminTokenRef);

builder.mutationFields((t) => ({
  createAdminToken: t.field({
    type: CreateAdminTokenPayload,
    args: { input: t.arg({ type: CreateAdminTokenInput, required: true }) },
    resolve: (_root, { input }, ctx) =>
      runMutation(ctx, async (trx) => {
        const issued = await createAdminToken(trx, input);
        return { value: issued.adminToken, token: issued.token };
      }),
  }),
  revokeAdminToken: t.field({
    type: RevokeAdminTokenPayload,
    description: 'Revokes the token (idempotent). The last active ADMIN token cannot be revoked.',
    args: { input: t.arg({ type: RevokeAdminTokenInput, required: true }) },
    resolve: (_root, { input }, ctx) => runMutation(ctx, async (trx) => ({ value: await revokeAdminToken(trx, input.id) })),
  }),
}));
