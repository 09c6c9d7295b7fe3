/**
 * How a virtual key becomes the `hash` a snapshot carries: base64url(SHA-256(value)). Part of the
 * contract, because the control plane stores this hash and every node computes it per request.
 */
import { createHash } from 'node:crypto';

export function hashKey(value: string): string {
  return createHash('sha256').update(value, 'utf8').digest('base64url');
}
