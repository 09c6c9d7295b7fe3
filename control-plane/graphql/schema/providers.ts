/**
 * Provider (LLM) in GraphQL: the type, `providers` query, `upsertProvider` and `deleteProvider`. The API
 * key is write-only: reads show its redacted preview or `env.NAME` reference.
 */
import type { ModelPrice } from '../../../data-plane/snapshot/schema.js';
import { deleteProvider, getProviderByName, listProviders, PROVIDER_KINDS, upsertProvider, type Provider } from '../../repos/providers.js';
import { builder } from '../builder.js';
import { runMutation } from '../mutation.js';
import { entityPayload } from './common.js';

const ProviderKindEnum = builder.enumType('ProviderKind', { values: PROVIDER_KINDS });

const ModelPriceRef = builder.objectRef<ModelPrice>('ModelPrice').implement({
  description: 'USD per million tokens for models matching `model` (exact, or a prefix ending in "*").',
  fields: (t) => ({
    model: t.exposeString('model'),
    inputPerMTok: t.exposeFloat('inputPerMTok'),
    outputPerMTok: t.exposeFloat('outputPerMTok'),
    cacheWritePerMTok: t.exposeFloat('cacheWritePerMTok'),
    cacheReadPerMTok: t.exposeFloat('cacheReadPerMTok'),
  }),
});

export const ProviderRef = builder.objectRef<Provider>('Provider').implement({
  description: 'An LLM provider nodes serve under /{name}/ (e.g. /anthropic), with its API key injected on the node.',
  fields: (t) => ({
    id: t.exposeID('id'),
    name: t.exposeString('name'),
    kind: t.field({ type: ProviderKindEnum, resolve: (p) => p.kind }),
    baseUrl: t.exposeString('baseUrl', { description: 'URL or env.NAME; credential-bearing parts (?api-key=…, /t/<token>) show as *** and the value given back unchanged keeps the stored URL' }),
    apiKey: t.exposeString('apiKeyPreview', { description: 'Redacted preview (sk-a…x9f2) or env.NAME; never the value' }),
    prices: t.field({ type: [ModelPriceRef], resolve: (p) => p.prices }),
    createdAt: t.field({ type: 'DateTime', resolve: (p) => p.createdAt }),
    updatedAt: t.field({ type: 'DateTime', resolve: (p) => p.updatedAt }),
  }),
});

builder.queryFields((t) => ({
  providers: t.field({ type: [ProviderRef], resolve: (_root, _args, ctx) => listProviders(ctx.db) }),
  provider: t.field({
    type: ProviderRef,
    nullable: true,
    args: { name: t.arg.string({ required: true }) },
    resolve: (_root, args, ctx) => getProviderByName(ctx.db, args.name),
  }),
}));

const ModelPriceInput = builder.inputType('ModelPriceInput', {
  fields: (t) => ({
    model: t.string({ required: true, description: 'A model name, or a prefix ending in "*" (claude-sonnet-4*)' }),
    inputPerMTok: t.float({ required: true }),
    outputPerMTok: t.float({ required: true }),
    cacheWritePerMTok: t.float({ required: true }),
    cacheReadPerMTok: t.float({ required: true }),
  }),
});

const UpsertProviderInput = builder.inputType('UpsertProviderInput', {
  description: 'Creates the provider with this name, or updates the fields given.',
  fields: (t) => ({
    name: t.string({ required: true, description: 'e.g. anthropic: nodes serve it under /anthropic' }),
    kind: t.field({ type: ProviderKindEnum, description: 'Default ANTHROPIC' }),
    baseUrl: t.string({ description: 'https://api.anthropic.com or env.NAME; required when creating' }),
    apiKey: t.string({ description: 'The provider API key (stored encrypted) or env.NAME; required when creating' }),
    prices: t.field({ type: [ModelPriceInput], description: 'Replaces the whole price table' }),
  }),
});

const DeleteProviderInput = builder.inputType('DeleteProviderInput', { fields: (t) => ({ name: t.string({ required: true }) }) });

const UpsertProviderPayload = entityPayload('UpsertProviderPayload', 'provider', ProviderRef);
const DeleteProviderPayload = entityPayload('DeleteProviderPayload', 'provider', ProviderRef);

builder.mutationFields((t) => ({
  upsertProvider: t.field({
    type: UpsertProviderPayload,
    args: { input: t.arg({ type: UpsertProviderInput, required: true }) },
    resolve: (_root, { input }, ctx) => runMutation(ctx, async (trx) => ({ value: await upsertProvider(trx, ctx.box, input) })),
  }),
  deleteProvider: t.field({
    type: DeleteProviderPayload,
    args: { input: t.arg({ type: DeleteProviderInput, required: true }) },
    resolve: (_root, { input }, ctx) => runMutation(ctx, async (trx) => ({ value: await deleteProvider(trx, input.name) })),
  }),
}));
