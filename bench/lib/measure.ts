/**
 * The bench's Gatehouse measurements that are not load runs: a bulk configuration change timed from the
 * control plane's commit to the node serving it (plus the node's memory afterwards), and revocations
 * timed from the mutation's response to the node's first `403 key_revoked`. Also the sanity check every
 * load run is framed by. Times are taken from the outside, in this process, never by the measured code.
 */
import type { ControlPlaneProcess, NodeProbe, NodeProcess } from './gatehouse.js';
import type { SeedRequest, SeedResult } from './ipc.js';
import { postOnce } from './load.js';
import { monotonicUs, readMemory, sleep } from './procs.js';
import type { TimeWindow } from './profile.js';
import type { RevocationMeasure, SnapshotMeasure } from './report.js';
import { percentile } from './stats.js';

const epochNow = (): number => performance.timeOrigin + performance.now();

/** The answer must be the upstream's fixed result, not an error dressed as a 200 (e.g. `isError: true`). */
export async function sanityCheck(label: string, url: string, body: string, authorization: string | null): Promise<void> {
  const { status, text } = await postOnce(url, body, authorization);
  let ok = false;
  try {
    const parsed = JSON.parse(text) as { result?: { isError?: boolean; content?: Array<{ text?: string }> } };
    ok = status === 200 && parsed.result?.isError !== true && parsed.result?.content?.[0]?.text === 'ok';
  } catch {
    ok = false;
  }
  if (!ok) throw new Error(`${label}: tools/call did not return the upstream's result (HTTP ${status}): ${text.slice(0, 500)}`);
}

export interface SnapshotRun {
  measure: SnapshotMeasure;
  seed: SeedResult;
  /** Monotonic spans for cutting CPU profiles: the node's apply, the control plane's compile + publish. */
  nodeWindow: TimeWindow;
  controlPlaneWindow: TimeWindow;
}

/**
 * Seeds through the control plane (one transaction, one publish) and times publish → node serving by
 * polling the node's /readyz. Memory is read a second after, once the apply's garbage has had a chance
 * to go: what stays is what the node needs to serve that configuration.
 */
export async function measureSnapshot(cp: ControlPlaneProcess, node: NodeProcess, probe: NodeProbe, request: Omit<SeedRequest, 'type' | 'id'>): Promise<SnapshotRun> {
  const before = (await probe.version()) ?? 0;
  const sentUs = monotonicUs();
  // Watch from before the seed starts: a small snapshot can be served before the IPC answer arrives.
  let stop = false;
  let seen: { epoch: number; us: number } | null = null;
  const watcher = (async (): Promise<void> => {
    while (!stop) {
      const v = await probe.version().catch(() => null);
      if (v !== null && v > before) {
        seen = { epoch: epochNow(), us: monotonicUs() };
        return;
      }
      await sleep(5);
    }
  })();
  let seed: SeedResult;
  try {
    seed = await cp.seed(request);
    const deadline = Date.now() + 120_000;
    while (seen === null && Date.now() < deadline) await sleep(5);
  } finally {
    stop = true;
    await watcher;
  }
  const at = seen as { epoch: number; us: number } | null;
  if (at === null) throw new Error(`node never served the seeded snapshot (version ${seed.version})\n${node.proc.tail()}`);
  const served = await probe.version();
  if (served === null || served < seed.version) throw new Error(`node serves version ${served}, expected ${seed.version}`);
  await sleep(1_000);
  const memory = readMemory(node.proc.pid);
  return {
    seed,
    // The node is idle until the snapshot arrives (idle samples are not counted), so from the request on.
    nodeWindow: { startUs: sentUs, endUs: at.us },
    controlPlaneWindow: { startUs: seed.committedAtUs, endUs: seed.publishedAtUs },
    measure: {
      keys: seed.totals.keys,
      servers: seed.totals.servers,
      users: seed.totals.users,
      insertMs: seed.insertMs,
      publishMs: seed.publishMs,
      applyMs: at.epoch - seed.publishedAt,
      endToEndMs: at.epoch - (seed.publishedAt - seed.publishMs),
      rssMb: memory?.rssMb ?? null,
      peakRssMb: memory?.peakMb ?? null,
    },
  };
}

const REVOKE = `mutation($input: RevokeVirtualKeyInput!) { revokeVirtualKey(input: $input) { virtualKey { id revoked } errors { code message } } }`;

/**
 * Revokes each key through GraphQL, one at a time, and times mutation response → first `403 key_revoked`
 * from the node (probing every 2 ms on a kept-alive connection). Each key is checked to work
 * right before, so a sample never measures a key the node already refused.
 */
export async function measureRevocations(
  cp: ControlPlaneProcess,
  probe: NodeProbe,
  keys: SeedResult['revealed'],
  context: { keys: number; servers: number },
): Promise<{ measure: RevocationMeasure; window: TimeWindow }> {
  const samples: number[] = [];
  const startUs = monotonicUs();
  for (const { id, key } of keys) {
    const before = await probe.ping(key);
    if (before.status !== 200) throw new Error(`key ${id} refused before its revocation: HTTP ${before.status} ${before.type ?? ''}`);
    const r = await cp.gql<{ revokeVirtualKey: { errors: Array<{ message: string }> } }>(REVOKE, { input: { id } });
    const answered = performance.now();
    if (r.revokeVirtualKey.errors.length > 0) throw new Error(`revokeVirtualKey: ${JSON.stringify(r.revokeVirtualKey.errors)}`);
    for (;;) {
      const p = await probe.ping(key);
      if (p.status === 403 && p.type === 'key_revoked') {
        samples.push(performance.now() - answered);
        break;
      }
      if (p.status !== 200) throw new Error(`while waiting for key_revoked the node answered HTTP ${p.status} ${p.type ?? ''}`);
      if (performance.now() - answered > 60_000) throw new Error('revocation not enforced within 60 s');
      // Every 2 ms: fine enough against a 200 ms target, light enough not to slow the node being timed.
      await sleep(2);
    }
    // A short pause so each sample is one revocation, not the tail of the previous one's publish.
    await sleep(25);
  }
  return {
    window: { startUs, endUs: monotonicUs() },
    measure: {
      keys: context.keys,
      servers: context.servers,
      samplesMs: samples,
      p50Ms: percentile(samples, 50),
      p99Ms: percentile(samples, 99),
      maxMs: Math.max(...samples),
    },
  };
}
