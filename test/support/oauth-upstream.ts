/**
 * A real OAuth world for tests: `oidc-provider` as the authorization server (dynamic registration, PKCE
 * required, RFC 8707 resource indicators issuing JWT access tokens, rotating refresh tokens, dev login
 * and consent pages), and an MCP SDK server behind the SDK's `requireBearerAuth` that verifies those
 * tokens against the provider's JWKS and reports the token's subject. Plus a cookie-keeping HTTP driver
 * that logs in and consents at the provider without a browser (browser tests use Chromium instead).
 *
 * Everything listens on 127.0.0.1 ephemeral ports; the AS can be stopped and restarted on its port to
 * simulate a network failure.
 */
import { createServer, type Server } from 'node:http';
import express from 'express';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import Provider, { type Configuration, type KoaContextWithOIDC } from 'oidc-provider';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { requireBearerAuth } from '@modelcontextprotocol/sdk/server/auth/middleware/bearerAuth.js';
import { InvalidTokenError } from '@modelcontextprotocol/sdk/server/auth/errors.js';
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import { z } from 'zod';
import { closeServer, listen } from './upstreams.js';
import { openOneTimeLink } from './one-time-link.js';
import type { TestControlPlane } from './control-plane.js';

function listenOn(server: Server, port = 0): Promise<number> {
  return listen(server, port);
}

export interface AuthorizationServerOptions {
  /** Access token lifetime in seconds (default 3600). */
  accessTokenTtl?: number;
  /** Advertise and accept Client ID Metadata Documents. */
  clientIdMetadataDocument?: boolean;
  /** Turn off dynamic registration. */
  noRegistration?: boolean;
  /** Pre-registered clients. */
  clients?: Configuration['clients'];
}

export interface AuthorizationServer {
  issuer: string;
  provider: Provider;
  /** grant_type of every successful token request, in order. */
  grants: string[];
  /** How many refresh_token grants failed (e.g. a rotated token spent twice). */
  refreshErrors(): number;
  /** Every client registered dynamically. */
  registrations: string[];
  /** Destroys every refresh token issued so far: the next refresh gets a real `invalid_grant`. */
  revokeRefreshTokens(): Promise<void>;
  /** Stops listening (connections refused) until restart(). */
  stop(): Promise<void>;
  restart(): Promise<void>;
  close(): Promise<void>;
}

export async function startAuthorizationServer(options: AuthorizationServerOptions = {}): Promise<AuthorizationServer> {
  let server = createServer();
  const port = await listenOn(server);
  const issuer = `http://127.0.0.1:${port}`;
  const grants: string[] = [];
  const registrations: string[] = [];
  let refreshErrors = 0;
  const refreshTokens: Array<{ destroy(): Promise<void> }> = [];
  const provider = new Provider(issuer, {
    clients: options.clients ?? [],
    features: {
      devInteractions: { enabled: true },
      registration: { enabled: !options.noRegistration },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => undefined as unknown as string,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx: KoaContextWithOIDC, resource: string) => ({
          scope: 'mcp',
          audience: resource,
          accessTokenFormat: 'jwt' as const,
          accessTokenTTL: options.accessTokenTtl ?? 3600,
        }),
      },
      ...(options.clientIdMetadataDocument
        ? { clientIdMetadataDocument: { enabled: true, ack: 'experimental-01' as never } }
        : {}),
    },
    pkce: { required: () => true },
    scopes: ['openid', 'offline_access', 'mcp'],
    // Every authorization gets a refresh token (no offline_access dance), and each refresh rotates it.
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    rotateRefreshToken: true,
    findAccount: (_ctx, sub) => ({ accountId: sub, claims: () => ({ sub }) }),
  } as Configuration);
  provider.on('grant.success', (ctx: KoaContextWithOIDC) => grants.push(String(ctx.oidc.params?.grant_type)));
  provider.on('grant.error', (ctx: KoaContextWithOIDC) => {
    if (ctx.oidc.params?.grant_type === 'refresh_token') refreshErrors++;
  });
  provider.on('refresh_token.saved', (token: { destroy(): Promise<void> }) => refreshTokens.push(token));
  provider.on('registration_create.success', (_ctx: KoaContextWithOIDC, client: { clientId: string }) => registrations.push(client.clientId));
  server.on('request', provider.callback());

  return {
    issuer,
    provider,
    grants,
    registrations,
    refreshErrors: () => refreshErrors,
    async revokeRefreshTokens() {
      for (const token of refreshTokens.splice(0)) await token.destroy();
    },
    async stop() {
      await closeServer(server);
    },
    async restart() {
      server = createServer(provider.callback());
      await listenOn(server, port);
    },
    close: () => (server.listening ? closeServer(server) : Promise.resolve()),
  };
}

