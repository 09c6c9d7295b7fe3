/**
 * Sealing secrets inside snapshots, so that a snapshot captured off the wire or from a node's disk
 * reveals no credential.
 *
 * Each snapshot gets a fresh random 256-bit data key. Secret values are AES-256-GCM encrypted under it
 * (node:crypto, synchronous and fast on the apply path); the data key itself is wrapped for each node's
 * X25519 public key as a compact JWE (jose: ECDH-ES+A256KW / A256GCM, RFC 7518 §4.6). Only a process
 * holding the node's private key can open a value.
 */
import { CompactEncrypt, compactDecrypt, exportJWK, generateKeyPair, importJWK, type JWK } from 'jose';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { SnapshotError } from './errors.js';
import type { ValueRef } from './schema.js';

const IV_BYTES = 12;
const TAG_BYTES = 16;

export function generateDataKey(): Uint8Array {
  return new Uint8Array(randomBytes(32));
}

/** `aad` binds the value to where it belongs (e.g. `server:<id>:header:<name>`), so values cannot be swapped. */
export function sealValue(dataKey: Uint8Array, plaintext: string, aad: string): Extract<ValueRef, { kind: 'sealed' }> {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', dataKey, iv);
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return { kind: 'sealed', aad, ciphertext: Buffer.concat([iv, ciphertext, cipher.getAuthTag()]).toString('base64url') };
}

export function openValue(dataKey: Uint8Array, sealed: Extract<ValueRef, { kind: 'sealed' }>): string {
  const raw = Buffer.from(sealed.ciphertext, 'base64url');
  if (raw.length < IV_BYTES + TAG_BYTES) throw new SnapshotError('data_key', 'sealed value is truncated');
  try {
    const decipher = createDecipheriv('aes-256-gcm', dataKey, raw.subarray(0, IV_BYTES));
    decipher.setAAD(Buffer.from(sealed.aad, 'utf8'));
    decipher.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
    return Buffer.concat([decipher.update(raw.subarray(IV_BYTES, raw.length - TAG_BYTES)), decipher.final()]).toString('utf8');
  } catch {
    throw new SnapshotError('data_key', `sealed value (${sealed.aad}) does not open with this snapshot's data key`);
  }
}

/** A node's X25519 key pair, as JWKs (the private one stays on the node). */
export interface NodeKeyPair {
  publicJwk: JWK;
  privateJwk: JWK;
}

export async function generateNodeKeyPair(): Promise<NodeKeyPair> {
  const { publicKey, privateKey } = await generateKeyPair('ECDH-ES+A256KW', { crv: 'X25519', extractable: true });
  return { publicJwk: await exportJWK(publicKey), privateJwk: await exportJWK(privateKey) };
}

/** Whether `jwk` is a public (never a private) X25519 key, the only kind a data key is wrapped for. */
export function isPublicX25519Jwk(jwk: JWK): boolean {
  return jwk.kty === 'OKP' && jwk.crv === 'X25519' && typeof jwk.x === 'string' && jwk.d === undefined;
}

/** Splits a node's private X25519 JWK into the pair (the public half is the private one without `d`). */
export function nodeKeyPairFromPrivate(privateJwk: JWK): NodeKeyPair {
  const { d: _d, ...publicJwk } = privateJwk;
  return { privateJwk, publicJwk };
}

export async function wrapDataKey(dataKey: Uint8Array, nodePublicJwk: JWK): Promise<string> {
  if (!isPublicX25519Jwk(nodePublicJwk)) {
    throw new SnapshotError('data_key', 'node public key must be a public X25519 JWK');
  }
  const key = await importJWK({ kty: 'OKP', crv: 'X25519', x: nodePublicJwk.x }, 'ECDH-ES+A256KW');
  return new CompactEncrypt(dataKey).setProtectedHeader({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM' }).encrypt(key);
}

export async function unwrapDataKey(jwe: string, nodePrivateJwk: JWK): Promise<Uint8Array> {
  try {
    const key = await importJWK(nodePrivateJwk, 'ECDH-ES+A256KW');
    const { plaintext } = await compactDecrypt(jwe, key, { keyManagementAlgorithms: ['ECDH-ES+A256KW'], contentEncryptionAlgorithms: ['A256GCM'] });
    if (plaintext.length !== 32) throw new Error('wrong length');
    return plaintext;
  } catch {
    throw new SnapshotError('data_key', 'snapshot data key was not wrapped for this node');
  }
}
