/**
 * The audit trail in GraphQL: `auditEvents(filter, first, after)` pages the stored events in arrival order,
 * `verifyAuditChain(from, to)` walks the hash chains and checkpoints and reports the first broken link.
 * Both are reads (any admin token). Nodes write events through `POST /nodes/audit`, never here; the JSONL
 * export is `GET /audit/export`.
 */
import { auditEventCursor, listAuditEvents, verifyAuditChain, type ChainVerification, type StoredAuditEvent } from '../../audit/store.js';
import type { AuditEvent, GuardrailFinding } from '../../../data-plane/snapshot/audit-protocol.js';
import { listAuditSettings, setAuditSetting } from '../../audit/settings.js';
import type { AuditSettingEntry, GuardrailPolicy } from '../../../data-plane/snapshot/schema.js';
import { InputError } from '../../repos/errors.js';
import { runMutation } from '../mutation.js';
import { entityPayload } from './common.js';
import { builder } from '../builder.js';
import { resolvePage } from '../connections.js';
import { badUserInput } from '../errors.js';

type Tokens = NonNullable<AuditEvent['tokens']>;

const TokensRef = builder.objectRef<Tokens>('AuditTokens').implement({
  fields: (t) => ({
    input: t.exposeInt('input'),
    output: t.exposeInt('output'),
    cacheRead: t.int({ nullable: true, resolve: (x) => x.cacheRead ?? null }),
    cacheWrite: t.int({ nullable: true, resolve: (x) => x.cacheWrite ?? null }),
  }),
});

const FindingRef = builder.objectRef<GuardrailFinding>('GuardrailFinding').implement({
  description: 'A secret the guardrail found: what kind and where, never the value.',
  fields: (t) => ({ kind: t.exposeString('kind'), where: t.exposeString('where') }),
});

const str = (pick: (e: AuditEvent) => string | null | undefined) => (s: StoredAuditEvent) => pick(s.event) ?? null;

export const AuditEventRef = builder.objectRef<StoredAuditEvent>('AuditEvent').implement({
  description: 'One request a node served (or refused), as stored: append-only and hash-chained.',
  fields: (t) => ({
    id: t.id({ resolve: (s) => s.event.id }),
    time: t.field({ type: 'DateTime', resolve: (s) => s.event.time }),
    receivedAt: t.field({ type: 'DateTime', resolve: (s) => s.receivedAt }),
    node: t.string({ resolve: (s) => s.event.node }),
    requestId: t.string({ nullable: true, resolve: str((e) => e.requestId) }),
    traceId: t.string({ nullable: true, resolve: str((e) => e.traceId) }),
    route: t.string({ nullable: true, resolve: str((e) => e.route) }),
    keyId: t.string({ nullable: true, resolve: str((e) => e.keyId) }),
    keyHashPrefix: t.string({ nullable: true, description: 'For refused keys: the first characters of the presented key\'s hash', resolve: str((e) => e.keyHashPrefix) }),
    userId: t.string({ nullable: true, resolve: str((e) => e.userId) }),
    method: t.string({ resolve: (s) => s.event.method }),
    server: t.string({ nullable: true, resolve: str((e) => e.server) }),
    tool: t.string({ nullable: true, resolve: str((e) => e.tool) }),
    arguments: t.field({ type: 'JSON', nullable: true, description: 'Secrets redacted; null when content logging is off', resolve: (s) => s.event.arguments ?? null }),
    result: t.field({ type: 'JSON', nullable: true, description: 'Secrets redacted; null when content logging is off', resolve: (s) => s.event.result ?? null }),
    outcome: t.string({ resolve: (s) => s.event.outcome }),
    denyReason: t.string({ nullable: true, resolve: str((e) => e.denyReason) }),
    upstreamStatus: t.int({ nullable: true, resolve: (s) => s.event.upstreamStatus ?? null }),
    latencyMs: t.float({ resolve: (s) => s.event.latencyMs }),
    resultBytes: t.int({ nullable: true, resolve: (s) => s.event.resultBytes ?? null }),
    tokens: t.field({ type: TokensRef, nullable: true, resolve: (s) => s.event.tokens ?? null }),
    costUsd: t.float({ nullable: true, resolve: (s) => s.event.costUsd ?? null }),
    guardrail: t.field({ type: [FindingRef], resolve: (s) => s.event.guardrail ?? [] }),
    partition: t.string({ description: 'The control-plane partition whose chain holds this event', resolve: (s) => s.partition }),
    seq: t.int({ resolve: (s) => s.seq }),
    hash: t.string({ resolve: (s) => s.hash }),
  }),
});

const AuditEventConnection = builder.connectionObject({ type: AuditEventRef, name: 'AuditEventConnection' }, { name: 'AuditEventEdge' });

const AuditEventFilter = builder.inputType('AuditEventFilter', {
  fields: (t) => ({
    key: t.string({ description: 'Virtual key id' }),
    user: t.string({ description: 'User id' }),
    server: t.string(),
    tool: t.string(),
    outcome: t.string({ description: 'ok, tool_error, upstream_error, denied, invalid, blocked, error' }),
    from: t.field({ type: 'DateTime', description: 'Events at or after this time' }),
    to: t.field({ type: 'DateTime', description: 'Events at or before this time' }),
  }),
});

function isoOrThrow(value: string | null | undefined, field: string): string | undefined {
  if (value === null || value === undefined) return undefined;
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) throw badUserInput(new InputError('INVALID_DATETIME', field, `${field} must be an ISO-8601 date-time`));
  return new Date(ms).toISOString();
}

