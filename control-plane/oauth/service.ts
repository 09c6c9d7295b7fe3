/**
 * Upstream OAuth for MCP servers, shared (OAUTH) and per user (PER_USER_OAUTH): starting an authorization
 * (discovery, client, PKCE S256, state, RFC 8707 `resource`), completing it at the callback (state spent
 * once, RFC 9207 `iss` checked by openid-client, tokens sealed for the flow's owner only), and handing out
 * access tokens, refreshing them before expiry or after an upstream 401.
 *
 * Refresh never locks anyone out: one refresh per credential at a time (in-process single flight, and on
 * PostgreSQL the credential's row lock, so replicas spend a rotating refresh token once); transient
 * failures retry with backoff and keep the credential; only `invalid_grant` marks it NEEDS_REAUTH.
 * It does not render pages or decide who may connect (connect/ and the callers do).
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import * as client from 'openid-client';
import type { AuthorizationServer } from 'oauth4webapi';
import type { SecretBox } from '../crypto/secret-box.js';
import { constantTimeEqual } from '../crypto/tokens.js';
import type { Dialect } from '../db/database.js';
import type { Database } from '../db/schema.js';
import { connectionUrlText, type McpServer } from '../repos/mcp-servers.js';
import {
  credentialAad,
  findCredential,
  flowStartUrlAad,
  flowVerifierAad,
  getOAuthClient,
  getServerOAuthSettings,
  openSettingsUrls,
  openCredentialResource,
  openFlowResource,
  insertFlow,
  markCredential,
  newCredentialId,
  noteCredentialError,
  pruneFlows,
  replaceCredential,
  findOpenFlow,
  spendFlow,
  spendStartLink,
  peekStartLink,
  storeRefreshedTokens,
  findOAuthClient,
  type OAuthCredentialRow,
  type ServerOAuthSettingsRow,
} from '../repos/oauth.js';
import type { Db } from '../repos/transaction.js';
import { clientConfiguration, clientMetadataDocument, ensureClient, type ClientEndpoints } from './client.js';
import { defaultResource, discover, discoverAuthorizationServer, type Discovered } from './discovery.js';
import { OAuthFlowError } from './errors.js';
import { oauthEndpointProblem, oauthEndpointProblemText } from './urls.js';
import { shownUrl } from '../repos/url-secrets.js';

export const OAUTH_CALLBACK_PATH = '/oauth/callback';
export const CLIENT_METADATA_PATH = '/oauth/client-metadata.json';
/** Where an admin's one-time start link lives: `<public URL>/oauth/start/<token>`. */
export const OAUTH_START_PATH_PREFIX = '/oauth/start/';
export const START_LINK_PATTERN = /^\/oauth\/start\/(gho_[A-Za-z0-9_-]{43})$/;
/** How long an authorization started by startServerOAuth or a connect page may take. */
const FLOW_TTL_MS = 15 * 60_000;

export interface OAuthLogger {
  info(fields: object, message?: string): void;
  warn(fields: object, message?: string): void;
}

export interface OAuthServiceOptions {
  db: Kysely<Database>;
  dialect: Dialect;
  box: SecretBox;
  /** The control plane's public base URL (callbacks and the metadata document live under it). */
  publicUrl: () => string;
  /** Named opt-in for http:// authorization servers and MCP servers (tests, loopback development). */
  allowInsecure?: boolean;
  /** Refresh when an access token has less than this left (default 60 s). */
  refreshMarginMs?: number;
  /** Delays between refresh attempts on transient failures (default 250 ms, 1 s). */
  retryDelaysMs?: readonly number[];
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  logger?: OAuthLogger;
  /** Refreshes in flight by credential id; default process-wide. Tests give each simulated replica its own. */
  inFlight?: Map<string, Promise<AccessToken>>;
  /** Called after a shared credential's status changed what McpServer.status shows. */
  onServerStatusChanged?: (serverId: string) => void;
}

export interface AccessToken {
  token: string;
  tokenType: string;
  expiresAt: string | null;
  /** Moves whenever the stored tokens change: a node reports a 401 against the generation it used. */
  generation: number;
  credentialId: string;
}

