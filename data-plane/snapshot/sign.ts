/**
 * Signing snapshots (control-plane side of the contract). Ed25519 via jose's flattened JWS, so the
 * format is a standard one any tool can check (RFC 7515 §7.2.2, RFC 8037 for EdDSA).
 */
import { FlattenedSign, exportJWK, generateKeyPair, importJWK, type JWK } from 'jose';
import { randomUUID } from 'node:crypto';
import { PublicJwkSchema, type PublicJwk, type SignedSnapshot, type SnapshotPayload } from './schema.js';

export interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
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
  const privateKey = (await importJWK({ ...stored.privateJwk, alg: 'EdDSA' }, 'EdDSA')) as CryptoKey;
  const publicJwk = PublicJwkSchema.parse({ ...publicPart, kid: stored.kid });
  return { kid: stored.kid, privateKey, publicJwk };
}

const encoder = new TextEncoder();

export async function signSnapshot(payload: SnapshotPayload, key: SigningKey): Promise<SignedSnapshot> {
  const jws = await new FlattenedSign(encoder.encode(JSON.stringify(payload)))
    .setProtectedHeader({ alg: 'EdDSA', kid: key.kid, typ: 'gatehouse-snapshot+jws' })
    .sign(key.privateKey);
  return { protected: jws.protected ?? '', payload: jws.payload, signature: jws.signature };
}
