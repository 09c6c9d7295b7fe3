/**
 * The credentials stage's source on a node (`pipeline/credentials.ts`'s `CredentialSource`): NONE and
 * HEADERS servers get their configured headers; OAUTH servers the shared token, PER_USER_OAUTH and
 * PER_USER_HEADERS servers the caller's own token or values, fetched from the control plane on demand
 * (`/nodes/credentials`, sealed to this node) and cached briefly (the control plane says how long).
 *
 * The user is the one the caller's virtual key belongs to (`Caller.user`), never anything in the request;
 * cache entries are keyed by (server, user), so one user's credential never serves another. A per-user
 * value overrides a static header of the same name. An upstream 401 renews through the control plane
 * (which alone refreshes), naming the generation that was refused. A caller with nothing usable gets the
 * auth-required refusal (`auth-required.ts`) and the upstream is not called.
 */
import type { ResolvedServer } from '../config/runtime.js';
import { CredentialMessage, GatewayError } from '../errors.js';
import { NEVER_DEPARTS, type Caller } from '../pipeline/context.js';
import { staticCredentials, userIdentity, type CredentialSource, type Credentials } from '../pipeline/credentials.js';
import type { CredentialAnswer, CredentialRequest } from '../snapshot/credential-protocol.js';
import { authRequiredError, credentialsUnavailableError } from './auth-required.js';

/** Asks the control plane (the node's link does it: authenticated, answer opened with the node's key). */
export type CredentialFetcher = (request: CredentialRequest) => Promise<CredentialAnswer>;

export interface CredentialSourceLogger {
  warn(fields: object, message?: string): void;
}

interface CacheEntry {
  credentials: Credentials;
  generation: number;
  until: number;
}

export class ControlPlaneCredentialSource implements CredentialSource {
  readonly #fetch: CredentialFetcher;
  readonly #logger: CredentialSourceLogger;
  readonly #now: () => number;
  readonly #cache = new Map<string, CacheEntry>();
  readonly #inFlight = new Map<string, Promise<Credentials | GatewayError>>();

  constructor(options: { fetch: CredentialFetcher; logger: CredentialSourceLogger; now?: () => number }) {
    this.#fetch = options.fetch;
    this.#logger = options.logger;
    this.#now = options.now ?? Date.now;
  }

  resolve(server: ResolvedServer, caller: Caller): Credentials | GatewayError | Promise<Credentials | GatewayError> {
    switch (server.authType) {
      case 'OAUTH':
        return this.get(server, null);
      case 'PER_USER_OAUTH':
      case 'PER_USER_HEADERS':
        return this.get(server, caller.user.id);
      default:
        // No AbortController per call (the static source waits for nothing): the response's departure is not needed either.
        return staticCredentials.resolve(server, caller, NEVER_DEPARTS);
    }
  }

  /** The credential of `userId` (null: the server's shared one), from cache or the control plane. */
  get(server: ResolvedServer, userId: string | null, rejectedGeneration?: number): Credentials | GatewayError | Promise<Credentials | GatewayError> {
    const key = cacheKey(server.name, userId);
    const cached = this.#cache.get(key);
    if (cached && rejectedGeneration === undefined && cached.until > this.#now() && cached.credentials.headers !== undefined) {
      return cached.credentials;
    }
    if (rejectedGeneration !== undefined) this.#cache.delete(key);
    const flightKey = rejectedGeneration === undefined ? key : `${key}\n${rejectedGeneration}`;
    let pending = this.#inFlight.get(flightKey);
    if (!pending) {
      pending = this.#load(server, userId, key, rejectedGeneration).finally(() => this.#inFlight.delete(flightKey));
      this.#inFlight.set(flightKey, pending);
    }
    return pending;
  }

  /** Drops cached credentials: one (server, user), every user of a server, or everything. */
  invalidate(server?: string, userId?: string | null): void {
    if (server === undefined) {
      this.#cache.clear();
      return;
    }
    if (userId !== undefined) {
      this.#cache.delete(cacheKey(server, userId));
      return;
    }
    for (const key of [...this.#cache.keys()]) if (key.startsWith(`${server}\n`)) this.#cache.delete(key);
  }

  /** An upstream answered 401 to `generation`: the control plane refreshes (once) and answers anew. */
  reportUnauthorized(server: ResolvedServer, userId: string | null, generation: number): Promise<Credentials | GatewayError> {
    return Promise.resolve(this.get(server, userId, generation));
  }

  async #load(server: ResolvedServer, userId: string | null, key: string, rejectedGeneration?: number): Promise<Credentials | GatewayError> {
    let answer: CredentialAnswer;
    try {
      answer = await this.#fetch(rejectedGeneration === undefined ? { server: server.name, userId } : { server: server.name, userId, rejectedGeneration });
    } catch (error) {
      this.#logger.warn({ server: server.name, err: error instanceof Error ? error.message : String(error) }, 'could not fetch a credential from the control plane');
      return credentialsUnavailableError(CredentialMessage.controlPlaneUnreachable(server.name), true);
    }
    if (answer.status === 'auth_required') {
      this.#cache.delete(key);
      return authRequiredError(server.name, answer);
    }
    if (answer.status === 'unavailable') {
      this.#cache.delete(key);
      return credentialsUnavailableError(answer.message, answer.retryable);
    }
    const headers: Record<string, string> = {};
    // Static headers first, then the credential's: a per-user value overrides a static one of the same name.
    for (const [name, value] of Object.entries(server.headers)) headers[name.toLowerCase()] = value;
    for (const [name, value] of Object.entries(answer.headers)) headers[name.toLowerCase()] = value;
    const generation = answer.generation;
    const credentials: Credentials = {
      headers,
      // Not `shared`: that identity rides the pool's connection opened with the static headers only.
      identity: userId === null ? OAUTH_IDENTITY : userIdentity(userId),
      renew: () => Promise.resolve(this.get(server, userId, generation)),
    };
    if (answer.cacheMs > 0) this.#cache.set(key, { credentials, generation, until: this.#now() + answer.cacheMs });
    return credentials;
  }
}

/** The identity of a server's shared OAuth token: its own upstream session, opened with the token. */
export const OAUTH_IDENTITY = 'oauth';

function cacheKey(server: string, userId: string | null): string {
  return `${server}\n${userId ?? ''}`;
}