type RefreshOutcome = { token: AccessToken } | { error: OAuthFlowError };

/**
 * Refreshes in flight in this process, by credential id: process-wide (not per service instance), so
 * everything in one process shares one refresh per credential.
 */
const processInFlight = new Map<string, Promise<AccessToken>>();

export type OpenedStartLink = { ok: true; authorizationUrl: string; browserBinding: string } | { ok: false; reason: 'invalid' | 'used' | 'expired' };

export interface CompletedFlow {
  serverId: string;
  userId: string | null;
}

export interface AccessTokenRequest {
  /** The generation an upstream answered 401 to: refresh unless the stored one is already newer. */
  rejectedGeneration?: number;
}

/**
 * An admin-asserted authorization server (oauth.authorizeUrl + tokenUrl set): used as given, without
 * discovery; its issuer is the token endpoint's origin. PKCE S256 is still always sent.
 */
function manualMetadata(settings: ServerOAuthSettingsRow | null): AuthorizationServer | null {
  if (!settings?.authorize_url || !settings.token_url) return null;
  return {
    issuer: new URL(settings.token_url).origin,
    authorization_endpoint: settings.authorize_url,
    token_endpoint: settings.token_url,
    ...(settings.registration_url ? { registration_endpoint: settings.registration_url } : {}),
    code_challenge_methods_supported: ['S256'],
  };
}

function checkManualEndpoints(metadata: AuthorizationServer, allowInsecure: boolean): void {
  for (const [field, value] of [
    ['authorizeUrl', metadata.authorization_endpoint],
    ['tokenUrl', metadata.token_endpoint],
    ['registrationUrl', metadata.registration_endpoint],
  ] as const) {
    const problem = value === undefined ? null : oauthEndpointProblem(value, allowInsecure);
    if (problem !== null) throw new OAuthFlowError('DISCOVERY_FAILED', `the server's OAuth setting ${oauthEndpointProblemText(problem, field)}; fix it with setMcpServerOAuth`);
  }
}

function hashState(state: string): string {
  return createHash('sha256').update(state).digest('base64url');
}

function isUnreachable(error: unknown): boolean {
  if (error instanceof OAuthFlowError) return error.transient;
  if (error instanceof client.ResponseBodyError) return error.status >= 500;
  if (error instanceof Error) {
    if (error.name === 'TimeoutError' || error.name === 'AbortError' || error instanceof TypeError) return true;
    const cause = (error as { cause?: unknown }).cause;
    if (cause instanceof Response) return cause.status >= 500 || cause.status === 429;
    if (cause instanceof Error) return isUnreachable(cause);
  }
  return false;
}

/** Translates what openid-client throws at the token endpoint into our codes (no token in any message). */
function tokenEndpointError(error: unknown, issuerUrl: string): OAuthFlowError {
  if (error instanceof OAuthFlowError) return error;
  // Messages reach GraphQL answers and logs: the issuer as reads show URLs (url-secrets.ts).
  const issuer = shownUrl(issuerUrl);
  if (error instanceof client.ResponseBodyError) {
    if (error.error === 'invalid_grant') return new OAuthFlowError('INVALID_GRANT', `the authorization server ${issuer} no longer accepts this grant: authorize again`);
    if (error.status >= 500) return new OAuthFlowError('AS_UNREACHABLE', `the authorization server ${issuer} answered ${error.status}`);
    return new OAuthFlowError('AS_ERROR', `the authorization server ${issuer} refused the request (${error.error})`);
  }
  if (error instanceof client.AuthorizationResponseError) {
    if (error.error === 'access_denied') return new OAuthFlowError('ACCESS_DENIED', 'access was denied at the authorization server');
    return new OAuthFlowError('AS_ERROR', `the authorization server ${issuer} answered ${error.error}`);
  }
  if (isUnreachable(error)) return new OAuthFlowError('AS_UNREACHABLE', `could not reach the authorization server ${issuer}`);
  const message = error instanceof Error ? error.message : '';
  if (message.includes('"iss"')) return new OAuthFlowError('ISSUER_MISMATCH', `the authorization response did not come from ${issuer} (RFC 9207 iss check)`);
  return new OAuthFlowError('AS_ERROR', `the response of the authorization server ${issuer} was not acceptable`);
}

