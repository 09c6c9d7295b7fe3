/**
 * AccessProfile in GraphQL: the type, `accessProfiles`/`accessProfile` queries, create/update/delete, and
 * `provisionUser(email, profile)`, whose payload carries the new key's value once (`key`). Also
 * `VirtualKey.accessProfile`. Editing a profile rewrites the keys allocated from it (repos/access-profiles.ts).
 */
import {
  accessProfileCursor,
  countKeysOfProfile,
  createAccessProfile,
  deleteAccessProfile,
  findAccessProfile,
  getAccessProfile,
  listAccessProfiles,
  provisionUser,
  updateAccessProfile,
  type AccessProfile,
  type ProvisionedUser,
} from '../../repos/access-profiles.js';
import { readGrantToolWarnings, type InputWarning } from '../../repos/tool-warnings.js';
import { builder } from '../builder.js';
import { resolvePage } from '../connections.js';
import type { UserErrorShape } from '../errors.js';
import { runMutation } from '../mutation.js';
import { entityPayload, toUserWarnings, UserErrorRef, UserWarningRef } from './common.js';
import { BudgetInput, BudgetRef, LimitsFallbackEnum, RateLimitInput, RateLimitRef } from './limits.js';
import { UserRef } from './users.js';
import { VirtualKeyRef } from './virtual-keys.js';

const ProfileGrantRef = builder.objectRef<{ server: string; tools: string[] }>('AccessProfileGrant').implement({
  description: 'A server of the profile and the tools keys get there (["*"] = every tool the server allows).',
  fields: (t) => ({
    server: t.exposeString('server'),
    tools: t.exposeStringList('tools'),
  }),
});

export const AccessProfileRef = builder.objectRef<AccessProfile>('AccessProfile').implement({
  description: 'A template for virtual keys: servers with tool filters, budgets, a rate limit and a key lifetime. Keys allocated from it follow its edits.',
  fields: (t) => ({
    id: t.exposeID('id'),
    name: t.exposeString('name'),
    description: t.exposeString('description', { nullable: true }),
    servers: t.field({ type: [ProfileGrantRef], resolve: (p) => p.servers }),
    budgets: t.field({ type: [BudgetRef], resolve: (p) => p.budgets }),
    rateLimit: t.field({ type: RateLimitRef, nullable: true, resolve: (p) => p.rateLimit }),
    limitsFallback: t.field({ type: LimitsFallbackEnum, resolve: (p) => p.limitsFallback }),
    keyLifetimeDays: t.exposeInt('keyLifetimeDays', { nullable: true }),
    keyCount: t.int({ description: 'Keys allocated from this profile', resolve: (p, _args, ctx) => countKeysOfProfile(ctx.db, p.id) }),
    createdAt: t.field({ type: 'DateTime', resolve: (p) => p.createdAt }),
    updatedAt: t.field({ type: 'DateTime', resolve: (p) => p.updatedAt }),
  }),
});

const AccessProfileConnection = builder.connectionObject(
  { type: AccessProfileRef, name: 'AccessProfileConnection' },
  { name: 'AccessProfileEdge' },
);

builder.queryFields((t) => ({
  accessProfiles: t.connection(
    { type: AccessProfileRef, resolve: (_root, args, ctx) => resolvePage(args, (page) => listAccessProfiles(ctx.db, page), accessProfileCursor) },
    AccessProfileConnection,
  ),
  accessProfile: t.field({
    type: AccessProfileRef,
    nullable: true,
    description: 'By id or by name',
    args: { id: t.arg.string({ required: true }) },
    resolve: (_root, args, ctx) => findAccessProfile(ctx.db, args.id),
  }),
}));

builder.objectField(VirtualKeyRef, 'accessProfile', (t) =>
  t.field({
    type: AccessProfileRef,
    nullable: true,
    resolve: (k, _args, ctx) => (k.accessProfileId === null ? null : getAccessProfile(ctx.db, k.accessProfileId)),
  }),
);

const ProfileGrantInput = builder.inputType('AccessProfileGrantInput', {
  fields: (t) => ({
    server: t.string({ required: true, description: 'An existing server name' }),
    tools: t.stringList({ required: true, description: 'Tool names, or ["*"]; must not be empty' }),
  }),
});

const CreateAccessProfileInput = builder.inputType('CreateAccessProfileInput', {
  fields: (t) => ({
    name: t.string({ required: true }),
    description: t.string(),
    servers: t.field({ type: [ProfileGrantInput], required: true }),
    budgets: t.field({ type: [BudgetInput] }),
    rateLimit: t.field({ type: RateLimitInput }),
    limitsFallback: t.field({ type: LimitsFallbackEnum, description: 'Default FAIL_CLOSED' }),
    keyLifetimeDays: t.int({ description: 'Keys allocated from the profile expire after this many days; leave out for no expiry' }),
    allowNoServers: t.boolean(),
  }),
});

