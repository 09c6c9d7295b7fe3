/**
 * Whole-configuration documents in GraphQL: the `JSON` scalar, `applyConfig(document, dryRun, prune)` and
 * the `exportConfig` query. The document format, planning and writing are in control-plane/config/.
 */
import { valueFromASTUntyped } from 'graphql';
import { applyConfig, type AppliedKey, type ApplyResult, type ConfigChange } from '../../config/apply.js';
import { exportConfig } from '../../config/export.js';
import { InputError } from '../../repos/errors.js';
import type { FieldChange } from '../../repos/mcp-servers.js';
import { builder } from '../builder.js';
import { toUserErrors, type UserErrorShape } from '../errors.js';
import { toUserWarnings, UserErrorRef, UserWarningRef } from './common.js';

builder.scalarType('JSON', {
  description: 'Any JSON value',
  serialize: (value) => value,
  parseValue: (value) => value,
  // A document written inline in a query (rather than passed as a variable) arrives as a literal.
  parseLiteral: (ast, variables) => valueFromASTUntyped(ast, variables ?? undefined),
});

const ConfigEntityKindEnum = builder.enumType('ConfigEntityKind', { values: ['MCP_SERVER', 'USER', 'VIRTUAL_KEY', 'ACCESS_PROFILE', 'PROVIDER'] as const });
const ConfigChangeActionEnum = builder.enumType('ConfigChangeAction', { values: ['CREATE', 'UPDATE', 'DELETE', 'REVOKE'] as const });

const FieldChangeRef = builder.objectRef<FieldChange>('FieldChange').implement({
  description: 'One field a change sets; secrets appear only as previews or env.NAME references.',
  fields: (t) => ({
    field: t.exposeString('field'),
    before: t.exposeString('before', { nullable: true, description: 'null when the entity is created' }),
    after: t.exposeString('after', { nullable: true, description: 'null when the entity is deleted' }),
  }),
});

const ConfigChangeRef = builder.objectRef<ConfigChange>('ConfigChange').implement({
  fields: (t) => ({
    kind: t.field({ type: ConfigEntityKindEnum, resolve: (c) => c.kind }),
    action: t.field({ type: ConfigChangeActionEnum, resolve: (c) => c.action }),
    name: t.exposeString('name', { description: 'Server name, user email, or email/key name' }),
    path: t.exposeString('path', { nullable: true, description: 'Where the entry is in the document; null for a deletion by prune' }),
    fields: t.field({ type: [FieldChangeRef], resolve: (c) => c.fields }),
  }),
});

const AppliedKeyRef = builder.objectRef<AppliedKey>('AppliedKey').implement({
  description: 'A virtual key created by applyConfig, with its value: shown this once.',
  fields: (t) => ({
    id: t.exposeID('id'),
    name: t.exposeString('name'),
    user: t.exposeString('user', { description: "The owner's email" }),
    key: t.exposeString('key', { description: 'The key value (gk_…). Shown this once: only its hash is stored.' }),
  }),
});

interface ApplyPayload {
  result: ApplyResult | null;
  dryRun: boolean;
  errors: UserErrorShape[];
}

const ApplyConfigPayload = builder.objectRef<ApplyPayload>('ApplyConfigPayload').implement({
  fields: (t) => ({
    dryRun: t.exposeBoolean('dryRun'),
    applied: t.boolean({ description: 'Whether changes were committed (never on a dry run or with errors)', resolve: (p) => p.result?.applied ?? false }),
    changes: t.field({
      type: [ConfigChangeRef],
      description: 'What was (or, on a dry run, would be) changed; empty when the configuration already matches',
      resolve: (p) => p.result?.changes ?? [],
    }),
    keys: t.field({ type: [AppliedKeyRef], description: 'Keys created, with their values (never on a dry run)', resolve: (p) => p.result?.keys ?? [] }),
    configVersion: t.int({ nullable: true, resolve: (p) => p.result?.configVersion ?? null }),
    warnings: t.field({ type: [UserWarningRef], resolve: (p) => toUserWarnings(p.result?.warnings ?? [], 'document') }),
    errors: t.field({ type: [UserErrorRef], resolve: (p) => p.errors }),
  }),
});

builder.mutationFields((t) => ({
  applyConfig: t.field({
    type: ApplyConfigPayload,
    description:
      'Makes the configuration match the document (mcp_servers, users, virtual_keys; snake_case or camelCase), in one ' +
      'transaction: nothing is applied when anything is invalid, and errors name JSON paths (document.mcp_servers[0].name). ' +
      'Idempotent. dryRun plans without writing; prune deletes what a section given no longer names.',
    args: {
      document: t.arg({ type: 'JSON', required: true }),
      dryRun: t.arg.boolean(),
      prune: t.arg.boolean(),
    },
    resolve: async (_root, args, ctx) => {
      const dryRun = args.dryRun === true;
      try {
        const result = await applyConfig(ctx.db, ctx.box, args.document, { dryRun, prune: args.prune === true });
        if (result.applied) ctx.configChanged();
        if (result.applied) ctx.logger.info({ changes: result.changes.length, configVersion: result.configVersion }, 'configuration applied');
        return { result, dryRun, errors: [] };
      } catch (error) {
        if (error instanceof InputError) return { result: null, dryRun, errors: toUserErrors(error, 'document') };
        throw error;
      }
    },
  }),
}));

builder.queryFields((t) => ({
  exportConfig: t.field({
    type: 'JSON',
    description:
      'The configuration as an applyConfig document (camelCase). Secrets are references only: env.NAME, or {stored: "<preview>"} ' +
      'for a sealed value, which applyConfig reads as "keep the stored value", so applying an export changes nothing.',
    resolve: (_root, _args, ctx) => exportConfig(ctx.db),
  }),
}));
