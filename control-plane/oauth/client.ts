/**
 * Gatehouse as an OAuth client of an upstream authorization server: choosing or obtaining its client id
 * in MCP 2025-11-25's order (pre-registered → Client ID Metadata Document → dynamic registration, RFC
 * 7591), keyed by (server, issuer) so a server that moves to another AS gets a fresh registration, and
 * building the openid-client `Configuration` for it. It stores clients; it does not run authorization flows.
 */
import * as client from 'openid-client';
import {
  allowInsecureRequests as allowInsecureRequestsOption,
  dynamicClientRegistrationRequest,
  type AuthorizationServer,
} from 'oauth4webapi';
import { randomUUID } from 'node:crypto';
import type { SecretBox } from '../crypto/secret-box.js';
import { clientSecretAad, findOAuthClient, saveOAuthClient, settingsSecretAad, deleteOAuthClient, type OAuthClientRow, type ServerOAuthSettingsRow } from '../repos/oauth.js';
import type { Db } from '../repos/transaction.js';
import { OAuthFlowError } from './errors.js';
import { shownUrl } from '../repos/url-secrets.js';

export const CLIENT_NAME = 'Gatehouse MCP gateway';

export interface ClientEndpoints {
  /** The callback every registration names. */
  redirectUri: string;
  /** Where this control plane serves its Client ID Metadata Document. */
  metadataDocumentUrl: string;
  allowInsecure: boolean;
  timeoutMs: number;
}

/** The Client ID Metadata Document (draft-ietf-oauth-client-id-metadata-document) this control plane serves. */
export function clientMetadataDocument(endpoints: Pick<ClientEndpoints, 'redirectUri' | 'metadataDocumentUrl'>): Record<string, unknown> {
  return {
    client_id: endpoints.metadataDocumentUrl,
    client_name: CLIENT_NAME,
    application_type: 'web',
    redirect_uris: [endpoints.redirectUri],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
  };
}

function registrationAuthMethod(metadata: AuthorizationServer): string {
  // RFC 8414 §2: absent means client_secret_basic. A confidential client is the safer default for a server.
  const supported = metadata.token_endpoint_auth_methods_supported ?? ['client_secret_basic'];
  if (supported.includes('client_secret_basic')) return 'client_secret_basic';
  if (supported.includes('client_secret_post')) return 'client_secret_post';
  return 'none';
}

async function register(metadata: AuthorizationServer, endpoints: ClientEndpoints): Promise<{ clientId: string; clientSecret: string | null; method: string }> {
  const requested = registrationAuthMethod(metadata);
  let response: Response;
  try {
    response = await dynamicClientRegistrationRequest(
      metadata,
      {
        client_name: CLIENT_NAME,
        // OIDC Registration §2 / MCP SEP-837: a server-side client with https (or loopback) redirect URIs.
        application_type: 'web',
        redirect_uris: [endpoints.redirectUri],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: requested,
      },
      { [allowInsecureRequestsOption]: endpoints.allowInsecure, signal: AbortSignal.timeout(endpoints.timeoutMs) },
    );
  } catch {
    throw new OAuthFlowError('AS_UNREACHABLE', `could not reach the registration endpoint of ${shownUrl(metadata.issuer)}`);
  }
  if (response.status >= 500) throw new OAuthFlowError('AS_UNREACHABLE', `the registration endpoint of ${shownUrl(metadata.issuer)} answered ${response.status}`);
  // Read leniently (RFC 7591 §3.2.1): some servers omit client_secret_expires_at, which strict parsers refuse.
  const body = response.status === 201 || response.status === 200 ? ((await response.json().catch(() => null)) as Record<string, unknown> | null) : null;
  if (!body || typeof body.client_id !== 'string' || body.client_id === '') {
    await response.body?.cancel().catch(() => undefined);
    throw new OAuthFlowError('AS_ERROR', `dynamic client registration at ${shownUrl(metadata.issuer)} was refused`);
  }
  const secret = typeof body.client_secret === 'string' && body.client_secret !== '' ? body.client_secret : null;
  const method = typeof body.token_endpoint_auth_method === 'string' ? body.token_endpoint_auth_method : requested;
  return { clientId: body.client_id, clientSecret: secret, method: secret === null ? 'none' : method };
}