function expiresAtOf(expiresIn: number | undefined): string | null {
  return typeof expiresIn === 'number' ? new Date(Date.now() + expiresIn * 1000).toISOString() : null;
}

function scopesOf(tokens: client.TokenEndpointResponse, fallback: readonly string[]): string[] {
  return typeof tokens.scope === 'string' ? tokens.scope.split(/\s+/).filter(Boolean) : [...fallback];
}

export class OAuthService {
  readonly db: Kysely<Database>;
  private readonly box: SecretBox;
  private readonly allowInsecure: boolean;
  private readonly refreshMarginMs: number;
  private readonly retryDelaysMs: readonly number[];
  private readonly timeoutMs: number;
  /** Issuer metadata, read again after ten minutes (token endpoints rarely move, but they may). */
  private readonly metadataCache = new Map<string, { metadata: AuthorizationServer; at: number }>();

  constructor(private readonly options: OAuthServiceOptions) {
    this.db = options.db;
    this.box = options.box;
    this.allowInsecure = options.allowInsecure ?? false;
    this.refreshMarginMs = options.refreshMarginMs ?? 60_000;
    this.retryDelaysMs = options.retryDelaysMs ?? [250, 1000];
    this.timeoutMs = options.timeoutMs ?? 10_000;
  }

  /** Whether http:// authorization servers are accepted (the named opt-in; see urls.ts). */
  get allowsInsecure(): boolean {
    return this.allowInsecure;
  }

  /** The control plane's public base URL, without a trailing slash. */
  publicBaseUrl(): string {
    return this.options.publicUrl().replace(/\/$/, '');
  }

  /**
   * `path` (a route of this control plane, `/connect/session`) as browsers see it: under the public URL's
   * own path when the control plane is served under a prefix (a proxy forwarding `/gatehouse/connect/…` as
   * `/connect/…`). Cookie paths, redirects and form actions of the hosted pages use it.
   */
  publicPath(path: string): string {
    return new URL(this.publicBaseUrl()).pathname.replace(/\/$/, '') + path;
  }

  get endpoints(): ClientEndpoints {
    const base = this.publicBaseUrl();
    return {
      redirectUri: base + OAUTH_CALLBACK_PATH,
      metadataDocumentUrl: base + CLIENT_METADATA_PATH,
      allowInsecure: this.allowInsecure,
      timeoutMs: this.timeoutMs,
    };
  }

  clientMetadataDocument(): Record<string, unknown> {
    return clientMetadataDocument(this.endpoints);
  }

  private serverUrl(server: McpServer): URL {
    if (server.connectionType === 'STDIO' || server.connectionString === null) {
      throw new OAuthFlowError('WRONG_AUTH_TYPE', `${server.name} is a stdio server: OAuth applies to HTTP and SSE servers`);
    }
    // The real URL (a sealed credential-bearing one opened here); messages name only the stored form.
    const text = connectionUrlText(this.box, server, this.options.env ?? process.env);
    if (!text) throw new OAuthFlowError('DISCOVERY_FAILED', `${server.name}'s URL comes from ${server.connectionString}, which is not set on the control plane`);
    try {
      return new URL(text);
    } catch {
      throw new OAuthFlowError('DISCOVERY_FAILED', `${server.name}'s URL is not valid`);
    }
  }

  /**
   * Metadata for a credential's issuer: the admin's endpoints when they set authorizeUrl and tokenUrl (an
   * authorization server without metadata), else discovered (and cached ten minutes).
   */
  private async metadataFor(serverId: string, issuer: string): Promise<AuthorizationServer> {
    const stored = await getServerOAuthSettings(this.db, serverId);
    const manual = manualMetadata(stored && openSettingsUrls(this.box, stored));
    if (manual && manual.issuer === issuer) return manual;
    return this.issuerMetadata(issuer);
  }

