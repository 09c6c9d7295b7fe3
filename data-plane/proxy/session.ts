/**
 * Sessions on `/mcp/{server}` without sticky nodes (issue 9 item 2): the `Mcp-Session-Id` the client holds
 * is the upstream's session id sealed with the route's server, the key's id and the client's capabilities
 * (`data-plane/session/sealed-session.ts`), so whichever node a request lands on opens it and talks to the
 * upstream session it names. A refused id (another key, a revoked or expired key, another route, tampered
 * with, sealed under a retired secret, too old) is "session not found" to the client, which then starts a new
 * session (2025-11-25 transports §session management); the refusal's code is logged for the operator.
 *
 * Clients on MCP 2026-07-28 send no session id and get none: that era has no sessions.
 */
import type { Runtime, RuntimeKey } from '../config/runtime.js';
import { openSession, sealSession, SessionError, type SessionClaims, type SessionRefusal } from '../session/sealed-session.js';

export type OpenedSession =
  | { ok: true; claims: SessionClaims; sealed: string; /** The upstream's own id, or null if it issued none. */ upstream: string | null }
  | { ok: false; code: SessionRefusal | 'no_keyring' };

/** Opens the sealed id a caller presented on `/mcp/{server}`. */
export function openRouteSession(runtime: Runtime, key: RuntimeKey, server: string, sealed: string, now: number): OpenedSession {
  if (!runtime.sessionKeys) return { ok: false, code: 'no_keyring' };
  try {
    const claims = openSession(runtime.sessionKeys, sealed, { key, server, now });
    return { ok: true, claims, sealed, upstream: claims.upstream[server] ?? null };
  } catch (error) {
    if (error instanceof SessionError) return { ok: false, code: error.code };
    throw error;
  }
}

/** What the client said about itself in `initialize` (sealed into the session for any node to read). */
export interface ClientHello {
  capabilities: Record<string, unknown>;
  protocolVersion: string;
}

/**
 * The session id to give the client for an upstream-issued `upstreamId`: the one it presented when that
 * still names the same upstream session, or a new sealed id. Null when this node has no session key.
 */
export function sealRouteSession(
  runtime: Runtime,
  key: RuntimeKey,
  server: string,
  upstreamId: string,
  presented: OpenedSession | null,
  hello: ClientHello | null,
  now: number,
): string | null {
  if (presented?.ok && presented.upstream === upstreamId) return presented.sealed;
  if (!runtime.sessionKeys) return null;
  const previous = presented?.ok ? presented.claims : null;
  return sealSession(runtime.sessionKeys, {
    server,
    upstream: { [server]: upstreamId },
    keyId: key.id,
    clientCapabilities: hello?.capabilities ?? previous?.clientCapabilities ?? {},
    protocolVersion: hello?.protocolVersion ?? previous?.protocolVersion ?? '',
    issuedAt: now,
  });
}
