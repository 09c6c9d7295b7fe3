/**
 * SPEC §3: a node rejects a bad signature, an unknown key id, or an older version, logs and reports why,
 * and keeps serving its last good snapshot; after a restart with the control plane away it serves the
 * last verified snapshot from disk. A real node process against a hand-driven control plane.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashKey } from '../../data-plane/snapshot/key-hash.js';
import { SNAPSHOT_FORMAT, type SnapshotDelta, type SnapshotEnvelope, type SnapshotPayload } from '../../data-plane/snapshot/schema.js';
import { generateDataKey, wrapDataKey } from '../../data-plane/snapshot/seal.js';
import { generateSigningKey, importSigningKey, signSnapshot, type SigningKey } from '../../data-plane/snapshot/sign.js';
import { startFakeControlPlane, type FakeControlPlane } from '../support/fake-control-plane.js';
import { spawnNode, type NodeProcess } from '../support/node-process.js';
import { waitFor } from '../support/wait.js';

const NODE_TOKEN = 'ghn_test_node_token_for_fake_cp';
const KEY_ONE = 'gk_firstkeyfirstkeyfirstkeyfirstkey0001';
const KEY_TWO = 'gk_secondkeysecondkeysecondkeysecond0002';

let trusted: SigningKey;
let stranger: SigningKey;
let cp: FakeControlPlane;
let node: NodeProcess;

function payload(version: number, keyValues: string[]): SnapshotPayload {
  return {
    format: SNAPSHOT_FORMAT,
    version,
    issuedAt: new Date().toISOString(),
    trustedKeys: [trusted.publicJwk],
    servers: [],
    users: [{ id: 'u1', email: 'dev@example.com' }],
    keys: keyValues.map((value, i) => ({ id: `k${i}`, name: `key ${i}`, hash: hashKey(value), userId: 'u1', servers: [], expiresAt: null, revoked: false })),
    sessionSecrets: null,
  };
}

async function envelope(p: SnapshotPayload, signer: SigningKey): Promise<SnapshotEnvelope> {
  const nodeKey = cp.nodeKey();
  if (!nodeKey) throw new Error('node not connected');
  return { snapshot: await signSnapshot(p, signer), dataKey: await wrapDataKey(generateDataKey(), nodeKey) };
}

async function status(url: string, key: string): Promise<number> {
  const res = await fetch(`${url}/mcp`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
  });
  await res.text();
  return res.status;
}

async function rejection(code: string): Promise<void> {
  await waitFor(() => cp.reports.some((r) => r.lastRejection?.code === code), { what: `a report of a ${code} rejection` });
}

beforeAll(async () => {
  trusted = await importSigningKey(await generateSigningKey('trusted-1'));
  stranger = await importSigningKey(await generateSigningKey('stranger-1'));
  cp = await startFakeControlPlane(NODE_TOKEN);
  const stateDir = mkdtempSync(join(tmpdir(), 'gatehouse-node-'));
  const trustFile = join(stateDir, 'pinned-jwks.json');
  writeFileSync(trustFile, JSON.stringify({ keys: [trusted.publicJwk] }));
  // The signing key is pinned, as an operator would (--trust-jwks).
  node = await spawnNode({ controlPlaneUrl: cp.url, nodeToken: NODE_TOKEN, stateDir, extraArgs: ['--trust-jwks', trustFile] });
  await waitFor(() => cp.connected(), { what: 'node stream' });
  cp.push(await envelope(payload(5, [KEY_ONE]), trusted));
  await waitFor(async () => (await status(node.url, KEY_ONE)) === 200, { what: 'first snapshot applied' });
}, 60_000);

afterAll(async () => {
  await node?.stop();
  await cp?.close();
});

describe('a node given a snapshot it must refuse', () => {
  it('refuses one signed by an unknown key id and keeps serving the last good one', async () => {
    cp.push(await envelope(payload(6, [KEY_TWO]), stranger));
    await rejection('unknown_key_id');
    expect(node.logs.some((l) => l.includes('snapshot refused') && l.includes('unknown_key_id'))).toBe(true);
    expect(await status(node.url, KEY_ONE)).toBe(200);
    expect(await status(node.url, KEY_TWO)).toBe(401);
  });

  it('refuses a tampered payload (bad signature)', async () => {
    const good = await envelope(payload(7, [KEY_ONE]), trusted);
    const forged = Buffer.from(JSON.stringify(payload(7, [KEY_TWO]))).toString('base64url');
    cp.push({ ...good, snapshot: { ...good.snapshot, payload: forged } });
    await rejection('bad_signature');
    expect(await status(node.url, KEY_TWO)).toBe(401);
    expect(await status(node.url, KEY_ONE)).toBe(200);
  });

  it('refuses an older version (no rollback)', async () => {
    cp.push(await envelope(payload(4, [KEY_TWO]), trusted));
    await rejection('rollback');
    // The report travels by HTTP and the log line through a pipe: wait for the line rather than race it.
    await node.waitForLog(/rollback/);
    expect(await status(node.url, KEY_TWO)).toBe(401);
    expect(await status(node.url, KEY_ONE)).toBe(200);
  });

  it('still applies the next good snapshot', async () => {
    cp.push(await envelope(payload(8, [KEY_TWO]), trusted));
    await waitFor(async () => (await status(node.url, KEY_TWO)) === 200, { what: 'snapshot 8 applied' });
    expect(await status(node.url, KEY_ONE)).toBe(401);
    await waitFor(() => cp.reports.some((r) => r.appliedVersion === 8), { what: 'report of version 8' });
  });

  it('applies a delta on top of the version it runs, and refuses one with a gap by reconnecting', async () => {
    const delta = (baseVersion: number, version: number, revokeTwo: boolean): SnapshotDelta => ({
      format: SNAPSHOT_FORMAT,
      kind: 'delta',
      baseVersion,
      version,
      issuedAt: new Date().toISOString(),
      trustedKeys: [trusted.publicJwk],
      upsertKeys: [
        { id: 'k9', name: 'back', hash: hashKey(KEY_ONE), userId: 'u1', servers: [], expiresAt: null, revoked: false },
        ...(revokeTwo ? [{ id: 'k0', name: 'key 0', hash: hashKey(KEY_TWO), userId: 'u1', servers: [], expiresAt: null, revoked: true }] : []),
      ],
      removeKeyIds: [],
      upsertUsers: [],
      removeUserIds: [],
    });
    const before = cp.connections();
    cp.pushDelta({ delta: await signSnapshot(delta(7, 9, false), trusted) });
    await rejection('gap');
    await waitFor(() => cp.connections() > before, { what: 'the node to reconnect for a whole snapshot' });
    expect(await status(node.url, KEY_ONE)).toBe(401);

    cp.pushDelta({ delta: await signSnapshot(delta(8, 9, true), trusted) });
    await waitFor(async () => (await status(node.url, KEY_ONE)) === 200, { what: 'delta 8 → 9 applied' });
    const revoked = await fetch(`${node.url}/mcp`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY_TWO}`, 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
    });
    expect(revoked.status).toBe(403);
    expect(((await revoked.json()) as { type: string }).type).toBe('key_revoked');
    await waitFor(() => cp.reports.some((r) => r.appliedVersion === 9), { what: 'report of version 9' });
  });

  it('restarted while the control plane is down, serves the last verified snapshot and its deltas from disk', async () => {
    await node.stop();
    await cp.close();
    node = await spawnNode({ controlPlaneUrl: cp.url, nodeToken: NODE_TOKEN, stateDir: node.stateDir });
    // Version 9 (snapshot 8 + delta 9): without the delta, the revoked KEY_TWO would work again.
    expect(await status(node.url, KEY_ONE)).toBe(200);
    expect(await status(node.url, KEY_TWO)).toBe(403);
    const ready = await fetch(`${node.url}/readyz`);
    expect(ready.status).toBe(200);
  });
});
