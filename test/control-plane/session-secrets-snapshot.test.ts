/**
 * Session secrets from the control plane to nodes: a real control plane generates the secret at start,
 * every whole snapshot carries it sealed for the node, it stays the same across config versions (so a
 * session id sealed by one node opens on another, later), and `rotateSessionSecret` publishes a new
 * current secret while the previous one keeps opening ids sealed before. The API and the logs never show a
 * secret.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRuntime, type Runtime } from '../../data-plane/config/runtime.js';
import { openSession, sealSession } from '../../data-plane/session/sealed-session.js';
import type { SnapshotEnvelope, SnapshotPayload } from '../../data-plane/snapshot/schema.js';
import { generateNodeKeyPair, openValue, unwrapDataKey } from '../../data-plane/snapshot/seal.js';
import { TrustStore, verifySnapshot } from '../../data-plane/snapshot/verify.js';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { waitFor } from '../support/wait.js';

interface Received {
  payload: SnapshotPayload;
  runtime: Runtime;
  /** The secrets as opened from this snapshot (for checking they never leak). */
  plaintexts: string[];
}

let cp: TestControlPlane;
const whole: Received[] = [];
let deltas = 0;

beforeAll(async () => {
  cp = await startTestControlPlane();
  const node = await generateNodeKeyPair();
  const trust = await TrustStore.fromJwks(cp.cp.trustedKeys);
  const receive = async (envelope: SnapshotEnvelope): Promise<void> => {
    const payload = await verifySnapshot(envelope.snapshot, trust, { currentVersion: null });
    const dataKey = await unwrapDataKey(envelope.dataKey, node.privateJwk);
    const secrets = payload.sessionSecrets;
    const plaintexts = secrets ? [secrets.current, ...(secrets.previous ? [secrets.previous] : [])].map((s) => openValue(dataKey, s.secret)) : [];
    whole.push({ payload, runtime: buildRuntime(payload, dataKey, {}).runtime, plaintexts });
  };
  // The publisher writes SSE frames (`event: snapshot|delta`, one `data:` line each), possibly several per write.
  let chain = Promise.resolve();
  await cp.cp.publisher.subscribe({
    nodeId: 'session-secrets-test',
    sealingJwk: node.publicJwk,
    appliedVersion: null,
    write: (chunks) => {
      for (const frame of Buffer.concat(chunks).toString('utf8').split('\n\n')) {
        const event = /^event: (\w+)$/m.exec(frame)?.[1];
        const data = /^data: (.*)$/m.exec(frame)?.[1];
        if (event === 'delta') deltas++;
        else if (event === 'snapshot' && data) {
          const envelope = JSON.parse(data) as SnapshotEnvelope;
          chain = chain.then(() => receive(envelope));
        }
      }
    },
    close: () => undefined,
  });
  await waitFor(() => whole.length === 1);
});

afterAll(async () => {
  await cp?.close();
});

const claims = (issuedAt: number) => ({ server: 'crm', upstream: { crm: 'up-1' }, keyId: 'k1', clientCapabilities: {}, protocolVersion: '2025-11-25', issuedAt });
const k1 = { key: { id: 'k1', revoked: false, expiresAtMs: null }, server: 'crm' };

function keysOf(received: Received | undefined) {
  if (!received?.runtime.sessionKeys) throw new Error('no session keys in the snapshot');
  return received.runtime.sessionKeys;
}

describe('session secrets in snapshots', () => {
  it('the first snapshot already carries a current secret, sealed for the node', async () => {
    const first = whole[0];
    expect(first?.payload.sessionSecrets?.current.id).toMatch(/^[A-Za-z0-9_-]{12}$/);
    expect(first?.payload.sessionSecrets?.previous).toBeNull();
    const info = await cp.gql<{ sessionSecrets: { current: { id: string }; previous: null } }>('{ sessionSecrets { current { id createdAt } previous { id } } }');
    expect(info.sessionSecrets.current.id).toBe(first?.payload.sessionSecrets?.current.id);
  });

  it('stays the same across config versions: an id sealed under version N opens under a later whole snapshot', async () => {
    const id = sealSession(keysOf(whole[0]), claims(Date.now()));
    await cp.gql('mutation { createUser(input: { email: "s@example.com" }) { errors { code } } }');
    await waitFor(() => deltas === 1); // keys and users: a delta, no sealed value
    await cp.gql('mutation($input: CreateMcpServerInput!) { createMcpServer(input: $input) { errors { code } } }', {
      input: { name: 'crm', connectionType: 'HTTP', connectionString: 'http://127.0.0.1:1/mcp' },
    });
    await waitFor(() => whole.length === 2); // servers changed: a whole snapshot, under a new data key
    expect(whole[1]?.payload.sessionSecrets?.current.id).toBe(whole[0]?.payload.sessionSecrets?.current.id);
    expect(whole[1]?.payload.sessionSecrets?.current.secret.ciphertext).not.toBe(whole[0]?.payload.sessionSecrets?.current.secret.ciphertext);
    expect(openSession(keysOf(whole[1]), id, k1).upstream).toEqual({ crm: 'up-1' });
  });

  it('rotation publishes a new current secret; ids sealed before still open, and new ones use the new secret', async () => {
    const before = sealSession(keysOf(whole[1]), claims(Date.now()));
    const rotated = await cp.gql<{ rotateSessionSecret: { sessionSecrets: { current: { id: string }; previous: { id: string } } } }>(
      'mutation { rotateSessionSecret { sessionSecrets { current { id } previous { id } } errors { code } } }',
    );
    await waitFor(() => whole.length === 3);
    const latest = whole[2];
    expect(latest?.payload.sessionSecrets?.current.id).toBe(rotated.rotateSessionSecret.sessionSecrets.current.id);
    expect(latest?.payload.sessionSecrets?.previous?.id).toBe(whole[1]?.payload.sessionSecrets?.current.id);
    expect(openSession(keysOf(latest), before, k1).keyId).toBe('k1');
    expect(sealSession(keysOf(latest), claims(Date.now())).startsWith(`v1.${rotated.rotateSessionSecret.sessionSecrets.current.id}.`)).toBe(true);
  });

  it('never shows a secret in an API response or a log line', () => {
    const secrets = whole.flatMap((w) => w.plaintexts);
    expect(secrets.length).toBeGreaterThanOrEqual(4);
    for (const secret of secrets) {
      for (const response of cp.responses) expect(response).not.toContain(secret);
      expect(cp.logs.text()).not.toContain(secret);
    }
  });
});
