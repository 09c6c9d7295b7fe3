/**
 * VirtualKey in GraphQL: the type, `virtualKeys`/`virtualKey` queries, `User.virtualKeys`, and the
 * create/update/rotate/revoke/delete mutations. The plaintext key appears only in the create and rotate
 * payloads (`key`), once; reads show `keyPreview`.
 */
import type { KeyServerGrant } from '../../../data-plane/snapshot/schema.js';
import {
  createVirtualKey,
  deleteVirtualKey,
  getVirtualKey,
  listVirtualKeys,
  revokeVirtualKey,
  rotateVirtualKey,
  updateVirtualKey,
  virtualKeyCursor,
  type VirtualKey,
} from '../../repos/virtual-keys.js';
import { builder } from '../builder.js';
import { resolvePage } from '../connections.js';
import type { UserErrorShape } from '../errors.js';
import { runMutation } from '../mutation.js';
import { readGrantToolWarnings, type InputWarning } from '../../repos/tool-warnings.js';
import { entityPayload, toUserWarnings, UserErrorRef, UserWarningRef } from './common.js';
import { McpServerRef } from './mcp-servers.js';
import { UserRef } from './users.js';
import { BudgetInput, BudgetRef, LimitsFallbackEnum, RateLimitInput, RateLimitRef } from './limits.js';

const KeyServerGrantRef = builder.objectRef<KeyServerGrant>('KeyServerGrant').implement({
  description: 'Access to one server: its tools listed by name, or ["*"] for every tool the server allows.',
  fields: (t) => ({
    server: t.exposeString('server', { description: 'Server name' }),
    tools: t.exposeStringList('tools'),
    mcpServer: t.field({
      type: McpServerRef,
      nullable: true,
      resolve: (g, _args, ctx) => ctx.loaders.serverByName.load(g.server),
    }),
  }),
});

export const VirtualKeyRef = builder.objectRef<VirtualKey>('VirtualKey').implement({
  description: 'A scoped credential a developer\'s agent presents to data-plane nodes. Its value is never readable.',
  fields: (t) => ({
    id: t.exposeID('id'),
    name: t.exposeString('name'),
    userId: t.exposeID('userId'),
    user: t.field({
      type: UserRef,
      resolve: async (k, _args, ctx) => {
        const user = await ctx.loaders.userById.load(k.userId);
        // The foreign key makes this unreachable; fail loudly (masked) rather than invent a user.
        if (!user) throw new Error(`virtual key ${k.id} has no user`);
        return user;
      },
    }),
    keyPreview: t.exposeString('keyPreview'),
    servers: t.field({ type: [KeyServerGrantRef], resolve: (k) => k.servers }),
    expiresAt: t.field({ type: 'DateTime', nullable: true, resolve: (k) => k.expiresAt }),
    expired: t.boolean({ resolve: (k) => k.expiresAt !== null && Date.parse(k.expiresAt) <= Date.now() }),
    revoked: t.boolean({ resolve: (k) => k.revokedAt !== null }),
    revokedAt: t.field({ type: 'DateTime', nullable: true, resolve: (k) => k.revokedAt }),
    lastUsedAt: t.field({ type: 'DateTime', nullable: true, resolve: (k) => k.lastUsedAt }),
    budgets: t.field({ type: [BudgetRef], resolve: (k) => k.budgets }),
    rateLimit: t.field({ type: RateLimitRef, nullable: true, resolve: (k) => k.rateLimit }),
    limitsFallback: t.field({ type: LimitsFallbackEnum, resolve: (k) => k.limitsFallback }),
    accessProfileId: t.exposeID('accessProfileId', { nullable: true }),
    createdAt: t.field({ type: 'DateTime', resolve: (k) => k.createdAt }),
    updatedAt: t.field({ type: 'DateTime', resolve: (k) => k.updatedAt }),
  }),
});

const VirtualKeyConnection = builder.connectionObject(
  { type: VirtualKeyRef, name: 'VirtualKeyConnection' },
  { name: 'VirtualKeyEdge' },
);

builder.queryFields((t) => ({
  virtualKeys: t.connection(
    {
      type: VirtualKeyRef,
      args: { userId: t.arg.id({ description: 'Only this user\'s keys' }) },
      resolve: (_root, args, ctx) =>
        resolvePage(args, (page) => listVirtualKeys(ctx.db, page, { userId: args.userId }), virtualKeyCursor),
    },
    VirtualKeyConnection,
  ),
  virtualKey: t.field({
    type: VirtualKeyRef,
    nullable: true,
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, args, ctx) => getVirtualKey(ctx.db, args.id),
  }),
}));

builder.objectField(UserRef, 'virtualKeys', (t) =>
  t.connection(
    {
      type: VirtualKeyRef,
      resolve: (user, args, ctx) => resolvePage(args, (page) => listVirtualKeys(ctx.db, page, { userId: user.id }), virtualKeyCursor),
    },
    VirtualKeyConnection,
  ),
);

// ---- Mutations ----

const KeyServerGrantInput = builder.inputType('KeyServerGrantInput', {
  fields: (t) => ({
    server: t.string({ required: true, description: 'An existing server name' }),
    tools: t.stringList({ required: true, description: 'Tool names, or ["*"]; must not be empty' }),
  }),
});

