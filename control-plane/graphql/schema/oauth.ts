/**
 * Upstream OAuth in GraphQL (issue 6): `startServerOAuth` (a one-time start link an admin opens for a
 * server's shared credential), the status of shared and per-user OAuth connections on McpServer and User
 * (status, issuer, scopes, expiry: never a token), and revoking a user's connection. The flows themselves
 * are in control-plane/oauth/.
 */
import { getMcpServerById, getMcpServerByName, type McpServer } from '../../repos/mcp-servers.js';
import {
  deleteCredential,
  findCredential,
  getServerOAuthSettings,
  listServerCredentials,
  listUserCredentials,
  settingsSecretAad,
  settingsUrlColumns,
  upsertServerOAuthSettings,
  type OAuthCredentialRow,
  type ServerOAuthSettingsRow,
} from '../../repos/oauth.js';
import { OAuthFlowError } from '../../oauth/errors.js';
import { CONNECT_PATH_PREFIX } from '../../connect/broker.js';
import { announceCredentialChange, createConnectLink, headerSetCurrent, listServerHeaderSets, listUserHeaderSets, type HeaderSetRow } from '../../repos/connect.js';
import { builder } from '../builder.js';
import { runMutation } from '../mutation.js';
import { UserErrorRef } from './common.js';
import type { Db } from '../../repos/transaction.js';
import { McpServerRef } from './mcp-servers.js';
import { UserRef } from './users.js';
import { oauthEndpointProblem, oauthEndpointProblemText } from '../../oauth/urls.js';
import { shownUrl } from '../../repos/url-secrets.js';

const OAuthConnectionStatusEnum = builder.enumType('OAuthConnectionStatus', {
  description: 'CONNECTED: tokens are held and refreshed automatically. NEEDS_REAUTH: the authorization server refused the grant; a person must authorize again.',
  values: ['CONNECTED', 'NEEDS_REAUTH'] as const,
});

const OAuthConnectionRef = builder.objectRef<OAuthCredentialRow>('OAuthConnection').implement({
  description: 'An OAuth credential Gatehouse holds for a server (shared) or for one user. Token values are never shown.',
  fields: (t) => ({
    status: t.field({ type: OAuthConnectionStatusEnum, resolve: (c) => c.status }),
    issuer: t.string({ description: 'The authorization server that issued it (credentials are keyed by issuer); credential-bearing parts show as ***', resolve: (c) => shownUrl(c.issuer) }),
    scopes: t.stringList({ resolve: (c) => JSON.parse(c.scopes) as string[] }),
    expiresAt: t.field({ type: 'DateTime', nullable: true, description: 'When the current access token expires (it is refreshed before)', resolve: (c) => c.expires_at }),
    lastError: t.exposeString('last_error', { nullable: true, description: 'Why the last refresh failed, if it did (a transient failure keeps the credential)' }),
    connectedAt: t.field({ type: 'DateTime', resolve: (c) => c.created_at }),
    updatedAt: t.field({ type: 'DateTime', resolve: (c) => c.updated_at }),
    server: t.field({ type: McpServerRef, nullable: true, resolve: (c, _args, ctx) => getMcpServerById(ctx.db, c.server_id) }),
    user: t.field({ type: UserRef, nullable: true, resolve: (c, _args, ctx) => (c.user_id === null ? null : ctx.loaders.userById.load(c.user_id)) }),
  }),
});

builder.objectFields(McpServerRef, (t) => ({
  oauthConnection: t.field({
    type: OAuthConnectionRef,
    nullable: true,
    description: 'The shared OAuth credential of an OAUTH server (null until startServerOAuth completes).',
    resolve: (s, _args, ctx) => (s.authType === 'OAUTH' ? findCredential(ctx.db, s.id, null) : null),
  }),
  userOAuthConnections: t.field({
    type: [OAuthConnectionRef],
    description: 'Per-user OAuth connections of a PER_USER_OAUTH server (status per user; never a token).',
    resolve: (s, _args, ctx) => (s.authType === 'PER_USER_OAUTH' ? listServerCredentials(ctx.db, s.id) : []),
  }),
}));