  private async issuerMetadata(issuer: string): Promise<AuthorizationServer> {
    const cached = this.metadataCache.get(issuer);
    if (cached && Date.now() - cached.at < 600_000) return cached.metadata;
    const metadata = await discoverAuthorizationServer(new URL(issuer), { allowInsecure: this.allowInsecure, timeoutMs: this.timeoutMs });
    this.metadataCache.set(issuer, { metadata, at: Date.now() });
    return metadata;
  }

  /**
   * Starts an authorization for the server's shared credential (userId null) or one user's, and returns
   * the authorization server URL the person opens. Identity comes from the caller (an admin token, or a
   * spent connect link), never from anything in the URL.
   */
  async startAuthorization(server: McpServer, userId: string | null, options: { browserBinding?: string } = {}): Promise<URL> {
    const bindingHash = options.browserBinding === undefined ? null : hashState(options.browserBinding);
    return this.prepare(server, userId, bindingHash, null);
  }

  /**
   * Starts the shared credential's authorization behind a one-time control-plane link (what
   * startServerOAuth returns): the authorization URL carries the state, so it is stored sealed and handed
   * out only by a redirect when the link is opened, which also binds the flow to that browser. Until then
   * the flow is bound to a value nobody holds, so no browser can complete it without the link.
   */
  async startAdminLink(server: McpServer): Promise<URL> {
    if (server.authType !== 'OAUTH') {
      throw new OAuthFlowError('WRONG_AUTH_TYPE', `${server.name} uses ${server.authType} authentication, not OAUTH`);
    }
    const token = `gho_${randomBytes(32).toString('base64url')}`;
    await this.prepare(server, null, hashState(randomBytes(32).toString('base64url')), hashState(token));
    return new URL(this.publicBaseUrl() + OAUTH_START_PATH_PREFIX + token);
  }

  /** Whether a start link could be spent now, without spending it (for the page its GET shows). */
  async checkStartLink(token: string): Promise<{ ok: true } | { ok: false; reason: 'invalid' | 'used' | 'expired' }> {
    return peekStartLink(this.db, hashState(token));
  }

  /** Spends a start link: the authorization URL to redirect to and the cookie value binding this browser. */
  async openStartLink(token: string): Promise<OpenedStartLink> {
    const browserBinding = randomBytes(32).toString('base64url');
    const spent = await spendStartLink(this.db, hashState(token), hashState(browserBinding));
    if (!spent.ok) return spent;
    if (spent.flow.start_url === null) return { ok: false, reason: 'invalid' };
    return { ok: true, authorizationUrl: this.box.open(spent.flow.start_url, flowStartUrlAad(spent.flow.state_hash)), browserBinding };
  }

  private async prepare(server: McpServer, userId: string | null, bindingHash: string | null, startLinkHash: string | null): Promise<URL> {
    const expected = userId === null ? 'OAUTH' : 'PER_USER_OAUTH';
    if (server.authType !== expected) {
      throw new OAuthFlowError('WRONG_AUTH_TYPE', `${server.name} uses ${server.authType} authentication, not ${expected}`);
    }
    // The whole URLs (credential-bearing ones opened here); messages name fields and origins only.
    const stored = await getServerOAuthSettings(this.db, server.id);
    const settings = stored && openSettingsUrls(this.box, stored);
    const manual = manualMetadata(settings);
    // Settings stored before the rule (or while the opt-in was on) are checked again when they are used.
    if (manual) checkManualEndpoints(manual, this.allowInsecure);
    const discovered: Discovered = manual
      ? { issuer: manual.issuer, metadata: manual, resource: settings?.resource ?? defaultResource(this.serverUrl(server)), scopes: [] }
      : await discover(this.serverUrl(server), { allowInsecure: this.allowInsecure, timeoutMs: this.timeoutMs, resource: settings?.resource ?? null });
    this.metadataCache.set(discovered.issuer, { metadata: discovered.metadata, at: Date.now() });
    const endpoints = this.endpoints;
    const clientRow = await ensureClient(this.db, this.box, server.id, discovered.metadata, settings, endpoints);
    const config = clientConfiguration(this.box, discovered.metadata, clientRow, endpoints);

    const settingScopes = settings ? (JSON.parse(settings.scopes) as string[]) : [];
    const scopes = settingScopes.length > 0 ? settingScopes : discovered.scopes;
    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const stateHash = hashState(state);
    const parameters: Record<string, string> = {
      redirect_uri: clientRow.redirect_uri,
      response_type: 'code',
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      resource: discovered.resource,
    };
    if (scopes.length > 0) parameters.scope = scopes.join(' ');
    const url = client.buildAuthorizationUrl(config, parameters);
    await pruneFlows(this.db);
    await insertFlow(this.db, this.box, {
      state_hash: stateHash,
      server_id: server.id,
      user_id: userId,
      issuer: discovered.issuer,
      client_row_id: clientRow.id,
      code_verifier: this.box.seal(verifier, flowVerifierAad(stateHash)),
      resource: discovered.resource,
      scopes: JSON.stringify(scopes),
      expires_at: new Date(Date.now() + FLOW_TTL_MS).toISOString(),
      browser_binding: bindingHash,
      start_link_hash: startLinkHash,
      start_url: startLinkHash === null ? null : this.box.seal(url.href, flowStartUrlAad(stateHash)),
    });
    return url;
  }

