/**
 * Per-node identity on the wire (issue 11), shared by both planes: a node holds an Ed25519 identity key
 * (it signs the node's requests) and an X25519 sealing key (data keys are wrapped for it). Each request
 * carries a short-lived JWT (RFC 7519, EdDSA) signed by the identity key and bound to the node id, the
 * HTTP method and the path, so a captured credential is useless for another route; the control plane
 * accepts each one once (its `jti`), so it is useless on its own route too.
 * The fingerprint an admin compares before approving covers both public keys.
 *
 * Pure functions over jose; no storage, no HTTP. The control plane decides which keys are approved.
 */
import { calculateJwkThumbprint, decodeJwt, exportJWK, generateKeyPair, importJWK, jwtVerify, SignJWT, type JWK } from 'jose';
import { createHash, randomBytes } from 'node:crypto';

/** `aud` of every node credential: never valid anywhere else. */
export const NODE_CREDENTIAL_AUDIENCE = 'gatehouse-control-plane/nodes';
/** How long a credential lives; the control plane refuses longer-lived ones. */
export const NODE_CREDENTIAL_TTL_S = 120;

export interface NodeIdentityKey {
  publicJwk: JWK;
  privateJwk: JWK;
}

export async function generateNodeIdentity(): Promise<NodeIdentityKey> {
  const { publicKey, privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
  return { publicJwk: await exportJWK(publicKey), privateJwk: await exportJWK(privateKey) };
}

export function nodeIdentityFromPrivate(privateJwk: JWK): NodeIdentityKey {
  const { d: _d, ...publicJwk } = privateJwk;
  return { privateJwk, publicJwk };
}

/** Whether `jwk` is a public (never a private) Ed25519 key. */
export function isPublicEd25519Jwk(jwk: JWK): boolean {
  return jwk.kty === 'OKP' && jwk.crv === 'Ed25519' && typeof jwk.x === 'string' && jwk.d === undefined;
}

/** Only the members RFC 7638 hashes: what the control plane stores and compares. */
export function canonicalPublicJwk(jwk: JWK): JWK {
  return { kty: jwk.kty, crv: jwk.crv, x: jwk.x };
}

/** What an admin compares before approving: SHA-256 over both keys' RFC 7638 thumbprints, hex in groups. */
export async function nodeFingerprint(identityJwk: JWK, sealingJwk: JWK): Promise<string> {
  const material = `${await calculateJwkThumbprint(canonicalPublicJwk(identityJwk))}.${await calculateJwkThumbprint(canonicalPublicJwk(sealingJwk))}`;
  const hex = createHash('sha256').update(material).digest('hex').slice(0, 32);
  return hex.match(/.{4}/g)!.join(':');
}

export interface CredentialScope {
  nodeId: string;
  method: string;
  /** The request path, without the query. */
  path: string;
}

/** A fresh credential for one request. */
export async function signNodeCredential(privateJwk: JWK, scope: CredentialScope, now: number = Date.now()): Promise<string> {
  const key = await importJWK(privateJwk, 'EdDSA');
  const iat = Math.floor(now / 1000);
  return new SignJWT({ htm: scope.method.toUpperCase(), htu: scope.path })
    .setProtectedHeader({ alg: 'EdDSA', typ: 'gatehouse-node+jwt' })
    .setSubject(scope.nodeId)
    .setAudience(NODE_CREDENTIAL_AUDIENCE)
    .setIssuedAt(iat)
    .setExpirationTime(iat + NODE_CREDENTIAL_TTL_S)
    .setJti(randomBytes(12).toString('base64url'))
    .sign(key);
}

/** The node id a credential claims, before it is verified (to find the key to verify it with). */
export function credentialSubject(token: string): string | null {
  try {
    const sub = decodeJwt(token).sub;
    return typeof sub === 'string' ? sub : null;
  } catch {
    return null;
  }
}

/** Seconds of clock difference between node and control plane that verification tolerates. */
export const NODE_CREDENTIAL_CLOCK_TOLERANCE_S = 60;

/** A credential that verified: its id and until when (epoch seconds, tolerance included) it could verify. */
export interface VerifiedNodeCredential {
  jti: string;
  usableUntil: number;
}

/**
 * Verifies signature, audience, lifetime and scope; null for any failure (callers answer 401). Single use is
 * the caller's to enforce (it holds the storage): a credential is good for one request, so the control plane
 * remembers `jti` until `usableUntil`.
 */
export async function verifyNodeCredential(token: string, identityJwk: JWK, scope: CredentialScope, now: number = Date.now()): Promise<VerifiedNodeCredential | null> {
  try {
    const key = await importJWK(canonicalPublicJwk(identityJwk), 'EdDSA');
    const { payload } = await jwtVerify(token, key, {
      algorithms: ['EdDSA'],
      audience: NODE_CREDENTIAL_AUDIENCE,
      subject: scope.nodeId,
      typ: 'gatehouse-node+jwt',
      currentDate: new Date(now),
      clockTolerance: NODE_CREDENTIAL_CLOCK_TOLERANCE_S,
      requiredClaims: ['iat', 'exp', 'jti'],
    });
    if (typeof payload.exp !== 'number' || typeof payload.iat !== 'number' || payload.exp - payload.iat > NODE_CREDENTIAL_TTL_S) return null;
    if (typeof payload.jti !== 'string' || payload.jti.length === 0 || payload.jti.length > 128) return null;
    if (payload.htm !== scope.method.toUpperCase() || payload.htu !== scope.path) return null;
    return { jti: payload.jti, usableUntil: payload.exp + NODE_CREDENTIAL_CLOCK_TOLERANCE_S };
  } catch {
    return null;
  }
}
