/**
 * Virtual-key authentication: `Authorization: Bearer <key>` → the key's Runtime entry and its user.
 *
 * Pure (STYLE #5): no I/O, no clock of its own (`now` is passed in), no HTTP. The HTTP layer maps the
 * returned code to a status with `errors.ts`. The key value is hashed (`snapshot/key-hash.ts`), looked up
 * in the Runtime's Map, and the stored hash is compared with the computed one in constant time, so the
 * comparison itself leaks nothing about how close a guess was.
 */
import { timingSafeEqual } from 'node:crypto';
import type { UserEntry } from '../snapshot/schema.js';
import { hashKey } from '../snapshot/key-hash.js';
import { parseBearer } from '../snapshot/rules.js';
import type { Runtime, RuntimeKey } from '../config/runtime.js';

export type AuthFailureCode = 'virtual_key_required' | 'invalid_key' | 'key_revoked' | 'key_expired';

export type AuthResult =
  | { ok: true; key: RuntimeKey; user: UserEntry; /** The presented key value, only so it can be kept out of upstream requests. */ token: string }
  | {
      ok: false;
      code: AuthFailureCode;
      /** Hash of the presented key (never the value), when one was presented: audit names a refused key by its prefix. */
      keyHash?: string;
      /** The key, when it exists but is revoked or expired. */
      keyId?: string;
    };

/** Upper bound on a presented key; anything longer is not one of ours and is not worth hashing. */
const MAX_KEY_LENGTH = 512;

export function authenticate(runtime: Runtime, authorization: string | undefined, now: number): AuthResult {
  if (authorization === undefined || authorization === '') return { ok: false, code: 'virtual_key_required' };
  const token = parseBearer(authorization);
  if (token === null) return { ok: false, code: 'virtual_key_required' };
  if (token.length > MAX_KEY_LENGTH) return { ok: false, code: 'invalid_key' };

  const hash = hashKey(token);
  const key = runtime.keysByHash.get(hash);
  if (!key) return { ok: false, code: 'invalid_key', keyHash: hash };
  // The Map lookup already matched; the constant-time check guards against any lookup that is not an
  // exact comparison (and documents that hashes are compared as secrets).
  const computed = Buffer.from(hash, 'utf8');
  const stored = Buffer.from(key.hash, 'utf8');
  if (computed.length !== stored.length || !timingSafeEqual(computed, stored)) {
    return { ok: false, code: 'invalid_key', keyHash: hash };
  }

  const refused = keyRefusal(key, now);
  if (refused !== null) return { ok: false, code: refused, keyHash: hash, keyId: key.id };
  return { ok: true, key, user: key.user, token };
}

/** Why a known key may not be used at `now` (revoked, expired), or null when it may. */
export function keyRefusal(key: RuntimeKey, now: number): 'key_revoked' | 'key_expired' | null {
  if (key.revoked) return 'key_revoked';
  if (key.expiresAtMs !== null && now >= key.expiresAtMs) return 'key_expired';
  return null;
}

/**
 * Whether a request carries more than one `Authorization` field line. It is not a list field (RFC 9110
 * §5.3, §11.6.2: one set of credentials), and node:http keeps the first line and drops the others while a
 * proxy in front may act on another: the two would disagree about who is calling, so such a request is
 * refused rather than served as whichever key came first. A scan of the raw names, no allocation.
 */
export function repeatsAuthorization(rawHeaders: readonly string[]): boolean {
  let seen = false;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string;
    if (name.length !== 13 || name.toLowerCase() !== 'authorization') continue;
    if (seen) return true;
    seen = true;
  }
  return false;
}