  /**
   * The callback: spends the flow named by `state` (unknown, spent or expired → STATE_INVALID), checks the
   * response (error, `iss`, state) and exchanges the code with the PKCE verifier and `resource`, then
   * stores the tokens for the flow's owner only.
   */
  async completeAuthorization(callbackQuery: URLSearchParams, browserBinding?: string | null): Promise<CompletedFlow> {
    const state = callbackQuery.get('state');
    if (!state) throw new OAuthFlowError('STATE_INVALID', 'this authorization response carries no state');
    const gone = (): OAuthFlowError => new OAuthFlowError('STATE_INVALID', 'this authorization link is unknown, was already used, or has expired: start again');
    // A flow completes only in the browser that started it (the connect page's or the start link's cookie),
    // checked before the flow is spent: the state travels in URLs (the authorization server's logs, a
    // shared screen), and a callback from a browser without the cookie used to spend it, so anyone who
    // saw the state could void the real sign-in still under way.
    const open = await findOpenFlow(this.db, hashState(state));
    if (!open) throw gone();
    if (open.browser_binding !== null && (!browserBinding || !constantTimeEqual(hashState(browserBinding), open.browser_binding))) {
      throw new OAuthFlowError('STATE_INVALID', 'this sign-in was not started in this browser: start again from your own link');
    }
    const flow = await spendFlow(this.db, hashState(state));
    // Spent by a concurrent callback between the two reads, or bound meanwhile (a start link opened).
    if (!flow || flow.browser_binding !== open.browser_binding) throw gone();
    const error = callbackQuery.get('error');
    if (error === 'access_denied') throw new OAuthFlowError('ACCESS_DENIED', 'access was denied at the authorization server');

    const clientRow = await getOAuthClient(this.db, flow.client_row_id);
    if (!clientRow) throw new OAuthFlowError('STATE_INVALID', 'the client this authorization started with is gone: start again');
    const metadata = await this.metadataFor(flow.server_id, flow.issuer).catch((e: unknown) => {
      throw tokenEndpointError(e, flow.issuer);
    });
    const config = clientConfiguration(this.box, metadata, clientRow, this.endpoints);
    const currentUrl = new URL(clientRow.redirect_uri);
    currentUrl.search = callbackQuery.toString();
    const verifier = this.box.open(flow.code_verifier, flowVerifierAad(flow.state_hash));
    const scopes = JSON.parse(flow.scopes) as string[];
    // Whole (a credential-bearing indicator is sealed at rest): the AS must see the one it was asked for.
    const resource = openFlowResource(this.box, flow);
    let tokens: client.TokenEndpointResponse;
    try {
      tokens = await client.authorizationCodeGrant(config, currentUrl, { pkceCodeVerifier: verifier, expectedState: state }, { resource });
    } catch (e) {
      throw tokenEndpointError(e, flow.issuer);
    }
    const id = newCredentialId();
    await replaceCredential(this.db, this.box, id, flow.server_id, flow.user_id, {
      issuer: flow.issuer,
      resource,
      accessToken: this.box.seal(tokens.access_token, credentialAad(id, 'access_token')),
      refreshToken: tokens.refresh_token ? this.box.seal(tokens.refresh_token, credentialAad(id, 'refresh_token')) : null,
      tokenType: tokens.token_type ?? 'bearer',
      expiresAt: expiresAtOf(tokens.expires_in),
      scopes: scopesOf(tokens, scopes),
    });
    if (flow.user_id === null) await this.setSharedStatus(this.db, flow.server_id, 'ACTIVE');
    this.options.logger?.info({ serverId: flow.server_id, shared: flow.user_id === null }, 'OAuth credential stored');
    return { serverId: flow.server_id, userId: flow.user_id };
  }

