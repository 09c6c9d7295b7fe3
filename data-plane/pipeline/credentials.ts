/**
 * The credentials stage: for one authorized call, the ONE value the upstream client gets (`UpstreamCall`):
 * the server, every header to send besides the transport's own, and the credential identity those
 * headers belong to. Upstream connections and `Mcp-Session-Id` sessions are keyed by (server, identity), so
 * one user's upstream session never carries another user's call (ContextForge #1078's class of bug).
 *
 * A `CredentialSource` says whose credentials a server gets for a caller. `staticCredentials` serves the
 * server's configured headers (identity `shared`: every caller uses the same credential). Per-user sources
 * (`data-plane/credentials/`, oauth) return the caller's own headers with identity `user:<id>`, or a
 * `GatewayError` when the caller has none yet. The stage then adds the caller headers the server's
 * `allowedExtraHeaders` names (never overriding a credential header, never carrying the caller's key).
 *
 * No side channel: nothing here is stored for a library to read back later; the value is passed down.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { ResolvedServer } from '../config/runtime.js';
import type { GatewayError } from '../errors.js';
import type { Caller, Departure } from './context.js';

/** Whose credential a call carries: `shared` (the server's own) or `user:<userId>` (a per-user one). */
export type CredentialIdentity = string;

export const SHARED_IDENTITY: CredentialIdentity = 'shared';

export function userIdentity(userId: string): CredentialIdentity {
  return `user:${userId}`;
}

/** A server's credential headers for one caller. */
export interface Credentials {
  readonly headers: Readonly<Record<string, string>>;
  readonly identity: CredentialIdentity;
  /**
   * For credentials that can go stale (OAuth tokens): called when the upstream answered 401 with these,
   * returning fresh credentials (refreshed on the control plane) or why there are none.
   */
  readonly renew?: () => Promise<Credentials | GatewayError>;
}

export interface CredentialSource {
  /** Must not throw: a caller without credentials is a `GatewayError`, an unreachable store too. */
  resolve(server: ResolvedServer, caller: Caller, departure: Departure): Credentials | GatewayError | Promise<Credentials | GatewayError>;
}

/** The explicit upstream call: everything the upstream client needs besides the message itself. */
export interface UpstreamCall {
  readonly server: ResolvedServer;
  /** Credential headers plus allowlisted caller headers, lower-cased names. */
  readonly headers: Readonly<Record<string, string>>;
  readonly identity: CredentialIdentity;
  /**
   * The credential's own headers (without caller headers): what an upstream connection for `identity`
   * sends. Absent: the server's configured headers.
   */
  readonly credentialHeaders?: Readonly<Record<string, string>>;
  /** See `Credentials.renew`. */
  readonly renew?: () => Promise<Credentials | GatewayError>;
  /**
   * This call's W3C trace headers (`traceparent`, `tracestate`), sent with `headers`. Kept apart from them so
   * the credential's header object stays the same object from call to call (what upstream clients cache
   * their wire header lists on), while the trace changes with every call.
   */
  readonly trace?: Readonly<Record<string, string>>;
}

/** Every header the call sends: `headers` plus its trace headers. */
export function callHeaders(call: UpstreamCall): Readonly<Record<string, string>> {
  return call.trace === undefined ? call.headers : { ...call.headers, ...call.trace };
}

const sharedByServer = new WeakMap<ResolvedServer, Credentials>();

/** The server's configured headers, shared by every caller (NONE and HEADERS servers). */
export const staticCredentials: CredentialSource = {
  resolve(server) {
    let credentials = sharedByServer.get(server);
    if (!credentials) {
      credentials = { headers: server.headers, identity: SHARED_IDENTITY };
      sharedByServer.set(server, credentials);
    }
    return credentials;
  },
};

/**
 * Credentials + the caller headers `server.allowedExtraHeaders` names (already lower-cased and stripped of
 * never-forwarded names in the Runtime), minus any whose value contains the caller's virtual key. A
 * credential header is never overridden by a caller's. Returns the credentials' own header object when
 * nothing is added, so the common call allocates nothing.
 */
export function upstreamCall(
  server: ResolvedServer,
  credentials: Credentials,
  incoming: IncomingHttpHeaders,
  callerToken: string,
  trace?: Readonly<Record<string, string>>,
): UpstreamCall {
  let headers: Record<string, string> | null = null;
  for (const name of server.allowedExtraHeaders) {
    // Own properties only: a name such as `constructor` must not find Object.prototype's.
    if (!Object.hasOwn(incoming, name) || Object.hasOwn(credentials.headers, name)) continue;
    const raw = incoming[name];
    if (raw === undefined) continue;
    const value = Array.isArray(raw) ? raw.join(', ') : raw;
    // A caller could put its key in any header; a forwarded header never carries it.
    if (callerToken !== '' && value.includes(callerToken)) continue;
    (headers ??= Object.assign(Object.create(null) as Record<string, string>, credentials.headers))[name] = value;
  }
  // One literal, absent members as undefined (readers compare with undefined), rather than conditional
  // spreads: each spread copied a fresh object's properties at run time, for every upstream call.
  return { server, headers: headers ?? credentials.headers, identity: credentials.identity, credentialHeaders: credentials.headers, renew: credentials.renew, trace };
}