const UpdateAccessProfileInput = builder.inputType('UpdateAccessProfileInput', {
  description: 'Fields left out stay as they are; rateLimit: null and keyLifetimeDays: null remove them. Keys allocated from the profile follow at the next snapshot.',
  fields: (t) => ({
    id: t.id({ required: true }),
    name: t.string(),
    description: t.string(),
    servers: t.field({ type: [ProfileGrantInput] }),
    budgets: t.field({ type: [BudgetInput] }),
    rateLimit: t.field({ type: RateLimitInput }),
    limitsFallback: t.field({ type: LimitsFallbackEnum }),
    keyLifetimeDays: t.int(),
    allowNoServers: t.boolean(),
  }),
});

const DeleteAccessProfileInput = builder.inputType('DeleteAccessProfileInput', { fields: (t) => ({ id: t.id({ required: true }) }) });

const ProvisionUserInput = builder.inputType('ProvisionUserInput', {
  fields: (t) => ({
    email: t.string({ required: true, description: 'The user is created if no user has this email' }),
    profile: t.string({ required: true, description: 'Access profile id or name' }),
    name: t.string({ description: 'The user\'s name, when the user is created' }),
    keyName: t.string({ description: 'Defaults to the profile\'s name' }),
  }),
});

const CreateAccessProfilePayload = entityPayload('CreateAccessProfilePayload', 'accessProfile', AccessProfileRef);
const UpdateAccessProfilePayload = entityPayload('UpdateAccessProfilePayload', 'accessProfile', AccessProfileRef);
const DeleteAccessProfilePayload = entityPayload('DeleteAccessProfilePayload', 'accessProfile', AccessProfileRef);

interface ProvisionPayload {
  value?: ProvisionedUser | undefined;
  errors: UserErrorShape[];
  warnings?: InputWarning[] | undefined;
}

const ProvisionUserPayload = builder.objectRef<ProvisionPayload>('ProvisionUserPayload').implement({
  fields: (t) => ({
    user: t.field({ type: UserRef, nullable: true, resolve: (p) => p.value?.user ?? null }),
    userCreated: t.boolean({ nullable: true, resolve: (p) => p.value?.userCreated ?? null }),
    virtualKey: t.field({ type: VirtualKeyRef, nullable: true, resolve: (p) => p.value?.virtualKey ?? null }),
    key: t.string({ nullable: true, description: 'The key value (gk_…). Shown this once: only its hash is stored.', resolve: (p) => p.value?.key ?? null }),
    accessProfile: t.field({ type: AccessProfileRef, nullable: true, resolve: (p) => p.value?.profile ?? null }),
    errors: t.field({ type: [UserErrorRef], resolve: (p) => p.errors }),
    warnings: t.field({ type: [UserWarningRef], resolve: (p) => p.warnings ?? [] }),
  }),
});

builder.mutationFields((t) => ({
  createAccessProfile: t.field({
    type: CreateAccessProfilePayload,
    args: { input: t.arg({ type: CreateAccessProfileInput, required: true }) },
    resolve: (_root, { input }, ctx) =>
      runMutation(ctx, async (trx) => {
        const profile = await createAccessProfile(trx, input);
        return { value: profile, warnings: toUserWarnings(await readGrantToolWarnings(trx, profile.servers)) };
      }),
  }),
  updateAccessProfile: t.field({
    type: UpdateAccessProfilePayload,
    args: { input: t.arg({ type: UpdateAccessProfileInput, required: true }) },
    resolve: (_root, { input }, ctx) =>
      runMutation(ctx, async (trx) => {
        const profile = await updateAccessProfile(trx, input);
        const warnings = input.servers == null ? [] : toUserWarnings(await readGrantToolWarnings(trx, profile.servers));
        return { value: profile, warnings };
      }),
  }),
  deleteAccessProfile: t.field({
    type: DeleteAccessProfilePayload,
    description: 'Refused (PROFILE_IN_USE) while keys allocated from the profile exist.',
    args: { input: t.arg({ type: DeleteAccessProfileInput, required: true }) },
    resolve: (_root, { input }, ctx) => runMutation(ctx, async (trx) => ({ value: await deleteAccessProfile(trx, input.id) })),
  }),
  provisionUser: t.field({
    type: ProvisionUserPayload,
    description: 'Finds or creates the user by email and allocates a key from the access profile; the payload\'s key is shown once.',
    args: { input: t.arg({ type: ProvisionUserInput, required: true }) },
    resolve: (_root, { input }, ctx) => runMutation(ctx, async (trx) => ({ value: await provisionUser(trx, input) })),
  }),
}));