  private async setSharedStatus(db: Db, serverId: string, status: 'ACTIVE' | 'NEEDS_REAUTH' | 'NEEDS_AUTH'): Promise<void> {
    // Status is not configuration (compile.ts leaves it out of a server's digest): no config version bump.
    const result = await db.updateTable('mcp_servers').set({ status }).where('id', '=', serverId).where('status', '!=', status).executeTakeFirst();
    if (Number(result.numUpdatedRows) > 0) this.options.onServerStatusChanged?.(serverId);
  }

  private open(row: OAuthCredentialRow): AccessToken {
    return {
      token: this.box.open(row.access_token, credentialAad(row.id, 'access_token')),
      tokenType: row.token_type,
      expiresAt: row.expires_at,
      generation: row.generation,
      credentialId: row.id,
    };
  }

  private needsRefresh(row: OAuthCredentialRow, request: AccessTokenRequest): boolean {
    if (request.rejectedGeneration !== undefined && row.generation <= request.rejectedGeneration) return true;
    return row.expires_at !== null && Date.parse(row.expires_at) - Date.now() < this.refreshMarginMs;
  }

  /**
   * A usable access token for the server's shared credential (userId null) or one user's. Throws
   * NOT_CONNECTED, NEEDS_REAUTH (only after `invalid_grant`), or AS_UNREACHABLE when the token expired
   * and the authorization server cannot be reached (the credential is kept; a later call retries).
   */
  async accessToken(serverId: string, userId: string | null, request: AccessTokenRequest = {}): Promise<AccessToken> {
    const row = await findCredential(this.db, serverId, userId);
    if (!row) throw new OAuthFlowError('NOT_CONNECTED', 'no credential is stored: connect first');
    if (row.status === 'NEEDS_REAUTH') throw new OAuthFlowError('NEEDS_REAUTH', 'the authorization server no longer accepts this credential: authorize again');
    if (!this.needsRefresh(row, request)) return this.open(row);
    const inFlight = this.options.inFlight ?? processInFlight;
    let pending = inFlight.get(row.id);
    if (!pending) {
      pending = this.refreshLocked(serverId, userId, request).finally(() => inFlight.delete(row.id));
      inFlight.set(row.id, pending);
    }
    return pending;
  }

  private async refreshLocked(serverId: string, userId: string | null, request: AccessTokenRequest): Promise<AccessToken> {
    let outcome: RefreshOutcome;
    if (this.options.dialect === 'postgres') {
      // The row lock is held across the token request: another replica waits, then sees the new generation.
      // A failure is returned (not thrown) so what it recorded (NEEDS_REAUTH, last_error) commits.
      outcome = await this.db.transaction().execute((trx) => this.refreshWith(trx, serverId, userId, request, true));
    } else {
      // SQLite: one process owns the file; the process-wide single flight is the lock, and no write
      // transaction stays open across the HTTP request.
      outcome = await this.refreshWith(this.db, serverId, userId, request, false);
    }
    if ('error' in outcome) throw outcome.error;
    return outcome.token;
  }

