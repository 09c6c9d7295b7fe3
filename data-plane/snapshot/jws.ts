/**
 * Flattened JWS (RFC 7515 §7.2.2) with EdDSA / Ed25519 (RFC 8037), signed and verified with node:crypto.
 *
 * Why not jose here: jose's web-API build encodes and decodes base64url in JavaScript, which `npm run
 * bench` measured as the largest single cost of pushing a 10,000-key snapshot (≈15 % of the control
 * plane's time, ≈10 % of the node's). Node's Buffer does the same natively. The output is plain RFC 7515,
 * so jose (or any JOSE library) verifies it; `test/snapshot/contract.test.ts` checks exactly that.
 * Keys are still generated and exported as JWKs with jose (sign.ts).
 */
import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import type { JWK } from 'jose';
import type { SignedSnapshot } from './schema.js';

export interface ProtectedHeader {
  alg: 'EdDSA';
  kid: string;
  typ?: string;
}

export function ed25519PrivateKey(jwk: JWK): KeyObject {
  return createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', x: jwk.x, d: jwk.d }, format: 'jwk' });
}

export function ed25519PublicKey(jwk: { x: string }): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: jwk.x }, format: 'jwk' });
}

export function signFlattened(payload: Buffer, header: ProtectedHeader, key: KeyObject): SignedSnapshot {
  const protectedB64 = Buffer.from(JSON.stringify(header)).toString('base64url');
  const payloadB64 = payload.toString('base64url');
  const signature = sign(null, Buffer.from(`${protectedB64}.${payloadB64}`), key).toString('base64url');
  return { protected: protectedB64, payload: payloadB64, signature };
}

/** The decoded protected header, or null when it is not a JSON object. */
export function decodeHeader(jws: SignedSnapshot): Record<string, unknown> | null {
  try {
    const header = JSON.parse(Buffer.from(jws.protected, 'base64url').toString('utf8')) as unknown;
    return typeof header === 'object' && header !== null && !Array.isArray(header) ? (header as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** Checks the signature over `protected.payload` (RFC 7515 §5.2 step 8); returns the payload bytes or null. */
export function verifyFlattened(jws: SignedSnapshot, key: KeyObject): Buffer | null {
  const signingInput = Buffer.from(`${jws.protected}.${jws.payload}`);
  const ok = verify(null, signingInput, key, Buffer.from(jws.signature, 'base64url'));
  return ok ? Buffer.from(jws.payload, 'base64url') : null;
}
