/**
 * Session secrets in GraphQL (issue 9): which secret seals MCP session ids (ids and ages only, never the
 * secret) and `rotateSessionSecret`. A rotation keeps the old secret as `previous`, so sessions issued
 * before it keep working until the next rotation retires it.
 */
import { getSessionSecretsInfo, rotateSessionSecret, type SessionSecretInfo, type SessionSecretsInfo } from '../../repos/session-secrets.js';
import { builder } from '../builder.js';
import { runMutation } from '../mutation.js';
import { entityPayload } from './common.js';

const SessionSecretRef = builder.objectRef<SessionSecretInfo>('SessionSecret').implement({
  description: 'A secret data-plane nodes derive the sealed MCP session key from. Only its id and age are shown.',
  fields: (t) => ({
    id: t.exposeID('id', { description: 'Named in every session id sealed under it' }),
    createdAt: t.field({ type: 'DateTime', resolve: (s) => s.createdAt }),
  }),
});

const SessionSecretsRef = builder.objectRef<SessionSecretsInfo>('SessionSecrets').implement({
  description: 'The current session secret seals new MCP session ids; the previous one still opens ids issued before the last rotation.',
  fields: (t) => ({
    current: t.field({ type: SessionSecretRef, nullable: true, resolve: (s) => s.current }),
    previous: t.field({ type: SessionSecretRef, nullable: true, resolve: (s) => s.previous }),
  }),
});

builder.queryFields((t) => ({
  sessionSecrets: t.field({ type: SessionSecretsRef, resolve: (_root, _args, ctx) => getSessionSecretsInfo(ctx.db) }),
}));

const RotateSessionSecretPayload = entityPayload('RotateSessionSecretPayload', 'sessionSecrets', SessionSecretsRef);

builder.mutationFields((t) => ({
  rotateSessionSecret: t.field({
    type: RotateSessionSecretPayload,
    description:
      'Makes a new current session secret; the old one becomes previous (sessions it sealed keep working) and the one before is retired (its sessions end).',
    resolve: (_root, _args, ctx) => runMutation(ctx, async (trx) => ({ value: await rotateSessionSecret(trx, ctx.box) })),
  }),
}));
