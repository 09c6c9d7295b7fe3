/**
 * How a virtual key becomes the `hash` a snapshot carries: base64url(SHA-256(value)). Part of the
 * contract, because the control plane stores this hash and every node computes it per request.
 */
import { hash } from 'node:crypto';

export function hashKey(value: string): string {
  // The one-shot `crypto.hash` (Node ≥ 21.7) skips the Hash object createHash builds: every node request pays this.
  return hash('sha256', value, 'base64url');
}
