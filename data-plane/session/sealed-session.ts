/**
 * Sealed MCP session ids (issue 9 item 2): the `Mcp-Session-Id` a client gets from a node is the session's
 * state — the upstream session id(s), the route's server, the virtual key's id, the client's capabilities
 * and protocol version, and when it was issued — encrypted and authenticated with AES-256-GCM under a key
 * every node derives from the snapshot (`keyring.ts`). Any node can open it, so sessions need no sticky
 * routing and no shared store; a node that only sees later requests still learns the client's capabilities.
 *
 * Format: `v1.<secret id>.<base64url(iv ‖ ciphertext ‖ tag)>`, visible ASCII only (2025-11-25 transports
 * §session management). The AAD binds the format version and the secret id.
 *
 * `openSession` refuses (with a `SessionError` code) an id that is malformed, sealed under a secret this
 * node no longer holds, tampered with, presented with another virtual key or on another route, presented
 * with a key that is revoked or expired, or older than the maximum age. Callers answer every refusal the
 * same way, 404 (the transport's "session not found", so the client starts a new session), and audit the
 * code. It does no I/O and keeps no state.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { z } from 'zod';
import type { SessionKeyring } from './keyring.js';

const VERSION = 'v1';
const IV_BYTES = 12;
const TAG_BYTES = 16;
/** Sealed ids longer than this are refused before any work (a header is not a place for megabytes). */
const MAX_ID_LENGTH = 8192;
/** How long a session id stays usable by default; the upstream's own session usually ends sooner. */
export const DEFAULT_MAX_SESSION_AGE_MS = 24 * 60 * 60 * 1000;
/** Tolerated clock difference between the node that sealed an id and the one opening it. */
const CLOCK_SKEW_MS = 60_000;

export const SessionClaimsSchema = z.object({
  /** The route's server for `/mcp/{server}`, or null for the aggregated `/mcp`. */
  server: z.string().nullable(),
  /** Upstream `Mcp-Session-Id` by server name (one entry on `/mcp/{server}`; none when the upstream issued none). */
  upstream: z.record(z.string(), z.string()),
  /** Id of the virtual key the session was opened with. */
  keyId: z.string(),
  /** The client's `capabilities` from `initialize`. */
  clientCapabilities: z.record(z.string(), z.unknown()),
  /** The protocol version negotiated at `initialize`. */
  protocolVersion: z.string(),
  /** Epoch milliseconds. */
  issuedAt: z.number().int().nonnegative(),
});
export type SessionClaims = z.infer<typeof SessionClaimsSchema>;

export type SessionRefusal =
  | 'malformed'
  | 'unknown_secret'
  | 'tampered'
  | 'other_key'
  | 'key_not_active'
  | 'other_server'
  | 'expired';

export class SessionError extends Error {
  constructor(
    readonly code: SessionRefusal,
    message: string,
  ) {
    super(message);
    this.name = 'SessionError';
  }
}

/** The virtual key presenting the id, as the node knows it now (a `RuntimeKey` fits). */
export interface PresentingKey {
  id: string;
  revoked: boolean;
  /** Epoch milliseconds, or null for no expiry. */
  expiresAtMs: number | null;
}

export interface OpenOptions {
  key: PresentingKey;
  /** The route the id is presented on: the server of `/mcp/{server}`, or null for `/mcp`. */
  server: string | null;
  now?: number;
  maxAgeMs?: number;
}

function aad(secretId: string): Buffer {
  return Buffer.from(`gatehouse-session:${VERSION}:${secretId}`, 'utf8');
}

/** Seals `claims` under the keyring's current key. Costs one AES-GCM encryption of a few hundred bytes. */
export function sealSession(keyring: SessionKeyring, claims: SessionClaims): string {
  const { id, key } = keyring.current;
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(aad(id));
  const body = Buffer.concat([cipher.update(JSON.stringify(claims), 'utf8'), cipher.final()]);
  return `${VERSION}.${id}.${Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64url')}`;
}

const ID_PATTERN = /^v1\.([A-Za-z0-9_-]{1,64})\.([A-Za-z0-9_-]+)$/;

/** Opens and checks a sealed id; throws `SessionError` for every reason to refuse it. */
export function openSession(keyring: SessionKeyring, sessionId: string, options: OpenOptions): SessionClaims {
  if (sessionId.length > MAX_ID_LENGTH) throw new SessionError('malformed', 'session id is too long');
  const match = ID_PATTERN.exec(sessionId);
  if (!match) throw new SessionError('malformed', 'session id is not a sealed Gatehouse session id');
  const secretId = match[1] ?? '';
  const key = keyring.byId.get(secretId);
  if (!key) throw new SessionError('unknown_secret', 'session id was sealed under a secret this node no longer holds');
  const raw = Buffer.from(match[2] ?? '', 'base64url');
  if (raw.length <= IV_BYTES + TAG_BYTES) throw new SessionError('malformed', 'session id is truncated');

  let plaintext: string;
  try {
    const decipher = createDecipheriv('aes-256-gcm', key.key, raw.subarray(0, IV_BYTES));
    decipher.setAAD(aad(secretId));
    decipher.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
    plaintext = Buffer.concat([decipher.update(raw.subarray(IV_BYTES, raw.length - TAG_BYTES)), decipher.final()]).toString('utf8');
  } catch {
    throw new SessionError('tampered', 'session id failed authentication');
  }
  let claims: SessionClaims;
  try {
    claims = SessionClaimsSchema.parse(JSON.parse(plaintext));
  } catch {
    // Authentic but unreadable: only a node with another claims format could have sealed it.
    throw new SessionError('malformed', 'session id holds claims this node cannot read');
  }

  const now = options.now ?? Date.now();
  if (claims.keyId !== options.key.id) throw new SessionError('other_key', 'session id belongs to another virtual key');
  if (options.key.revoked || (options.key.expiresAtMs !== null && options.key.expiresAtMs <= now)) {
    throw new SessionError('key_not_active', 'the virtual key of this session is revoked or expired');
  }
  if (claims.server !== options.server) throw new SessionError('other_server', 'session id belongs to another route');
  const maxAgeMs = options.maxAgeMs ?? DEFAULT_MAX_SESSION_AGE_MS;
  if (now - claims.issuedAt > maxAgeMs || claims.issuedAt - now > CLOCK_SKEW_MS) {
    throw new SessionError('expired', 'session id is older than the maximum session age');
  }
  return claims;
}
