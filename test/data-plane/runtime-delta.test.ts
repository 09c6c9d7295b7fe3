/**
 * applyDelta: a Runtime for version N+1 from the Runtime of N and a delta of keys and users, leaving the
 * base untouched (requests in flight keep it) and the servers shared.
 */
import { describe, expect, it } from 'vitest';
import { applyDelta, buildRuntime, type Runtime } from '../../data-plane/config/runtime.js';
import { hashKey } from '../../data-plane/snapshot/key-hash.js';
import { SNAPSHOT_FORMAT, type KeyEntry, type SnapshotDelta, type SnapshotPayload } from '../../data-plane/snapshot/schema.js';
import { generateDataKey } from '../../data-plane/snapshot/seal.js';

const trusted = [{ kty: 'OKP' as const, crv: 'Ed25519' as const, x: 'AAAA', kid: 'k' }];

function key(id: string, value: string, userId: string, extra: Partial<KeyEntry> = {}): KeyEntry {
  return { id, name: id, hash: hashKey(value), userId, servers: [{ server: 'crm', tools: ['echo'] }], expiresAt: null, revoked: false, ...extra };
}

function base(): Runtime {
  const payload: SnapshotPayload = {
    format: SNAPSHOT_FORMAT,
    version: 10,
    issuedAt: new Date().toISOString(),
    trustedKeys: trusted,
    servers: [
      { id: 's1', name: 'crm', connectionType: 'HTTP', url: { kind: 'plain', value: 'http://127.0.0.1:1/mcp' }, stdio: null, authType: 'NONE', headers: {}, perUserHeaderKeys: [], toolsToExecute: ['*'], allowedExtraHeaders: [], toolTimeoutMs: 1000, disabled: false },
    ],
    users: [
      { id: 'u1', email: 'one@example.com' },
      { id: 'u2', email: 'two@example.com' },
    ],
    keys: [key('k1', 'gk_one', 'u1'), key('k2', 'gk_two', 'u2'), key('k3', 'gk_three', 'u1')],
    sessionSecrets: null,
  };
  return buildRuntime(payload, generateDataKey(), {}).runtime;
}

function delta(changes: Partial<SnapshotDelta>): SnapshotDelta {
  return { format: SNAPSHOT_FORMAT, kind: 'delta', baseVersion: 10, version: 11, issuedAt: new Date().toISOString(), trustedKeys: trusted, upsertKeys: [], removeKeyIds: [], upsertUsers: [], removeUserIds: [], ...changes };
}

describe('applyDelta', () => {
  it('revokes, rotates, adds and removes keys without touching the base runtime', () => {
    const before = base();
    const { runtime } = applyDelta(
      before,
      delta({
        upsertKeys: [key('k1', 'gk_one', 'u1', { revoked: true }), key('k2', 'gk_two_rotated', 'u2'), key('k4', 'gk_four', 'u2')],
        removeKeyIds: ['k3'],
      }),
    );
    expect(runtime.version).toBe(11);
    expect(runtime.keysByHash.get(hashKey('gk_one'))?.revoked).toBe(true);
    expect(runtime.keysByHash.has(hashKey('gk_two'))).toBe(false);
    expect(runtime.keysByHash.get(hashKey('gk_two_rotated'))?.id).toBe('k2');
    expect(runtime.keysByHash.get(hashKey('gk_four'))?.tools.get('crm')).toEqual(new Set(['echo']));
    expect(runtime.keysByHash.has(hashKey('gk_three'))).toBe(false);
    expect(runtime.keysByHash.size).toBe(3);
    expect(runtime.servers).toBe(before.servers);
    // The base still answers as before, for requests that started on it.
    expect(before.keysByHash.get(hashKey('gk_one'))?.revoked).toBe(false);
    expect(before.keysByHash.has(hashKey('gk_two'))).toBe(true);
    expect(before.keysByHash.size).toBe(3);
  });

  it('re-points keys at a changed user and drops the keys of a removed one', () => {
    const { runtime } = applyDelta(base(), delta({ upsertUsers: [{ id: 'u1', email: 'renamed@example.com' }], removeUserIds: ['u2'] }));
    expect(runtime.keysByHash.get(hashKey('gk_one'))?.user.email).toBe('renamed@example.com');
    expect(runtime.keysByHash.get(hashKey('gk_three'))?.user.email).toBe('renamed@example.com');
    expect(runtime.keysByHash.has(hashKey('gk_two'))).toBe(false);
    expect(runtime.keyHashById.has('k2')).toBe(false);
  });

  it('ignores a key whose user is not known, with a warning', () => {
    const { runtime, warnings } = applyDelta(base(), delta({ upsertKeys: [key('k9', 'gk_nine', 'nobody')] }));
    expect(runtime.keysByHash.has(hashKey('gk_nine'))).toBe(false);
    expect(warnings.join()).toMatch(/k9/);
  });
});
