/**
 * Upstream OAuth in GraphQL (issue 6): `startServerOAuth` (the authorization URL an admin opens for a
 * server's shared credential), the status of shared and per-user OAuth connections on McpServer and User
 * (status, issuer, scopes, expiry: never a token), and revoking a user's connection. The flows themselves
 * are in control-plane/oauth/.
 */
import { getMcpServerById, getMcpServerByName, type McpServer } from '../../repos/mcp-servers.js';
import { deleteCredential, findCredential, listServerCredentials, listUserCredentials, type OAuthCredentialRow } from '../../repos/oauth.js';
import { OAuthFlowError } from '../../oauth/errors.js';
import { builder } from '../builder.js';
import { UserErrorRef } from './common.js';
import { McpServerRef } from './mcp-servers.js';
import { UserRef } from './users.js';

const OAuthConnectionStatusEnum = builder.enumType('OAuthConnectionStatus', {
  description: 'CONNECTED: tokens are held and refreshed automatically. NEEDS_REAUTH: the authorization server refused the grant; a person must authorize again.',
  values: ['CONNECTED', 'NEEDS_REAUTH'] as const,
});

const OAuthConnectionRef = builder.objectRef<OAuthCredentialRow>('OAuthConnection').implement({
  description: 'An OAuth credential Gatehouse holds for a server (shared) or for one user. Token values are never shown.',
  fields: (t) => ({
    status: t.field({ type: OAuthConnectionStatusEnum, resolve: (c) => c.status }),
    issuer: t.exposeString('issuer', { description: 'The authorization server that issued it (credentials are keyed by issuer)' }),
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

builder.objectFields(UserRef, (t) => ({
  oauthConnections: t.field({
    type: [OAuthConnectionRef],
    description: "This user's per-user OAuth connections (status, expiry, scopes; never a token).",
    resolve: (u, _args, ctx) => listUserCredentials(ctx.db, u.id),
  }),
}));

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
      "Starts the OAuth authorization of an OAUTH server's shared credential: discovery, client registration, PKCE. Returns the URL an admin opens; the callback on this control plane stores the tokens.",
    args: { name: t.arg.string({ required: true }) },
    resolve: async (_root, args, ctx) => {
      const server = await getMcpServerByName(ctx.db, args.name);
      if (!server) return notFound('name', `no MCP server named "${args.name}"`);
      if (server.authType !== 'OAUTH') {
        return { server, errors: [{ field: 'name', code: 'WRONG_AUTH_TYPE', message: `${server.name} uses ${server.authType} authentication; startServerOAuth is for OAUTH servers` }] };
      }
      if (!ctx.oauth) return { server, errors: [{ field: null, code: 'OAUTH_FAILED', message: 'OAuth is not available on this control plane' }] };
      try {
        const url = await ctx.oauth.startAuthorization(server, null);
        return { url: url.href, server, errors: [] };
      } catch (error) {
        if (error instanceof OAuthFlowError) return { server, errors: [{ field: null, code: `OAUTH_${error.code}`, message: error.message }] };
        throw error;
      }
    },
  }),
  revokeUserOAuthConnection: t.field({
    type: RevokeUserOAuthConnectionPayload,
    description: "Forgets a user's OAuth tokens for a server; their next tool call asks them to connect again.",
    args: { userId: t.arg.id({ required: true }), server: t.arg.string({ required: true }) },
    resolve: async (_root, args, ctx) => {
      const server = await getMcpServerByName(ctx.db, args.server);
      if (!server) return { revoked: false, errors: [{ field: 'server', code: 'NOT_FOUND', message: `no MCP server named "${args.server}"` }] };
      const revoked = await deleteCredential(ctx.db, server.id, args.userId);
      return { revoked, errors: [] };
    },
  }),
}));