const HeaderSetStatusEnum = builder.enumType('HeaderSetStatus', {
  description: "ACTIVE: in use. NEEDS_UPDATE: the server's perUserHeaderKeys changed; the user must enter values again.",
  values: ['ACTIVE', 'NEEDS_UPDATE'] as const,
});

interface HeaderSetView {
  row: HeaderSetRow;
  server: McpServer | null;
}

const HeaderSetRef = builder.objectRef<HeaderSetView>('UserHeaderSet').implement({
  description: "A user's own header values for a PER_USER_HEADERS server. Only the header names and status are shown, never a value.",
  fields: (t) => ({
    status: t.field({
      type: HeaderSetStatusEnum,
      resolve: (h) => (h.server && headerSetCurrent(h.row, h.server.perUserHeaderKeys) ? 'ACTIVE' : 'NEEDS_UPDATE'),
    }),
    headerNames: t.stringList({ resolve: (h) => JSON.parse(h.row.header_keys) as string[] }),
    updatedAt: t.field({ type: 'DateTime', resolve: (h) => h.row.updated_at }),
    server: t.field({ type: McpServerRef, nullable: true, resolve: (h) => h.server }),
    user: t.field({ type: UserRef, nullable: true, resolve: (h, _args, ctx) => ctx.loaders.userById.load(h.row.user_id) }),
  }),
});

async function headerSetViews(ctx: { db: Db }, rows: HeaderSetRow[]): Promise<HeaderSetView[]> {
  const servers = new Map<string, McpServer | null>();
  const views: HeaderSetView[] = [];
  for (const row of rows) {
    if (!servers.has(row.server_id)) servers.set(row.server_id, await getMcpServerById(ctx.db, row.server_id));
    views.push({ row, server: servers.get(row.server_id) ?? null });
  }
  return views;
}

builder.objectFields(UserRef, (t) => ({
  oauthConnections: t.field({
    type: [OAuthConnectionRef],
    description: "This user's per-user OAuth connections (status, expiry, scopes; never a token).",
    resolve: (u, _args, ctx) => listUserCredentials(ctx.db, u.id),
  }),
  headerSets: t.field({
    type: [HeaderSetRef],
    description: "This user's per-user header sets (names and status; never a value).",
    resolve: async (u, _args, ctx) => headerSetViews(ctx, await listUserHeaderSets(ctx.db, u.id)),
  }),
}));

builder.objectFields(McpServerRef, (t) => ({
  userHeaderSets: t.field({
    type: [HeaderSetRef],
    description: 'Per-user header sets of a PER_USER_HEADERS server (status per user; never a value).',
    resolve: async (s, _args, ctx) => (s.authType === 'PER_USER_HEADERS' ? headerSetViews(ctx, await listServerHeaderSets(ctx.db, s.id)) : []),
  }),
}));

interface OAuthSettingsView {
  row: ServerOAuthSettingsRow;
}

const OAuthSettingsRef = builder.objectRef<OAuthSettingsView>('McpServerOAuth').implement({
  description: "An admin's OAuth settings for a server; anything null is discovered (RFC 9728 / RFC 8414) or registered.",
  fields: (t) => ({
    clientId: t.string({ nullable: true, description: 'Pre-registered client id (first in the MCP registration order)', resolve: (v) => v.row.client_id }),
    clientSecret: t.string({ nullable: true, description: 'Redacted preview; never the value', resolve: (v) => (v.row.client_secret === null ? null : '••••') }),
    authorizeUrl: t.string({ nullable: true, description: 'Credential-bearing parts show as *** (given back unchanged, the stored URL is kept)', resolve: (v) => v.row.authorize_url }),
    tokenUrl: t.string({ nullable: true, description: 'Credential-bearing parts show as ***', resolve: (v) => v.row.token_url }),
    registrationUrl: t.string({ nullable: true, description: 'Credential-bearing parts show as ***', resolve: (v) => v.row.registration_url }),
    scopes: t.stringList({ resolve: (v) => JSON.parse(v.row.scopes) as string[] }),
    resource: t.string({ nullable: true, description: 'RFC 8707 resource indicator (default: from protected-resource metadata); credential-bearing parts show as ***', resolve: (v) => v.row.resource }),
  }),
});