export interface ProtectedMcpServer {
  url: string;
  /** The token subject of every tools/call, in order. */
  callers: string[];
  /** How many requests were refused for a bad or missing token. */
  unauthorized(): number;
  /**
   * From now on refuse the tokens of `sub` issued so far (as if they had been revoked). Resolves once the
   * clock has moved to the next second, so tokens issued afterwards (`iat` has one-second resolution) pass.
   */
  revokeTokensOf(sub: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * An MCP server that accepts only JWT access tokens issued by `issuer` for its own URL (audience), via
 * the SDK's `requireBearerAuth`, advertising RFC 9728 metadata in its 401s. Tool `whoami` answers the
 * token's subject.
 */
export async function startProtectedMcpServer(
  as: Pick<AuthorizationServer, 'issuer'>,
  options: {
    /** Tools listed besides `whoami` to the token of `sub` only (a catalog that differs per user). */
    toolsFor?: (sub: string) => readonly string[];
    /**
     * A query the server's URL and resource identifier carry (`api_key=…`, as hosted servers take a
     * credential): advertised in its metadata and required as the tokens' audience, whole.
     */
    resourceQuery?: string;
  } = {},
): Promise<ProtectedMcpServer> {
  const app = express();
  const http = createServer(app);
  const port = await listenOn(http);
  const base = `http://127.0.0.1:${port}`;
  const resource = `${base}/mcp${options.resourceQuery ? `?${options.resourceQuery}` : ''}`;
  const metadataUrl = `${base}/.well-known/oauth-protected-resource/mcp`;
  const jwks = createRemoteJWKSet(new URL(`${as.issuer}/jwks`));
  const callers: string[] = [];
  let unauthorized = 0;
  /** sub → tokens issued at or before this time (seconds) are refused. */
  const revokedBefore = new Map<string, number>();

  app.get('/.well-known/oauth-protected-resource/mcp', (_req, res) => {
    res.json({ resource, authorization_servers: [as.issuer], scopes_supported: ['mcp'], bearer_methods_supported: ['header'] });
  });
  const verifier = {
    async verifyAccessToken(token: string): Promise<AuthInfo> {
      try {
        const { payload } = await jwtVerify(token, jwks, { issuer: as.issuer, audience: resource });
        const cutoff = revokedBefore.get(String(payload.sub));
        if (cutoff !== undefined && (payload.iat ?? 0) <= cutoff) throw new Error('revoked');
        return {
          token,
          clientId: String(payload.client_id ?? ''),
          scopes: typeof payload.scope === 'string' ? payload.scope.split(' ') : [],
          ...(typeof payload.exp === 'number' ? { expiresAt: payload.exp } : {}),
          resource: new URL(resource),
          extra: { sub: payload.sub },
        };
      } catch {
        throw new InvalidTokenError('token not accepted');
      }
    },
  };
  const auth = requireBearerAuth({ verifier, requiredScopes: ['mcp'], resourceMetadataUrl: metadataUrl });
  app.use('/mcp', (req, res, next) => {
    res.on('finish', () => {
      if (res.statusCode === 401) unauthorized++;
    });
    next();
  });
  app.post('/mcp', express.json(), auth, async (req, res) => {
    // Stateless: a server per request keeps one caller's identity out of every other request.
    const server = new McpServer({ name: 'protected-upstream', version: '1.0.0' });
    server.registerTool('whoami', { description: 'the subject of the bearer token', inputSchema: { note: z.string().optional() } }, (_args, extra) => {
      const sub = String(extra.authInfo?.extra?.sub ?? '');
      callers.push(sub);
      return { content: [{ type: 'text', text: `sub:${sub}` }] };
    });
    const sub = String(req.auth?.extra?.sub ?? '');
    // A resource and a prompt whose content names the token's subject: whose credential a read or get carried.
    server.registerResource('page', 'mem://page', { mimeType: 'text/plain' }, (uri) => ({ contents: [{ uri: uri.href, mimeType: 'text/plain', text: `page of sub:${sub}` }] }));
    server.registerPrompt('summary', { description: `summary prompt listed to ${sub}` }, () => ({
      messages: [{ role: 'user', content: { type: 'text', text: `summary for sub:${sub}` } }],
    }));
    for (const name of options.toolsFor?.(sub) ?? []) {
      server.registerTool(name, { description: `${name}: listed to ${sub} only` }, () => ({ content: [{ type: 'text', text: `ran ${name}` }] }));
    }
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on('close', () => {
      void transport.close();
      void server.close();
    });
    await server.connect(transport);
    await transport.handleRequest(req, res, req.body);
  });
  return {
    url: resource,
    callers,
    unauthorized: () => unauthorized,
    async revokeTokensOf(sub) {
      const cutoff = Math.floor(Date.now() / 1000);
      revokedBefore.set(sub, cutoff);
      await new Promise((resolve) => setTimeout(resolve, (cutoff + 1) * 1000 - Date.now() + 5));
    },
    close: () => closeServer(http),
  };
}

/** Calls the protected server's `whoami` directly with `token`: the subject it was issued to (`sub:<login>`). */
export async function callWhoami(url: string, token: string): Promise<string> {
  const client = new Client({ name: 'test', version: '1' });
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
  try {
    const result = await client.callTool({ name: 'whoami', arguments: {} });
    return (result.content as Array<{ text: string }>)[0]?.text ?? '';
  } finally {
    await client.close();
  }
}

/** A tiny cookie jar per origin (name → value), enough for the provider's interaction cookies. */
class CookieJar {
  private readonly jars = new Map<string, Map<string, string>>();

  store(url: URL, response: Response): void {
    const jar = this.jars.get(url.origin) ?? new Map<string, string>();
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const eq = pair?.indexOf('=') ?? -1;
      if (!pair || eq < 0) continue;
      jar.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
    }
    this.jars.set(url.origin, jar);
  }

  preset(origin: string, cookie: string): void {
    const jar = this.jars.get(origin) ?? new Map<string, string>();
    for (const pair of cookie.split(';')) {
      const eq = pair.indexOf('=');
      if (eq > 0) jar.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
    }
    this.jars.set(origin, jar);
  }

  header(url: URL): string {
    return [...(this.jars.get(url.origin) ?? new Map<string, string>()).entries()].map(([k, v]) => `${k}=${v}`).join('; ');
  }
}

export interface LoginResult {
  /** The last URL reached (the control plane's callback, normally). */
  url: string;
  status: number;
  body: string;
}

/**
 * Opens an authorization URL, logs in at the provider's dev login page as `login`, consents (or aborts,
 * with `deny`), and follows redirects back to wherever the provider sends the browser.
 */
export async function loginAndConsent(
  authorizationUrl: string,
  login: string,
  options: { deny?: boolean; stopAt?: string; /** Cookies the browser already holds, by origin. */ cookies?: Record<string, string> } = {},
): Promise<LoginResult> {
  const jar = new CookieJar();
  for (const [origin, cookie] of Object.entries(options.cookies ?? {})) jar.preset(origin, cookie);
  let url = new URL(authorizationUrl);
  let method = 'GET';
  let body: URLSearchParams | undefined;
  for (let hop = 0; hop < 20; hop++) {
    const response = await fetch(url, {
      method,
      redirect: 'manual',
      headers: { cookie: jar.header(url), ...(body ? { 'content-type': 'application/x-www-form-urlencoded' } : {}) },
      ...(body ? { body } : {}),
    });
    jar.store(url, response);
    method = 'GET';
    body = undefined;
    const location = response.headers.get('location');
    if (response.status >= 300 && response.status < 400 && location) {
      await response.body?.cancel();
      url = new URL(location, url);
      if (options.stopAt && url.href.startsWith(options.stopAt)) return { url: url.href, status: 0, body: '' };
      continue;
    }
    const text = await response.text();
    // A one-time control-plane link shows a Continue form first: press it (the cookie it set is in the jar).
    const linkForm = /^\/(connect|oauth\/start)\/gh[co]_/.test(url.pathname) && response.status === 200 ? /name="csrf" value="([^"]+)"/.exec(text) : null;
    if (linkForm?.[1]) {
      method = 'POST';
      body = new URLSearchParams({ csrf: linkForm[1] });
      continue;
    }
    const interaction = /\/interaction\/([^/?#]+)$/.exec(url.pathname);
    if (interaction && response.status === 200) {
      if (options.deny) {
        url = new URL(`/interaction/${interaction[1]}/abort`, url);
        continue;
      }
      method = 'POST';
      body = text.includes('name="login"')
        ? new URLSearchParams({ prompt: 'login', login, password: 'any' })
        : new URLSearchParams({ prompt: 'consent' });
      continue;
    }
    return { url: url.href, status: response.status, body: text };
  }
  throw new Error('too many redirects while authorizing');
}

export interface ConnectResult {
  /** The page the browser ended on. */
  status: number;
  body: string;
}

/**
 * What a person does with a connect URL, without a browser: open the link (Continue pressed: spent, cookie, redirect), read
 * the session page's CSRF token, submit "continue", then log in and consent at the authorization server
 * and follow the redirects back to the control plane's callback page.
 */
export async function connectWithLink(
  connectUrl: string,
  login: string,
  options: { deny?: boolean; onAuthorizationUrl?: (url: string) => void; /** Finish in another browser (without the flow cookie). */ otherBrowser?: boolean } = {},
): Promise<ConnectResult> {
  const link = await openOneTimeLink(connectUrl);
  if (link.status !== 303) return { status: link.status, body: await link.text() };
  const cookie = (link.headers.getSetCookie()[0] ?? '').split(';')[0] ?? '';
  const sessionUrl = new URL(link.headers.get('location') ?? '', connectUrl);
  const page = await fetch(sessionUrl, { headers: { cookie } });
  const body = await page.text();
  const csrf = /name="csrf" value="([^"]+)"/.exec(body)?.[1] ?? '';
  const start = await fetch(new URL('/connect/session/oauth', connectUrl), {
    method: 'POST',
    redirect: 'manual',
    headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ csrf }),
  });
  if (start.status !== 303) return { status: start.status, body: await start.text() };
  const authorizationUrl = start.headers.get('location') ?? '';
  options.onAuthorizationUrl?.(authorizationUrl);
  const flowCookie = (start.headers.getSetCookie()[0] ?? '').split(';')[0] ?? '';
  const cookies = options.otherBrowser ? {} : { [new URL(connectUrl).origin]: flowCookie };
  const landed = await loginAndConsent(authorizationUrl, login, options.deny ? { deny: true, cookies } : { cookies });
  return { status: landed.status, body: landed.body };
}

