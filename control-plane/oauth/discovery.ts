/**
 * Finding an MCP server's authorization server, as MCP 2025-11-25 `basic/authorization` orders it:
 * the protected-resource metadata URL from the 401's `WWW-Authenticate` (RFC 9728 §5.1), else the
 * well-known paths (path-specific first, then root); then the authorization server's metadata at
 * RFC 8414 path insertion, OIDC path insertion, OIDC path appending (root issuers: RFC 8414, then OIDC).
 * It checks what the specs require (issuer identity, PKCE S256) and does no registration or token work.
 */
import { processDiscoveryResponse, type AuthorizationServer } from 'oauth4webapi';
import { OAuthFlowError } from './errors.js';
import { oauthEndpointProblem, oauthEndpointProblemText } from './urls.js';
import { redactUrl } from '../repos/url-secrets.js';

export interface Discovered {
  /** The RFC 8707 resource indicator: the protected resource's identifier (or the server URL). */
  resource: string;
  /** Scopes the server asked for in its challenge or lists as supported; may be empty. */
  scopes: string[];
  issuer: string;
  metadata: AuthorizationServer;
}

export interface DiscoveryOptions {
  /** Named opt-in for http:// authorization servers (tests, loopback development). */
  allowInsecure: boolean;
  timeoutMs?: number;
  /** Admin settings that replace discovery results. */
  resource?: string | null;
}

const TIMEOUT_MS = 10_000;

/** `Bearer resource_metadata="…", scope="a b"` → parameters of the Bearer challenge (RFC 9110 §11.6.1). */
export function parseBearerChallenge(header: string | null): Record<string, string> {
  const params: Record<string, string> = {};
  if (!header) return params;
  const bearer = /(?:^|,\s*)Bearer\s+(.*)$/i.exec(header);
  if (!bearer?.[1]) return params;
  const pattern = /([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/g;
  for (const match of bearer[1].matchAll(pattern)) {
    const [, name, quoted, token] = match;
    if (name) params[name.toLowerCase()] = quoted !== undefined ? quoted.replace(/\\(.)/g, '$1') : (token ?? '');
  }
  return params;
}

async function fetchWithTimeout(url: URL, init: RequestInit, timeoutMs: number): Promise<Response> {
  try {
    return await fetch(url, { ...init, redirect: 'manual', signal: AbortSignal.timeout(timeoutMs) });
  } catch {
    throw new OAuthFlowError('AS_UNREACHABLE', `could not reach ${url.origin}`);
  }
}

/** The one rule for authorization-server URLs (urls.ts); a URL that breaks it ends discovery. */
function checkEndpoint(url: string, options: DiscoveryOptions, what: string): void {
  const problem = oauthEndpointProblem(url, options.allowInsecure);
  if (problem === null) return;
  // Names the origin only: a path or query could carry something the server did not mean to publish.
  let shown = what;
  try {
    shown = `${what} ${new URL(url).origin}`;
  } catch {
    // not a URL: the field name says enough
  }
  throw new OAuthFlowError('DISCOVERY_FAILED', oauthEndpointProblemText(problem, problem === 'not_a_url' || problem === 'not_http' ? what : shown));
}

/**
 * The metadata's endpoints under the issuer's rule: the server names them, and the authorization endpoint
 * becomes the redirect a person's browser follows, the others requests this control plane sends.
 */
function checkEndpoints(metadata: AuthorizationServer, options: DiscoveryOptions): void {
  for (const field of ['authorization_endpoint', 'token_endpoint', 'registration_endpoint'] as const) {
    const value = metadata[field];
    if (value !== undefined) checkEndpoint(value, options, `the authorization server's ${field}`);
  }
}

/** The protected-resource metadata URLs to try, in order (RFC 9728 §3.1; MCP 2025-11-25 fallback order). */
function resourceMetadataCandidates(serverUrl: URL, challenged: string | undefined): URL[] {
  const candidates: URL[] = [];
  if (challenged) {
    try {
      candidates.push(new URL(challenged, serverUrl));
    } catch {
      // An unparsable header value falls back to the well-known paths.
    }
  }
  const path = serverUrl.pathname === '/' ? '' : serverUrl.pathname.replace(/\/$/, '');
  if (path !== '') candidates.push(new URL(`/.well-known/oauth-protected-resource${path}`, serverUrl));
  candidates.push(new URL('/.well-known/oauth-protected-resource', serverUrl));
  return candidates;
}

/** The authorization-server metadata URLs to try for an issuer, in the MCP 2025-11-25 order. */
export function authorizationServerMetadataCandidates(issuer: URL): URL[] {
  const path = issuer.pathname === '/' ? '' : issuer.pathname.replace(/\/$/, '');
  if (path === '') {
    return [new URL('/.well-known/oauth-authorization-server', issuer), new URL('/.well-known/openid-configuration', issuer)];
  }
  return [
    new URL(`/.well-known/oauth-authorization-server${path}`, issuer),
    new URL(`/.well-known/openid-configuration${path}`, issuer),
    new URL(`${path}/.well-known/openid-configuration`, issuer),
  ];
}

interface ResourceMetadata {
  resource: string;
  authorizationServers: string[];
  scopesSupported: string[];
}

function readResourceMetadata(body: unknown): ResourceMetadata | null {
  if (typeof body !== 'object' || body === null) return null;
  const record = body as Record<string, unknown>;
  const servers = record.authorization_servers;
  if (typeof record.resource !== 'string' || !Array.isArray(servers) || !servers.every((s) => typeof s === 'string') || servers.length === 0) {
    return null;
  }
  const scopes = Array.isArray(record.scopes_supported) ? record.scopes_supported.filter((s): s is string => typeof s === 'string') : [];
  return { resource: record.resource, authorizationServers: servers as string[], scopesSupported: scopes };
}

/**
 * RFC 9728 §3.3: the metadata must be about this resource. MCP servers often publish the origin or a
 * path prefix as their resource, so the server URL must equal it or sit under it (same origin).
 */
function resourceCovers(resource: string, serverUrl: URL): boolean {
  let parsed: URL;
  try {
    parsed = new URL(resource);
  } catch {
    return false;
  }
  if (parsed.origin !== serverUrl.origin) return false;
  const prefix = parsed.pathname.replace(/\/$/, '');
  const path = serverUrl.pathname.replace(/\/$/, '');
  return path === prefix || path.startsWith(`${prefix}/`);
}

/** Asks the MCP server without a token and reads its challenge (a 401 is the expected answer). */
async function challenge(serverUrl: URL, timeoutMs: number): Promise<Record<string, string>> {
  const response = await fetchWithTimeout(
    serverUrl,
    {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'gatehouse-oauth-discovery', version: '1' } },
      }),
    },
    timeoutMs,
  ).catch(() => null);
  if (!response) return {};
  await response.body?.cancel();
  return response.status === 401 ? parseBearerChallenge(response.headers.get('www-authenticate')) : {};
}