const CreateVirtualKeyInput = builder.inputType('CreateVirtualKeyInput', {
  fields: (t) => ({
    userId: t.id({ required: true }),
    name: t.string({ required: true }),
    servers: t.field({ type: [KeyServerGrantInput], required: true, description: 'At least one, unless allowNoServers' }),
    expiresAt: t.field({ type: 'DateTime', description: 'In the future; leave out for a key that does not expire' }),
    allowNoServers: t.boolean({ description: 'Allow an empty servers list (a key that can call nothing until granted a server)' }),
    budgets: t.field({ type: [BudgetInput], description: 'Spend caps, at most one per period' }),
    rateLimit: t.field({ type: RateLimitInput }),
    limitsFallback: t.field({ type: LimitsFallbackEnum, description: 'Default FAIL_CLOSED' }),
  }),
});

const UpdateVirtualKeyInput = builder.inputType('UpdateVirtualKeyInput', {
  description: 'Fields left out stay as they are. `expiresAt: null` removes the expiry.',
  fields: (t) => ({
    id: t.id({ required: true }),
    name: t.string(),
    servers: t.field({ type: [KeyServerGrantInput] }),
    expiresAt: t.field({ type: 'DateTime' }),
    allowNoServers: t.boolean({ description: 'Allow servers: [] (the key can then call nothing)' }),
    budgets: t.field({ type: [BudgetInput], description: 'Replaces every budget; [] removes them' }),
    rateLimit: t.field({ type: RateLimitInput, description: 'null removes the rate limit' }),
    limitsFallback: t.field({ type: LimitsFallbackEnum }),
  }),
});

const KeyIdInput = (name: string) => builder.inputType(name, { fields: (t) => ({ id: t.id({ required: true }) }) });
const RotateVirtualKeyInput = KeyIdInput('RotateVirtualKeyInput');
const RevokeVirtualKeyInput = KeyIdInput('RevokeVirtualKeyInput');
const DeleteVirtualKeyInput = KeyIdInput('DeleteVirtualKeyInput');

interface IssuedKeyPayload {
  value?: VirtualKey | undefined;
  key?: string | undefined;
  errors: UserErrorShape[];
  warnings?: InputWarning[] | undefined;
}

function issuedKeyPayload(name: string) {
  return builder.objectRef<IssuedKeyPayload>(name).implement({
    fields: (t) => ({
      virtualKey: t.field({ type: VirtualKeyRef, nullable: true, resolve: (p) => p.value ?? null }),
      key: t.string({
        nullable: true,
        description: 'The key value (gk_…). Shown this once: only its hash is stored.',
        resolve: (p) => p.key ?? null,
      }),
      errors: t.field({ type: [UserErrorRef], resolve: (p) => p.errors }),
      warnings: t.field({ type: [UserWarningRef], resolve: (p) => p.warnings ?? [] }),
    }),
  });
}

const CreateVirtualKeyPayload = issuedKeyPayload('CreateVirtualKeyPayload');
const RotateVirtualKeyPayload = issuedKeyPayload('RotateVirtualKeyPayload');
const UpdateVirtualKeyPayload = entityPayload('UpdateVirtualKeyPayload', 'virtualKey', VirtualKeyRef);
const RevokeVirtualKeyPayload = entityPayload('RevokeVirtualKeyPayload', 'virtualKey', VirtualKeyRef);
const DeleteVirtualKeyPayload = entityPayload('DeleteVirtualKeyPayload', 'virtualKey', VirtualKeyRef);

builder.mutationFields((t) => ({
  createVirtualKey: t.field({
    type: CreateVirtualKeyPayload,
    args: { input: t.arg({ type: CreateVirtualKeyInput, required: true }) },
    resolve: (_root, { input }, ctx) =>
      runMutation(ctx, async (trx) => {
        const issued = await createVirtualKey(trx, input);
        const warnings = toUserWarnings(await readGrantToolWarnings(trx, issued.virtualKey.servers));
        return { value: issued.virtualKey, key: issued.key, warnings };
      }),
  }),
  updateVirtualKey: t.field({
    type: UpdateVirtualKeyPayload,
    args: { input: t.arg({ type: UpdateVirtualKeyInput, required: true }) },
    resolve: (_root, { input }, ctx) =>
      runMutation(ctx, async (trx) => {
        const key = await updateVirtualKey(trx, input);
        // Warn only about grants this update set; untouched grants were warned about when they were set.
        const warnings = input.servers == null ? [] : toUserWarnings(await readGrantToolWarnings(trx, key.servers));
        return { value: key, warnings };
      }),
  }),
  rotateVirtualKey: t.field({
    type: RotateVirtualKeyPayload,
    description: 'Issues a new value for the key; the old value stops working.',
    args: { input: t.arg({ type: RotateVirtualKeyInput, required: true }) },
    resolve: (_root, { input }, ctx) =>
      runMutation(ctx, async (trx) => {
        const issued = await rotateVirtualKey(trx, input.id);
        return { value: issued.virtualKey, key: issued.key };
      }),
  }),
  revokeVirtualKey: t.field({
    type: RevokeVirtualKeyPayload,
    description: 'Revokes the key for good (idempotent).',
    args: { input: t.arg({ type: RevokeVirtualKeyInput, required: true }) },
    resolve: (_root, { input }, ctx) => runMutation(ctx, async (trx) => ({ value: await revokeVirtualKey(trx, input.id) })),
  }),
  deleteVirtualKey: t.field({
    type: DeleteVirtualKeyPayload,
    args: { input: t.arg({ type: DeleteVirtualKeyInput, required: true }) },
    resolve: (_root, { input }, ctx) => runMutation(ctx, async (trx) => ({ value: await deleteVirtualKey(trx, input.id) })),
  }),
}));
