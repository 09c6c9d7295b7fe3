/**
 * How a virtual key becomes the `hash` a snapshot carries: base64url(SHA-256(value)). Part of the
 * contract, because the control plane stores this hash and every node computes it per request.
 */
import { hash, timingSafeEqual } from 'node:crypto';

export function hashKey(value: string): string {
  // The one-shot `crypto.hash` (Node ≥ 21.7) skips the Hash object createHash builds: every node request pays this.
  return hash('sha256', value, 'base64url');
}

/**
 * Constant-time comparison of two secrets or hashes, whatever their lengths: both are hashed to 32 bytes
 * first, so neither the content nor the length of the expected value leaks through timing. Used by the
 * control plane for its tokens and by the node for its metrics token.
 */
export function constantTimeEqual(a: string, b: string): boolean {
  return timingSafeEqual(hash('sha256', a, 'buffer'), hash('sha256', b, 'buffer'));
}