  private async refreshWith(db: Db, serverId: string, userId: string | null, request: AccessTokenRequest, lock: boolean): Promise<RefreshOutcome> {
    const row = await findCredential(db, serverId, userId, { forUpdate: lock });
    if (!row) return { error: new OAuthFlowError('NOT_CONNECTED', 'no credential is stored: connect first') };
    if (row.status === 'NEEDS_REAUTH') return { error: new OAuthFlowError('NEEDS_REAUTH', 'the authorization server no longer accepts this credential: authorize again') };
    // Someone refreshed while we waited for the lock: use theirs (a rotating refresh token is spent once).
    if (!this.needsRefresh(row, request)) return { token: this.open(row) };
    const stillValid = row.expires_at === null || Date.parse(row.expires_at) > Date.now();
    const wasRejected = request.rejectedGeneration !== undefined;
    if (row.refresh_token === null) {
      if (stillValid && !wasRejected) return { token: this.open(row) };
      await markCredential(db, row.id, 'NEEDS_REAUTH', 'the access token expired and there is no refresh token');
      if (userId === null) await this.setSharedStatus(db, serverId, 'NEEDS_REAUTH');
      return { error: new OAuthFlowError('NEEDS_REAUTH', 'the access token expired and the authorization server gave no refresh token: authorize again') };
    }
    const refreshToken = this.box.open(row.refresh_token, credentialAad(row.id, 'refresh_token'));
    const clientRow = await findOAuthClient(db, serverId, row.issuer);
    if (!clientRow) return { error: new OAuthFlowError('NEEDS_REAUTH', 'the OAuth client for this credential is gone: authorize again') };
    let lastError: OAuthFlowError | null = null;
    for (let attempt = 0; attempt <= this.retryDelaysMs.length; attempt++) {
      if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, this.retryDelaysMs[attempt - 1]));
      try {
        const metadata = await this.metadataFor(serverId, row.issuer);
        const config = clientConfiguration(this.box, metadata, clientRow, this.endpoints);
        const tokens = await client.refreshTokenGrant(config, refreshToken, { resource: openCredentialResource(this.box, row) });
        const fields = {
          accessToken: this.box.seal(tokens.access_token, credentialAad(row.id, 'access_token')),
          // RFC 6749 §6: without a new refresh token, the old one stays valid.
          refreshToken: tokens.refresh_token ? this.box.seal(tokens.refresh_token, credentialAad(row.id, 'refresh_token')) : row.refresh_token,
          tokenType: tokens.token_type ?? row.token_type,
          expiresAt: expiresAtOf(tokens.expires_in),
          scopes: scopesOf(tokens, JSON.parse(row.scopes) as string[]),
        };
        await storeRefreshedTokens(db, row.id, fields);
        if (userId === null) await this.setSharedStatus(db, serverId, 'ACTIVE');
        return {
          token: { token: tokens.access_token, tokenType: fields.tokenType, expiresAt: fields.expiresAt, generation: row.generation + 1, credentialId: row.id },
        };
      } catch (e) {
        lastError = tokenEndpointError(e, row.issuer);
        if (!lastError.transient) break;
      }
    }
    const failure = lastError ?? new OAuthFlowError('AS_ERROR', 'refresh failed');
    if (failure.code === 'INVALID_GRANT') {
      await markCredential(db, row.id, 'NEEDS_REAUTH', failure.message);
      if (userId === null) await this.setSharedStatus(db, serverId, 'NEEDS_REAUTH');
      this.options.logger?.warn({ serverId, shared: userId === null }, 'OAuth refresh refused (invalid_grant): NEEDS_REAUTH');
      return { error: new OAuthFlowError('NEEDS_REAUTH', failure.message) };
    }
    // Transient or unexpected: keep the credential as it is (Bifrost #2557 locked users out here).
    await noteCredentialError(db, row.id, failure.message);
    this.options.logger?.warn({ serverId, shared: userId === null, code: failure.code }, 'OAuth refresh failed; credential kept');
    if (stillValid && !wasRejected) return { token: this.open(row) };
    return { error: failure };
  }
}