/** An authorization server and an MCP server it protects, for a test of the OAuth flows; close() stops both. */
export async function startOAuthUpstream(): Promise<{ as: AuthorizationServer; upstream: ProtectedMcpServer; close(): Promise<void> }> {
  const as = await startAuthorizationServer();
  const upstream = await startProtectedMcpServer(as);
  return {
    as,
    upstream,
    async close() {
      await upstream.close();
      await as.close();
    },
  };
}

/** A shared OAUTH server `name` at `url` on the control plane (every tool executable); its token is not had yet. */
export async function createSharedOAuthServer(cp: Pick<TestControlPlane, 'gql'>, name: string, url: string): Promise<void> {
  const made = await cp.gql<{ createMcpServer: { errors: unknown[] } }>('mutation($i: CreateMcpServerInput!) { createMcpServer(input: $i) { errors { code message } } }', {
    i: { name, connectionType: 'HTTP', connectionString: url, authType: 'OAUTH', toolsToExecute: ['*'] },
  });
  if (made.createMcpServer.errors.length > 0) throw new Error(`createMcpServer ${name}: ${JSON.stringify(made.createMcpServer.errors)}`);
}

/** An admin authorizes server `name`'s shared credential as `login` (startServerOAuth's link, sign-in, consent). */
export async function authorizeSharedOAuth(cp: Pick<TestControlPlane, 'gql'>, name: string, login: string): Promise<void> {
  const started = await cp.gql<{ startServerOAuth: { url: string | null; errors: unknown[] } }>('mutation($n: String!) { startServerOAuth(name: $n) { url errors { code message } } }', { n: name });
  if (!started.startServerOAuth.url) throw new Error(`startServerOAuth ${name}: ${JSON.stringify(started.startServerOAuth.errors)}`);
  const landed = await loginAndConsent(started.startServerOAuth.url, login);
  if (!landed.body.includes('All set')) throw new Error(`authorizing ${name} as ${login} ended on HTTP ${landed.status}: ${landed.body.slice(0, 200)}`);
}
