/**
 * The snapshot contract's pure functions, directly (STYLE #5): sign/verify (RFC 7515 flattened JWS with
 * EdDSA), sealed values under a data key, and the data key wrapped for one node's X25519 key only.
 */
import { flattenedVerify, importJWK } from 'jose';
import { describe, expect, it } from 'vitest';
import { SnapshotError } from '../../data-plane/snapshot/errors.js';
import { SNAPSHOT_FORMAT, type SnapshotDelta, type SnapshotPayload } from '../../data-plane/snapshot/schema.js';
import { generateDataKey, generateNodeKeyPair, openValue, sealValue, unwrapDataKey, wrapDataKey } from '../../data-plane/snapshot/seal.js';
import { generateSigningKey, importSigningKey, signSnapshot } from '../../data-plane/snapshot/sign.js';
import { TrustStore, verifyDelta, verifySnapshot } from '../../data-plane/snapshot/verify.js';

async function signer(kid: string) {
  return importSigningKey(await generateSigningKey(kid));
}

function payload(version: number, trusted: SnapshotPayload['trustedKeys']): SnapshotPayload {
  return { format: SNAPSHOT_FORMAT, version, issuedAt: new Date().toISOString(), trustedKeys: trusted, servers: [], keys: [], users: [], sessionSecrets: null };
}

async function code(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'accepted';
  } catch (error) {
    return error instanceof SnapshotError ? error.code : `unexpected: ${String(error)}`;
  }
}

describe('verifySnapshot', () => {
  it('accepts a snapshot signed by a trusted key, and an equal version as a no-op', async () => {
    const a = await signer('a');
    const trust = await TrustStore.fromJwks([a.publicJwk]);
    const signed = await signSnapshot(payload(3, [a.publicJwk]), a);
    expect((await verifySnapshot(signed, trust, { currentVersion: null })).version).toBe(3);
    expect((await verifySnapshot(signed, trust, { currentVersion: 3 })).version).toBe(3);
  });

  it('refuses unknown key ids, bad signatures, older versions, other algorithms and garbage', async () => {
    const a = await signer('a');
    const b = await signer('b');
    const trust = await TrustStore.fromJwks([a.publicJwk]);
    const good = await signSnapshot(payload(5, [a.publicJwk]), a);
    expect(await code(verifySnapshot(await signSnapshot(payload(6, [a.publicJwk]), b), trust, { currentVersion: null }))).toBe('unknown_key_id');
    // b's signature presented under a's kid.
    const impostor = await signSnapshot(payload(6, [a.publicJwk]), { ...b, kid: 'a' });
    expect(await code(verifySnapshot(impostor, trust, { currentVersion: null }))).toBe('bad_signature');
    const tampered = { ...good, payload: Buffer.from(JSON.stringify(payload(99, [a.publicJwk]))).toString('base64url') };
    expect(await code(verifySnapshot(tampered, trust, { currentVersion: null }))).toBe('bad_signature');
    expect(await code(verifySnapshot(good, trust, { currentVersion: 6 }))).toBe('rollback');
    const hs = { ...good, protected: Buffer.from(JSON.stringify({ alg: 'HS256', kid: 'a' })).toString('base64url') };
    expect(await code(verifySnapshot(hs, trust, { currentVersion: null }))).toBe('bad_signature');
    expect(await code(verifySnapshot({ nope: true }, trust, { currentVersion: null }))).toBe('malformed');
    const wrongShape = await signSnapshot({ ...payload(7, [a.publicJwk]), servers: 'x' } as unknown as SnapshotPayload, a);
    expect(await code(verifySnapshot(wrongShape, trust, { currentVersion: null }))).toBe('malformed');
  });
});