builder.objectFields(McpServerRef, (t) => ({
  oauth: t.field({
    type: OAuthSettingsRef,
    nullable: true,
    resolve: async (s, _args, ctx) => {
      const row = await getServerOAuthSettings(ctx.db, s.id);
      return row ? { row } : null;
    },
  }),
}));

const McpServerOAuthInput = builder.inputType('McpServerOAuthInput', {
  fields: (t) => ({
    name: t.string({ required: true, description: 'The server' }),
    clientId: t.string(),
    clientSecret: t.string({ description: 'Write-only; absent keeps the stored one, "" removes it' }),
    authorizeUrl: t.string({ description: 'With tokenUrl: use these endpoints instead of discovery' }),
    tokenUrl: t.string(),
    registrationUrl: t.string(),
    scopes: t.stringList(),
    resource: t.string(),
  }),
});

interface SettingsShape {
  server?: McpServer | null;
  errors: Array<{ field: string | null; code: string; message: string }>;
}

const SetMcpServerOAuthPayload = builder.objectRef<SettingsShape>('SetMcpServerOAuthPayload').implement({
  fields: (t) => ({
    mcpServer: t.field({ type: McpServerRef, nullable: true, resolve: (p) => p.server ?? null }),
    errors: t.field({ type: [UserErrorRef], resolve: (p) => p.errors }),
  }),
});

/**
 * An authorization-server URL the admin gives: the rule discovery applies to the ones servers publish
 * (oauth/urls.ts: http(s), https unless the insecure opt-in, no `user:password@`). Reads (McpServer.oauth)
 * show a credential elsewhere in it as *** (settingsUrlColumns keeps the whole URL sealed).
 */
function checkEndpointUrl(value: string | null | undefined, field: string, allowInsecure: boolean, errors: SettingsShape['errors']): string | null {
  if (value === null || value === undefined || value === '') return null;
  const problem = oauthEndpointProblem(value, allowInsecure);
  if (problem === null) return new URL(value).href;
  errors.push({ field: `input.${field}`, code: 'INVALID_URL', message: oauthEndpointProblemText(problem, field) });
  return null;
}

/**
 * The RFC 8707 resource indicator: an identifier (the MCP server's URL, which may be http), never fetched
 * or sent a secret, so http(s) without embedded credentials is enough.
 */
function checkResource(value: string | null | undefined, errors: SettingsShape['errors']): string | null {
  if (value === null || value === undefined || value === '') return null;
  const problem = oauthEndpointProblem(value, true);
  if (problem === null) return new URL(value).href;
  errors.push({ field: 'input.resource', code: 'INVALID_URL', message: oauthEndpointProblemText(problem, 'resource') });
  return null;
}

interface StartOAuthShape {
  url?: string | null;
  server?: McpServer | null;
  errors: Array<{ field: string | null; code: string; message: string }>;
}

const StartServerOAuthPayload = builder.objectRef<StartOAuthShape>('StartServerOAuthPayload').implement({
  fields: (t) => ({
    url: t.string({
      nullable: true,
      description: 'Open this in a browser to authorize Gatehouse at the upstream authorization server (valid 15 minutes, once).',
      resolve: (p) => p.url ?? null,
    }),
    server: t.field({ type: McpServerRef, nullable: true, resolve: (p) => p.server ?? null }),
    errors: t.field({ type: [UserErrorRef], resolve: (p) => p.errors }),
  }),
});

interface LinkShape {
  url?: string | null;
  errors: Array<{ field: string | null; code: string; message: string }>;
}

