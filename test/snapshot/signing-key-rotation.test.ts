/**
 * SPEC §3 "key rotation without downtime": add a signing key, activate it, retire the old one, with the
 * control plane restarted between steps and a node pinned to the original key serving throughout.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { activateSigningKey, addSigningKey, retireSigningKey } from '../../control-plane/signing-keys.js';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { postMcp } from '../support/mcp-http.js';
import { spawnNode, type NodeProcess } from '../support/node-process.js';
import { waitFor } from '../support/wait.js';

const ADMIN = 'gha_rotation_test_admin_token_0123456789';
const dataDir = mkdtempSync(join(tmpdir(), 'gatehouse-rotation-'));
let cp: TestControlPlane;
let port: number;
let node: NodeProcess;
let userId: string;
let originalKid: string;

let lastKey = '';

async function restartControlPlane(): Promise<void> {
  await cp.close();
  // With the control plane away, the node keeps serving what it has.
  expect((await postMcp(node.url, lastKey, { id: 1, method: 'ping' })).status).toBe(200);
  cp = await startTestControlPlane({ dataDir, port, adminToken: ADMIN });
}

/** Creates a key through the current control plane and waits for the node to serve it. */
async function keyServed(): Promise<void> {
  const r = await cp.gql<{ createVirtualKey: { key: string } }>(
    `mutation($u: ID!) { createVirtualKey(input: { userId: $u, name: "k", servers: [], allowNoServers: true }) { key errors { code } } }`,
    { u: userId },
  );
  lastKey = r.createVirtualKey.key;
  await waitFor(async () => (await postMcp(node.url, lastKey, { id: 1, method: 'ping' })).status === 200, { timeoutMs: 15_000, what: 'new key served' });
}

function nodeTrust(): string[] {
  return (JSON.parse(readFileSync(join(node.stateDir, 'trust.json'), 'utf8')) as { kid: string }[]).map((k) => k.kid).sort();
}

beforeAll(async () => {
  cp = await startTestControlPlane({ dataDir, adminToken: ADMIN });
  port = Number(new URL(cp.url).port);
  originalKid = cp.cp.trustedKeys[0]!.kid;
  const stateDir = mkdtempSync(join(tmpdir(), 'gatehouse-node-'));
  const pinned = join(stateDir, 'pinned.json');
  writeFileSync(pinned, JSON.stringify({ keys: cp.cp.trustedKeys }));
  node = await spawnNode({ controlPlaneUrl: cp.url, nodeToken: cp.cp.nodeToken, stateDir, extraArgs: ['--trust-jwks', pinned] });
  const user = await cp.gql<{ createUser: { user: { id: string } } }>(`mutation { createUser(input: { email: "rot@example.com" }) { user { id } } }`);
  userId = user.createUser.user.id;
  await keyServed();
}, 60_000);

afterAll(async () => {
  await node?.stop();
  await cp?.close();
});

describe('rotating the snapshot signing key', () => {
  it('add: nodes learn the new key from snapshots signed by the old one', async () => {
    const newKid = await addSigningKey(dataDir);
    await restartControlPlane();
    await waitFor(() => nodeTrust().length === 2, { timeoutMs: 15_000, what: 'node to trust both keys' });
    expect(nodeTrust()).toEqual([originalKid, newKid].sort());
    await keyServed();

    activateSigningKey(dataDir, newKid);
    await restartControlPlane();
    await keyServed();
    expect(node.logs.some((l) => l.includes('snapshot refused'))).toBe(false);

    retireSigningKey(dataDir, originalKid);
    await restartControlPlane();
    await keyServed();
    await waitFor(() => nodeTrust().length === 1, { what: 'node to drop the retired key' });
    expect(nodeTrust()).toEqual([newKid]);
    expect(node.logs.some((l) => l.includes('snapshot refused'))).toBe(false);
  }, 90_000);

  it('refuses to retire the active key', () => {
    const active = JSON.parse(readFileSync(join(dataDir, 'signing-keys.json'), 'utf8')) as { active: string };
    expect(() => retireSigningKey(dataDir, active.active)).toThrow(/active signing key/);
  });
});