describe('verifyDelta', () => {
  function delta(baseVersion: number, version: number, trusted: SnapshotPayload['trustedKeys']): SnapshotDelta {
    return { format: SNAPSHOT_FORMAT, kind: 'delta', baseVersion, version, issuedAt: new Date().toISOString(), trustedKeys: trusted, upsertKeys: [], removeKeyIds: ['k1'], upsertUsers: [], removeUserIds: [] };
  }

  it('accepts a delta on top of exactly the applied version', async () => {
    const a = await signer('a');
    const trust = await TrustStore.fromJwks([a.publicJwk]);
    const verified = await verifyDelta(await signSnapshot(delta(4, 5, [a.publicJwk]), a), trust, { currentVersion: 4 });
    expect(verified).toMatchObject({ baseVersion: 4, version: 5, removeKeyIds: ['k1'] });
  });

  it('refuses a gap, a step backwards, an unknown signer, and a whole snapshot presented as a delta', async () => {
    const a = await signer('a');
    const b = await signer('b');
    const trust = await TrustStore.fromJwks([a.publicJwk]);
    expect(await code(verifyDelta(await signSnapshot(delta(3, 5, [a.publicJwk]), a), trust, { currentVersion: 4 }))).toBe('gap');
    expect(await code(verifyDelta(await signSnapshot(delta(4, 5, [a.publicJwk]), a), trust, { currentVersion: null }))).toBe('gap');
    expect(await code(verifyDelta(await signSnapshot(delta(4, 4, [a.publicJwk]), a), trust, { currentVersion: 4 }))).toBe('rollback');
    expect(await code(verifyDelta(await signSnapshot(delta(2, 3, [a.publicJwk]), a), trust, { currentVersion: 4 }))).toBe('rollback');
    expect(await code(verifyDelta(await signSnapshot(delta(4, 5, [a.publicJwk]), b), trust, { currentVersion: 4 }))).toBe('unknown_key_id');
    expect(await code(verifyDelta(await signSnapshot(payload(5, [a.publicJwk]), a), trust, { currentVersion: 4 }))).toBe('malformed');
    // And a delta is not a whole snapshot either.
    expect(await code(verifySnapshot(await signSnapshot(delta(4, 5, [a.publicJwk]), a), trust, { currentVersion: 4 }))).toBe('malformed');
  });
});

describe('the signed snapshot is plain RFC 7515', () => {
  it('jose verifies what signSnapshot produced', async () => {
    const a = await signer('a');
    const signed = await signSnapshot(payload(9, [a.publicJwk]), a);
    const key = await importJWK({ ...a.publicJwk, alg: 'EdDSA' }, 'EdDSA');
    const { payload: bytes, protectedHeader } = await flattenedVerify(signed, key, { algorithms: ['EdDSA'] });
    expect(protectedHeader).toMatchObject({ alg: 'EdDSA', kid: 'a' });
    expect((JSON.parse(new TextDecoder().decode(bytes)) as SnapshotPayload).version).toBe(9);
  });

  it('a header with critical extensions is refused', async () => {
    const a = await signer('a');
    const trust = await TrustStore.fromJwks([a.publicJwk]);
    const signed = await signSnapshot(payload(9, [a.publicJwk]), a);
    const crit = { ...signed, protected: Buffer.from(JSON.stringify({ alg: 'EdDSA', kid: 'a', crit: ['exp'] })).toString('base64url') };
    expect(await code(verifySnapshot(crit, trust, { currentVersion: null }))).toBe('malformed');
  });
});

describe('sealed values', () => {
  it('open only with the data key and the AAD they were sealed with', () => {
    const key = generateDataKey();
    const sealed = sealValue(key, 'Bearer sk-live-secret', 'server:crm:headers:Authorization');
    expect(sealed.ciphertext).not.toContain('sk-live');
    expect(openValue(key, sealed)).toBe('Bearer sk-live-secret');
    expect(() => openValue(generateDataKey(), sealed)).toThrow(SnapshotError);
    expect(() => openValue(key, { ...sealed, aad: 'server:other:headers:Authorization' })).toThrow(SnapshotError);
  });

  it('the data key unwraps only with the node key it was wrapped for', async () => {
    const dataKey = generateDataKey();
    const node = await generateNodeKeyPair();
    const other = await generateNodeKeyPair();
    const wrapped = await wrapDataKey(dataKey, node.publicJwk);
    expect(Buffer.from(await unwrapDataKey(wrapped, node.privateJwk))).toEqual(Buffer.from(dataKey));
    expect(await code(unwrapDataKey(wrapped, other.privateJwk))).toBe('data_key');
    expect(await code(wrapDataKey(dataKey, node.privateJwk))).toBe('data_key');
  });
});
