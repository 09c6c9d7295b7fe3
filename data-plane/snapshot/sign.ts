/**
 * Signing snapshots (control-plane side of the contract): Ed25519 flattened JWS (RFC 7515 §7.2.2,
 * RFC 8037), a standard format any JOSE tool can check. Keys are JWKs, generated with jose.
 */
import type { KeyObject } from 'node:crypto';
import { randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import { ed25519PrivateKey, signFlattened } from './jws.js';
import { PublicJwkSchema, type PublicJwk, type SignedSnapshot, type SnapshotDelta, type SnapshotPayload } from './schema.js';

export interface SigningKey {
  kid: string;
  privateKey: KeyObject;
  publicJwk: PublicJwk;
}

/** A private signing key as kept on the control plane's disk (or given in its environment). */
export interface StoredSigningKey {
  kid: string;
  privateJwk: JWK;
}

export async function generateSigningKey(kid: string = randomUUID()): Promise<StoredSigningKey> {
  const { privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
  return { kid, privateJwk: await exportJWK(privateKey) };
}

export async function importSigningKey(stored: StoredSigningKey): Promise<SigningKey> {
  const { d: _private, ...publicPart } = stored.privateJwk;
  const publicJwk = PublicJwkSchema.parse({ ...publicPart, kid: stored.kid });
  return { kid: stored.kid, privateKey: ed25519PrivateKey(stored.privateJwk), publicJwk };
}

/** Signs a whole snapshot or a delta (the payload says which). */
export async function signSnapshot(payload: SnapshotPayload | SnapshotDelta, key: SigningKey): Promise<SignedSnapshot> {
  return signFlattened(Buffer.from(JSON.stringify(payload)), { alg: 'EdDSA', kid: key.kid, typ: 'gatehouse-snapshot+jws' }, key.privateKey);
}
