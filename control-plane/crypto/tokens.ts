/**
 * Bearer credentials Gatehouse issues: virtual keys (`gk_`) and admin tokens (`gha_`).
 *
 * 32 random bytes in base62 behind a fixed prefix, so secret scanners can match them. Only
 * SHA-256 hashes are stored: the values carry 256 bits of entropy, so a slow password hash adds nothing,
 * and a fast one keeps the lookup on the node's hot path to one hash and one map read.
 */
import { randomBytes } from 'node:crypto';
import { hashKey } from '../../data-plane/snapshot/key-hash.js';

export const VIRTUAL_KEY_PREFIX = 'gk_';
export const ADMIN_TOKEN_PREFIX = 'gha_';
export const NODE_TOKEN_PREFIX = 'ghn_';

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

function base62(bytes: Uint8Array): string {
  let n = BigInt('0x' + Buffer.from(bytes).toString('hex'));
  let out = '';
  while (n > 0n) {
    out = ALPHABET[Number(n % 62n)] + out;
    n /= 62n;
  }
  return out.padStart(43, '0');
}

export interface IssuedToken {
  /** The plaintext, returned to the caller once and never stored. */
  value: string;
  hash: string;
  preview: string;
}

/** Same hash for every kind of token, so it is the one nodes compute for virtual keys (the snapshot contract). */
export const hashToken = hashKey;

export function previewToken(value: string): string {
  return `${value.slice(0, 6)}…${value.slice(-4)}`;
}

export function issueToken(prefix: string): IssuedToken {
  const value = prefix + base62(randomBytes(32));
  return { value, hash: hashToken(value), preview: previewToken(value) };
}

/** Constant-time comparison of two hashes (or any two strings), whatever their lengths (shared with the node). */
export { constantTimeEqual } from '../../data-plane/snapshot/key-hash.js';