/**
 * The client to use at `metadata.issuer` for this server: the one stored for that issuer, else a new one
 * in the spec's order. A stored client whose redirect URI no longer matches (the control plane moved) is
 * replaced.
 */
export async function ensureClient(
  db: Db,
  box: SecretBox,
  serverId: string,
  metadata: AuthorizationServer,
  settings: ServerOAuthSettingsRow | null,
  endpoints: ClientEndpoints,
): Promise<OAuthClientRow> {
  const existing = await findOAuthClient(db, serverId, metadata.issuer);
  const preRegistered = settings?.client_id ?? null;
  if (existing && existing.redirect_uri === endpoints.redirectUri && (preRegistered === null || existing.client_id === preRegistered)) return existing;
  if (existing) await deleteOAuthClient(db, existing.id);

  const id = randomUUID();
  if (preRegistered !== null) {
    const secret = settings?.client_secret ? box.open(settings.client_secret, settingsSecretAad(serverId)) : null;
    return saveOAuthClient(db, {
      id,
      server_id: serverId,
      issuer: metadata.issuer,
      client_id: preRegistered,
      client_secret: secret === null ? null : box.seal(secret, clientSecretAad(id)),
      registration: 'PRE_REGISTERED',
      token_endpoint_auth_method: secret === null ? 'none' : 'client_secret_basic',
      redirect_uri: endpoints.redirectUri,
    });
  }
  // An authorization server fetches the document itself: https, unless http was opted into (development).
  const cimdUsable = endpoints.metadataDocumentUrl.startsWith('https://') || endpoints.allowInsecure;
  if (metadata.client_id_metadata_document_supported === true && cimdUsable) {
    return saveOAuthClient(db, {
      id,
      server_id: serverId,
      issuer: metadata.issuer,
      client_id: endpoints.metadataDocumentUrl,
      client_secret: null,
      registration: 'METADATA_DOCUMENT',
      token_endpoint_auth_method: 'none',
      redirect_uri: endpoints.redirectUri,
    });
  }
  if (!metadata.registration_endpoint) {
    throw new OAuthFlowError(
      'REGISTRATION_UNAVAILABLE',
      `the authorization server ${shownUrl(metadata.issuer)} offers no client registration: set oauth.clientId (and clientSecret) on the server`,
    );
  }
  const registered = await register(metadata, endpoints);
  return saveOAuthClient(db, {
    id,
    server_id: serverId,
    issuer: metadata.issuer,
    client_id: registered.clientId,
    client_secret: registered.clientSecret === null ? null : box.seal(registered.clientSecret, clientSecretAad(id)),
    registration: 'DYNAMIC',
    token_endpoint_auth_method: registered.method,
    redirect_uri: endpoints.redirectUri,
  });
}

/**
 * HTTP Basic client authentication (RFC 6749 §2.3.1): id and secret form-urlencoded, then Base64. Written
 * here because openid-client also percent-encodes unreserved characters such as `-`, which some servers
 * compare without decoding.
 */
function clientSecretBasic(clientId: string, secret: string): client.ClientAuth {
  const encode = (value: string): string => encodeURIComponent(value).replace(/%20/g, '+');
  const credentials = Buffer.from(`${encode(clientId)}:${encode(secret)}`).toString('base64');
  return (_as, _client, _body, headers) => {
    headers.set('authorization', `Basic ${credentials}`);
  };
}

/** The openid-client configuration for a stored client at an authorization server. */
export function clientConfiguration(box: SecretBox, metadata: AuthorizationServer, row: OAuthClientRow, endpoints: Pick<ClientEndpoints, 'allowInsecure' | 'timeoutMs'>): client.Configuration {
  const secret = row.client_secret === null ? undefined : box.open(row.client_secret, clientSecretAad(row.id));
  const auth =
    secret === undefined
      ? client.None()
      : row.token_endpoint_auth_method === 'client_secret_post'
        ? client.ClientSecretPost(secret)
        : clientSecretBasic(row.client_id, secret);
  const config = new client.Configuration(metadata, row.client_id, { redirect_uris: [row.redirect_uri] }, auth);
  config.timeout = Math.ceil(endpoints.timeoutMs / 1000);
  if (endpoints.allowInsecure) client.allowInsecureRequests(config);
  return config;
}
