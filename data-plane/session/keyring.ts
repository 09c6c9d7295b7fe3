/**
 * The keys sealed MCP session ids are made with (`sealed-session.ts`), derived by every node from the
 * session secrets in the snapshot (`SnapshotPayload.sessionSecrets`): the current secret seals new ids, the
 * current and the previous one open them, so rotating the secret never breaks a live session.
 *
 * Derivation is HKDF-SHA256 (RFC 5869) with the secret's id in `info`: the secrets are 256 random bits
 * already, so no password-style KDF is needed (one costing milliseconds per session is what made Envoy AI
 * Gateway weaken theirs); HKDF only separates this use from any other and binds each key to its id. It runs
 * once per applied snapshot, never per request. No I/O, no state.
 */
import { createSecretKey, hkdfSync, type KeyObject } from 'node:crypto';

/** What a node holds per secret: its id (named in every sealed id) and the derived AES-256 key. */
export interface SessionKey {
  id: string;
  key: KeyObject;
}

export interface SessionKeyring {
  /** Seals new session ids. */
  current: SessionKey;
  /** Every key that opens ids (current and previous), by secret id. */
  byId: ReadonlyMap<string, SessionKey>;
}

/** A session secret as opened from the snapshot: its id and base64url of at least 32 random bytes. */
export interface SessionSecret {
  id: string;
  secret: string;
}

const MIN_SECRET_BYTES = 32;

export function deriveSessionKey(input: SessionSecret): SessionKey {
  const ikm = Buffer.from(input.secret, 'base64url');
  if (ikm.length < MIN_SECRET_BYTES) throw new Error(`session secret ${input.id} is shorter than ${MIN_SECRET_BYTES} bytes`);
  const okm = hkdfSync('sha256', ikm, Buffer.alloc(0), `gatehouse mcp-session-id v1 ${input.id}`, 32);
  return { id: input.id, key: createSecretKey(Buffer.from(okm)) };
}

export function deriveSessionKeyring(current: SessionSecret, previous: SessionSecret | null): SessionKeyring {
  const currentKey = deriveSessionKey(current);
  const byId = new Map([[currentKey.id, currentKey]]);
  if (previous && previous.id !== current.id) {
    const previousKey = deriveSessionKey(previous);
    byId.set(previousKey.id, previousKey);
  }
  return { current: currentKey, byId };
}