const BrokenLinkRef = builder.objectRef<NonNullable<ChainVerification['firstBroken']>>('AuditBrokenLink').implement({
  fields: (t) => ({
    partition: t.exposeString('partition'),
    seq: t.exposeInt('seq'),
    eventId: t.exposeString('eventId', { nullable: true }),
    reason: t.exposeString('reason', {
      description: 'hash_mismatch (row edited), link_mismatch / seq_gap (row deleted or reordered), column_mismatch, unparsable_event, checkpoint_mismatch, checkpoint_signature',
    }),
  }),
});

const VerificationRef = builder.objectRef<ChainVerification>('AuditChainVerification').implement({
  fields: (t) => ({
    ok: t.exposeBoolean('ok'),
    checkedEvents: t.exposeInt('checkedEvents'),
    checkedCheckpoints: t.exposeInt('checkedCheckpoints'),
    uncheckedCheckpoints: t.exposeInt('uncheckedCheckpoints', { description: 'Signed by a key no longer trusted (after a rotation)' }),
    partitions: t.exposeInt('partitions'),
    firstBroken: t.field({ type: BrokenLinkRef, nullable: true, resolve: (v) => v.firstBroken }),
  }),
});

builder.queryFields((t) => ({
  auditEvents: t.connection(
    {
      type: AuditEventRef,
      args: { filter: t.arg({ type: AuditEventFilter }) },
      resolve: (_root, args, ctx) => {
        const f = args.filter;
        const filter = {
          keyId: f?.key,
          userId: f?.user,
          server: f?.server,
          tool: f?.tool,
          outcome: f?.outcome,
          from: isoOrThrow(f?.from, 'filter.from'),
          to: isoOrThrow(f?.to, 'filter.to'),
        };
        return resolvePage(args, (page) => listAuditEvents(ctx.db, filter, page), auditEventCursor);
      },
    },
    AuditEventConnection,
  ),
  verifyAuditChain: t.field({
    type: VerificationRef,
    description: 'Walks the audit hash chains over events received in [from, to] (everything when omitted) and the checkpoints signed in it.',
    args: { from: t.arg({ type: 'DateTime' }), to: t.arg({ type: 'DateTime' }) },
    resolve: (_root, args, ctx) => verifyAuditChain(ctx.db, ctx.auditTrustedKeys, { from: isoOrThrow(args.from, 'from'), to: isoOrThrow(args.to, 'to') }),
  }),
}));

// ---- Settings: content logging and the secrets guardrail, per key and per server ----

const AuditScopeEnum = builder.enumType('AuditScope', { values: { KEY: { description: 'A virtual key (target: its id)' }, SERVER: { description: 'An MCP server (target: its name)' } } as const });
const GuardrailPolicyEnum = builder.enumType('GuardrailPolicy', {
  values: {
    OFF: { description: 'Content passes as it is (the audit trail still stores it redacted)' },
    REDACT: { description: 'Each secret found is replaced with [REDACTED:<kind>] before it goes upstream or back to the caller' },
    BLOCK: { description: 'A request or result holding a secret is refused (error secret_detected, naming the kind, never the value)' },
  } as const,
});

const toScope = (s: 'KEY' | 'SERVER'): 'key' | 'server' => (s === 'KEY' ? 'key' : 'server');
const toPolicy = (p: 'OFF' | 'REDACT' | 'BLOCK'): GuardrailPolicy => (p === 'OFF' ? 'off' : p === 'REDACT' ? 'redact' : 'block');

const AuditSettingsRef = builder.objectRef<AuditSettingEntry>('AuditSettings').implement({
  description: 'Audit settings of one key or server. Where a key and a server differ, content logging is off if either says so and the stricter guardrail applies.',
  fields: (t) => ({
    scope: t.field({ type: AuditScopeEnum, resolve: (e) => (e.scope === 'key' ? 'KEY' : 'SERVER') }),
    target: t.exposeString('target'),
    contentLogging: t.exposeBoolean('contentLogging', { description: 'Whether tool arguments and results are stored in the audit trail' }),
    guardrail: t.field({ type: GuardrailPolicyEnum, resolve: (e) => (e.guardrail === 'off' ? 'OFF' : e.guardrail === 'redact' ? 'REDACT' : 'BLOCK') }),
  }),
});

const SetAuditSettingsInput = builder.inputType('SetAuditSettingsInput', {
  fields: (t) => ({
    scope: t.field({ type: AuditScopeEnum, required: true }),
    target: t.string({ required: true, description: 'Virtual key id (KEY) or server name (SERVER)' }),
    contentLogging: t.boolean({ description: 'Leave out to keep the current value (default true)' }),
    guardrail: t.field({ type: GuardrailPolicyEnum, description: 'Leave out to keep the current value (default OFF)' }),
  }),
});

const SetAuditSettingsPayload = entityPayload('SetAuditSettingsPayload', 'auditSettings', AuditSettingsRef);

builder.queryFields((t) => ({
  auditSettings: t.field({ type: [AuditSettingsRef], description: 'Every key and server whose audit settings differ from the defaults', resolve: (_root, _args, ctx) => listAuditSettings(ctx.db) }),
}));

builder.mutationFields((t) => ({
  setAuditSettings: t.field({
    type: SetAuditSettingsPayload,
    args: { input: t.arg({ type: SetAuditSettingsInput, required: true }) },
    resolve: (_root, { input }, ctx) =>
      runMutation(ctx, async (trx) => ({
        value: await setAuditSetting(trx, {
          scope: toScope(input.scope),
          target: input.target,
          contentLogging: input.contentLogging,
          guardrail: input.guardrail ? toPolicy(input.guardrail) : null,
        }),
      })),
  }),
}));
