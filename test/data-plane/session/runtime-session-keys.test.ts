/**
 * Session keys in the node's Runtime: built from the snapshot's sealed session secrets (so two nodes given
 * the same snapshot open each other's session ids), absent when the snapshot carries none, refused when a
 * secret is sealed for another slot, and carried over by key/user deltas (which never hold sealed values).
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { applyDelta, buildRuntime } from '../../../data-plane/config/runtime.js';
import { openSession, sealSession } from '../../../data-plane/session/sealed-session.js';
import { SnapshotError } from '../../../data-plane/snapshot/errors.js';
import { SNAPSHOT_FORMAT } from '../../../data-plane/snapshot/schema.js';
import { sealValue } from '../../../data-plane/snapshot/seal.js';
import { buildSnapshot } from '../helpers.js';

const secret = (): string => randomBytes(32).toString('base64url');
const config = { servers: [{ name: 'crm', url: 'http://127.0.0.1:1/mcp' }], keys: [{ name: 'dev', servers: [{ server: 'crm', tools: ['*'] }] }] };
const claims = { server: 'crm', upstream: { crm: 'u1' }, keyId: 'key_dev', clientCapabilities: {}, protocolVersion: '2025-11-25', issuedAt: Date.now() };
const dev = { key: { id: 'key_dev', revoked: false, expiresAtMs: null }, server: 'crm' };

describe('Runtime session keys', () => {
  it('two nodes applying the same snapshot open each other\'s session ids; the previous secret still opens', async () => {
    const old = { id: 'old', secret: secret() };
    const snap = await buildSnapshot({ ...config, sessionSecrets: { current: { id: 'new', secret: secret() }, previous: old } });
    const nodeA = buildRuntime(snap.payload, snap.dataKey, {}).runtime;
    const nodeB = buildRuntime(snap.payload, snap.dataKey, {}).runtime;
    if (!nodeA.sessionKeys || !nodeB.sessionKeys) throw new Error('no session keys');
    const id = sealSession(nodeA.sessionKeys, claims);
    expect(id.startsWith('v1.new.')).toBe(true);
    expect(openSession(nodeB.sessionKeys, id, dev)).toEqual(claims);

    const before = await buildSnapshot({ ...config, sessionSecrets: { current: old } });
    const oldNode = buildRuntime(before.payload, before.dataKey, {}).runtime;
    if (!oldNode.sessionKeys) throw new Error('no session keys');
    expect(openSession(nodeB.sessionKeys, sealSession(oldNode.sessionKeys, claims), dev).upstream).toEqual({ crm: 'u1' });
  });

  it('is null when the snapshot carries no session secret (a control plane from before issue 9)', async () => {
    const snap = await buildSnapshot(config);
    expect(snap.payload.sessionSecrets).toBeNull();
    expect(buildRuntime(snap.payload, snap.dataKey, {}).runtime.sessionKeys).toBeNull();
  });

  it('refuses a snapshot whose session secret was sealed for another slot', async () => {
    const snap = await buildSnapshot({ ...config, sessionSecrets: { current: { id: 's1', secret: secret() } } });
    const swapped = {
      ...snap.payload,
      sessionSecrets: { current: { id: 's1', secret: sealValue(snap.dataKey, secret(), 'server:srv_crm:header:authorization') }, previous: null },
    };
    expect(() => buildRuntime(swapped, snap.dataKey, {})).toThrow(SnapshotError);
  });

  it('keeps the session keys across a delta', async () => {
    const snap = await buildSnapshot({ ...config, sessionSecrets: { current: { id: 's1', secret: secret() } } });
    const base = buildRuntime(snap.payload, snap.dataKey, {}).runtime;
    const { runtime } = applyDelta(base, {
      format: SNAPSHOT_FORMAT,
      kind: 'delta',
      baseVersion: base.version,
      version: base.version + 1,
      issuedAt: new Date().toISOString(),
      trustedKeys: snap.payload.trustedKeys,
      upsertKeys: [],
      removeKeyIds: ['key_dev'],
      upsertUsers: [],
      removeUserIds: [],
    });
    expect(runtime.sessionKeys).toBe(base.sessionKeys);
  });
});