async function readProtectedResource(serverUrl: URL, options: DiscoveryOptions, timeoutMs: number): Promise<{ metadata: ResourceMetadata | null; scope: string | undefined }> {
  const params = await challenge(serverUrl, timeoutMs);
  for (const candidate of resourceMetadataCandidates(serverUrl, params.resource_metadata)) {
    if (candidate.origin !== serverUrl.origin && candidate.protocol !== 'https:' && !options.allowInsecure) continue;
    const response = await fetchWithTimeout(candidate, { headers: { accept: 'application/json' } }, timeoutMs).catch(() => null);
    if (!response || response.status !== 200) {
      await response?.body?.cancel();
      continue;
    }
    const metadata = readResourceMetadata(await response.json().catch(() => null));
    if (metadata && resourceCovers(metadata.resource, serverUrl)) return { metadata, scope: params.scope };
  }
  return { metadata: null, scope: params.scope };
}

/** Reads and checks an issuer's metadata: issuer identity (RFC 8414 §3.3) and PKCE S256 support. */
export async function discoverAuthorizationServer(issuer: URL, options: DiscoveryOptions): Promise<AuthorizationServer> {
  checkEndpoint(issuer.href, options, 'the authorization server');
  const timeoutMs = options.timeoutMs ?? TIMEOUT_MS;
  let unreachable = false;
  for (const candidate of authorizationServerMetadataCandidates(issuer)) {
    let response: Response;
    try {
      response = await fetchWithTimeout(candidate, { headers: { accept: 'application/json' } }, timeoutMs);
    } catch {
      unreachable = true;
      continue;
    }
    if (response.status !== 200) {
      if (response.status >= 500) unreachable = true;
      await response.body?.cancel();
      continue;
    }
    let metadata: AuthorizationServer;
    try {
      metadata = await processDiscoveryResponse(issuer, response);
    } catch {
      // Wrong issuer or not JSON: this document is not the issuer's; the next candidate may be.
      continue;
    }
    checkEndpoints(metadata, options);
    if (!metadata.code_challenge_methods_supported?.includes('S256')) {
      throw new OAuthFlowError('PKCE_UNSUPPORTED', `the authorization server ${issuer.origin} does not advertise PKCE S256; Gatehouse refuses it`);
    }
    return metadata;
  }
  if (unreachable) throw new OAuthFlowError('AS_UNREACHABLE', `could not reach the authorization server ${issuer.origin}`);
  throw new OAuthFlowError('DISCOVERY_FAILED', `no authorization server metadata found for ${issuer.origin}`);
}

/**
 * The RFC 8707 resource indicator when neither the admin nor the server's metadata names one: the server
 * URL, or only its origin when the URL carries a credential (the indicator goes to the authorization server
 * in the browser's address bar; repos/url-secrets.ts says what counts).
 */
export function defaultResource(serverUrl: URL): string {
  return redactUrl(serverUrl).secret ? serverUrl.origin : serverUrl.href;
}

/**
 * From the MCP server URL to its authorization server: RFC 9728 first; without protected-resource
 * metadata, the server's own origin as the issuer (MCP 2025-03-26 servers).
 */
export async function discover(serverUrl: URL, options: DiscoveryOptions): Promise<Discovered> {
  const timeoutMs = options.timeoutMs ?? TIMEOUT_MS;
  const { metadata, scope } = await readProtectedResource(serverUrl, options, timeoutMs);
  const issuerText = metadata?.authorizationServers[0] ?? serverUrl.origin;
  let issuer: URL;
  try {
    issuer = new URL(issuerText);
  } catch {
    throw new OAuthFlowError('DISCOVERY_FAILED', 'the MCP server names an authorization server that is not a URL');
  }
  const asMetadata = await discoverAuthorizationServer(issuer, options);
  const scopes = scope ? scope.split(/\s+/).filter(Boolean) : (metadata?.scopesSupported ?? []);
  return {
    resource: options.resource ?? metadata?.resource ?? defaultResource(serverUrl),
    scopes,
    issuer: asMetadata.issuer,
    metadata: asMetadata,
  };
}
