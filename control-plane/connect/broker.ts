/**
 * What a node gets when it asks for a server's credential for one user (the `/nodes/credentials` route):
 * the headers to send (a shared or per-user OAuth token, refreshed here and only here; a user's header
 * values), or the one-time connect URL the user must open (`auth_required`), or why nothing can be sent
 * now (`unavailable`). Identity is the user id the node took from the caller's virtual key; a user's
 * credential is looked up by that id only, so one user's token is never answered for another.
 */
import type { Kysely } from 'kysely';
import type { CredentialAnswer, CredentialRequest } from '../../data-plane/snapshot/credential-protocol.js';
import type { SecretBox } from '../crypto/secret-box.js';
import type { Database } from '../db/schema.js';
import { createConnectLink, getHeaderSet, headerSetAad, headerSetCurrent, markHeaderSet } from '../repos/connect.js';
import { getMcpServerByName, type McpServer } from '../repos/mcp-servers.js';
import { getUser } from '../repos/users.js';
import { OAuthFlowError } from '../oauth/errors.js';
import type { AccessToken, OAuthService } from '../oauth/service.js';

export const CONNECT_PATH_PREFIX = '/connect/';
/** Upper bound on how long a node reuses an answer: revocations and refreshes reach nodes at least this fast. */
const MAX_CACHE_MS = 60_000;

export interface BrokerDeps {
  db: Kysely<Database>;
  box: SecretBox;
  oauth: OAuthService;
}

function tokenAnswer(token: AccessToken): CredentialAnswer {
  const left = token.expiresAt === null ? MAX_CACHE_MS : Date.parse(token.expiresAt) - Date.now() - 30_000;
  return {
    status: 'ok',
    headers: { authorization: `Bearer ${token.token}` },
    generation: token.generation,
    cacheMs: Math.max(0, Math.min(MAX_CACHE_MS, left)),
  };
}

export class CredentialBroker {
  constructor(private readonly deps: BrokerDeps) {}

  /** The URL a user opens to connect (single use, 15 minutes, bound to the user and server). */
  async connectUrl(userId: string, server: McpServer, kind: 'oauth' | 'headers'): Promise<string> {
    const token = await createConnectLink(this.deps.db, userId, server.id, kind);
    return `${this.deps.oauth.publicBaseUrl()}${CONNECT_PATH_PREFIX}${token}`;
  }

  async answer(request: CredentialRequest): Promise<CredentialAnswer> {
    const server = await getMcpServerByName(this.deps.db, request.server);
    if (!server) return { status: 'unavailable', message: `no server named ${request.server}`, retryable: false };
    switch (server.authType) {
      case 'OAUTH':
        return this.shared(server, request);
      case 'PER_USER_OAUTH':
        return this.perUserOAuth(server, request);
      case 'PER_USER_HEADERS':
        return this.perUserHeaders(server, request);
      default:
        return { status: 'ok', headers: {}, generation: 0, cacheMs: MAX_CACHE_MS };
    }
  }

  private async shared(server: McpServer, request: CredentialRequest): Promise<CredentialAnswer> {
    try {
      const token = await this.deps.oauth.accessToken(server.id, null, request.rejectedGeneration === undefined ? {} : { rejectedGeneration: request.rejectedGeneration });
      return tokenAnswer(token);
    } catch (error) {
      if (!(error instanceof OAuthFlowError)) throw error;
      if (error.code === 'NOT_CONNECTED') {
        return { status: 'unavailable', message: `${server.name} is not authorized yet: a Gatehouse admin must run startServerOAuth for it`, retryable: false };
      }
      if (error.code === 'NEEDS_REAUTH') {
        return {
          status: 'unavailable',
          message: `${server.name}'s authorization was refused by its authorization server: a Gatehouse admin must run startServerOAuth for it again`,
          retryable: false,
        };
      }
      return { status: 'unavailable', message: `${server.name}'s authorization server cannot be reached right now; try again shortly`, retryable: true };
    }
  }

  private async perUserOAuth(server: McpServer, request: CredentialRequest): Promise<CredentialAnswer> {
    const userId = request.userId;
    if (userId === null || !(await getUser(this.deps.db, userId))) {
      return { status: 'unavailable', message: `${server.name} needs a user's own account, and this caller has none`, retryable: false };
    }
    try {
      const token = await this.deps.oauth.accessToken(server.id, userId, request.rejectedGeneration === undefined ? {} : { rejectedGeneration: request.rejectedGeneration });
      return tokenAnswer(token);
    } catch (error) {
      if (!(error instanceof OAuthFlowError)) throw error;
      if (error.code === 'NOT_CONNECTED' || error.code === 'NEEDS_REAUTH') {
        return {
          status: 'auth_required',
          kind: 'oauth',
          url: await this.connectUrl(userId, server, 'oauth'),
          reason: error.code === 'NOT_CONNECTED' ? 'not_connected' : 'needs_reauth',
        };
      }
      return { status: 'unavailable', message: `${server.name}'s authorization server cannot be reached right now; try again shortly`, retryable: true };
    }
  }

  private async perUserHeaders(server: McpServer, request: CredentialRequest): Promise<CredentialAnswer> {
    const userId = request.userId;
    if (userId === null || !(await getUser(this.deps.db, userId))) {
      return { status: 'unavailable', message: `${server.name} needs a user's own values, and this caller has none`, retryable: false };
    }
    const set = await getHeaderSet(this.deps.db, server.id, userId);
    const current = set !== null && headerSetCurrent(set, server.perUserHeaderKeys);
    if (set !== null && !current) await markHeaderSet(this.deps.db, server.id, userId, 'NEEDS_UPDATE');
    if (!set || !current) {
      return {
        status: 'auth_required',
        kind: 'headers',
        url: await this.connectUrl(userId, server, 'headers'),
        requiredHeaderKeys: [...server.perUserHeaderKeys],
        reason: set ? 'needs_update' : 'not_connected',
      };
    }
    const values = JSON.parse(this.deps.box.open(set.header_values, headerSetAad(server.id, userId))) as Record<string, string>;
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(values)) headers[name.toLowerCase()] = value;
    return { status: 'ok', headers, generation: set.generation, cacheMs: MAX_CACHE_MS };
  }
}