const CreateConnectLinkPayload = builder.objectRef<LinkShape>('CreateConnectLinkPayload').implement({
  fields: (t) => ({
    url: t.string({ nullable: true, description: 'One-time link for that user (15 minutes): connect, replace or clear their credential.', resolve: (p) => p.url ?? null }),
    errors: t.field({ type: [UserErrorRef], resolve: (p) => p.errors }),
  }),
});

interface RevokeShape {
  revoked: boolean;
  errors: Array<{ field: string | null; code: string; message: string }>;
}

const RevokeUserOAuthConnectionPayload = builder.objectRef<RevokeShape>('RevokeUserOAuthConnectionPayload').implement({
  fields: (t) => ({
    revoked: t.exposeBoolean('revoked'),
    errors: t.field({ type: [UserErrorRef], resolve: (p) => p.errors }),
  }),
});

function notFound(field: string, message: string): StartOAuthShape {
  return { errors: [{ field, code: 'NOT_FOUND', message }] };
}

builder.mutationFields((t) => ({
  startServerOAuth: t.field({
    type: StartServerOAuthPayload,
    description:
      "Starts the OAuth authorization of an OAUTH server's shared credential: discovery, client registration, PKCE. Returns a one-time link on this control plane (valid 15 minutes) that the admin opens in their browser: it redirects to the authorization server and binds the flow to that browser; the callback on this control plane stores the tokens.",
    args: { name: t.arg.string({ required: true }) },
    resolve: async (_root, args, ctx) => {
      const server = await getMcpServerByName(ctx.db, args.name);
      if (!server) return notFound('name', `no MCP server named "${args.name}"`);
      if (server.authType !== 'OAUTH') {
        return { server, errors: [{ field: 'name', code: 'WRONG_AUTH_TYPE', message: `${server.name} uses ${server.authType} authentication; startServerOAuth is for OAUTH servers` }] };
      }
      if (!ctx.oauth) return { server, errors: [{ field: null, code: 'OAUTH_FAILED', message: 'OAuth is not available on this control plane' }] };
      try {
        const url = await ctx.oauth.startAdminLink(server);
        return { url: url.href, server, errors: [] };
      } catch (error) {
        if (error instanceof OAuthFlowError) return { server, errors: [{ field: null, code: `OAUTH_${error.code}`, message: error.message }] };
        throw error;
      }
    },
  }),
  setMcpServerOAuth: t.field({
    type: SetMcpServerOAuthPayload,
    description: "Sets an OAUTH or PER_USER_OAUTH server's OAuth settings: a pre-registered client, endpoints for an authorization server without metadata, scopes, resource.",
    args: { input: t.arg({ type: McpServerOAuthInput, required: true }) },
    resolve: async (_root, { input }, ctx) => {
      const server = await getMcpServerByName(ctx.db, input.name);
      if (!server) return { errors: [{ field: 'input.name', code: 'NOT_FOUND', message: `no MCP server named "${input.name}"` }] };
      if (server.authType !== 'OAUTH' && server.authType !== 'PER_USER_OAUTH') {
        return { errors: [{ field: 'input.name', code: 'WRONG_AUTH_TYPE', message: `${server.name} uses ${server.authType} authentication; OAuth settings apply to OAUTH and PER_USER_OAUTH servers` }] };
      }
      const errors: SettingsShape['errors'] = [];
      const allowInsecure = ctx.oauth?.allowsInsecure ?? false;
      const authorizeUrl = checkEndpointUrl(input.authorizeUrl, 'authorizeUrl', allowInsecure, errors);
      const tokenUrl = checkEndpointUrl(input.tokenUrl, 'tokenUrl', allowInsecure, errors);
      const registrationUrl = checkEndpointUrl(input.registrationUrl, 'registrationUrl', allowInsecure, errors);
      const resource = checkResource(input.resource, errors);
      if ((authorizeUrl === null) !== (tokenUrl === null) && errors.length === 0) {
        errors.push({ field: 'input.tokenUrl', code: 'REQUIRED', message: 'authorizeUrl and tokenUrl go together' });
      }
      if (errors.length > 0) return { server, errors };
      const current = await getServerOAuthSettings(ctx.db, server.id);
      // A credential inside one of these URLs is kept sealed and shown as *** (repos/url-secrets.ts).
      const urls = settingsUrlColumns(ctx.box, server.id, current, { authorize_url: authorizeUrl, token_url: tokenUrl, registration_url: registrationUrl, resource });
      if (urls.redacted.length > 0) {
        const argName = { authorize_url: 'authorizeUrl', token_url: 'tokenUrl', registration_url: 'registrationUrl', resource: 'resource' } as const;
        const refused = urls.redacted.map((field) => ({
          field: `input.${argName[field]}`,
          code: 'INVALID_URL',
          message: `${argName[field]} contains *** (a hidden part as reads show it): give the whole URL, or the stored value unchanged`,
        }));
        return { server, errors: refused };
      }
      const secret =
        input.clientSecret === undefined || input.clientSecret === null
          ? (current?.client_secret ?? null)
          : input.clientSecret === ''
            ? null
            : ctx.box.seal(input.clientSecret, settingsSecretAad(server.id));
      await upsertServerOAuthSettings(ctx.db, {
        server_id: server.id,
        client_id: input.clientId || null,
        client_secret: secret,
        ...urls.columns,
        scopes: JSON.stringify(input.scopes ?? []),
      });
      return { server, errors: [] };
    },
  }),
  createConnectLink: t.field({
    type: CreateConnectLinkPayload,
    description: "A one-time connect link for a user and a PER_USER_OAUTH or PER_USER_HEADERS server, to hand to that user (e.g. to replace or clear their values).",
    args: { userId: t.arg.id({ required: true }), server: t.arg.string({ required: true }) },
    resolve: async (_root, args, ctx) => {
      const server = await getMcpServerByName(ctx.db, args.server);
      if (!server) return { errors: [{ field: 'server', code: 'NOT_FOUND', message: `no MCP server named "${args.server}"` }] };
      if (server.authType !== 'PER_USER_OAUTH' && server.authType !== 'PER_USER_HEADERS') {
        return { errors: [{ field: 'server', code: 'WRONG_AUTH_TYPE', message: `${server.name} uses ${server.authType} authentication; connect links are for per-user servers` }] };
      }
      if (!(await ctx.loaders.userById.load(args.userId))) return { errors: [{ field: 'userId', code: 'NOT_FOUND', message: 'no such user' }] };
      if (!ctx.oauth) return { errors: [{ field: null, code: 'OAUTH_FAILED', message: 'connect links are not available on this control plane' }] };
      const token = await createConnectLink(ctx.db, args.userId, server.id, server.authType === 'PER_USER_OAUTH' ? 'oauth' : 'headers');
      return { url: `${ctx.oauth.publicBaseUrl()}${CONNECT_PATH_PREFIX}${token}`, errors: [] };
    },
  }),
  revokeUserOAuthConnection: t.field({
    type: RevokeUserOAuthConnectionPayload,
    description: "Forgets a user's OAuth tokens for a server; their next tool call asks them to connect again.",
    args: { userId: t.arg.id({ required: true }), server: t.arg.string({ required: true }) },
    resolve: async (_root, args, ctx) => {
      const server = await getMcpServerByName(ctx.db, args.server);
      if (!server) return { revoked: false, errors: [{ field: 'server', code: 'NOT_FOUND', message: `no MCP server named "${args.server}"` }] };
      const payload = await runMutation(ctx, async (trx) => {
        const revoked = await deleteCredential(trx, server.id, args.userId);
        if (revoked) await announceCredentialChange(trx, args.userId);
        return { revoked };
      });
      return { revoked: payload.revoked ?? false, errors: payload.errors };
    },
  }),
}));
