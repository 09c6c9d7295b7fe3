/**
 * `npm run bench:scale`: snapshot distribution at scale (issue 11), against SPEC §8's targets:
 *   - per size (1k / 10k / 100k keys, 500 servers): whole snapshot and one-key delta sizes; publish → node
 *     serving and node RSS; one-key changes timed from the mutation's commit to the node refusing the key,
 *     and the control plane's share of that (first `changed()` → delta bytes written to the streams);
 *   - fan-out: N (default 1,000) simulated nodes with real streams and verifying clients
 *     (bench/procs/fanout.ts): a one-key change, from commit until the last client has verified it.
 * Starts the real control plane (bench/procs/control-plane.ts) and one real node, like `npm run bench`;
 * prints a table, writes bench/results/scale.json, exits 0 whatever the verdicts (1 on harness failure).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { NODE_ID_HEADER, NODE_KEY_HEADER, NODE_SNAPSHOT_PATH } from '../data-plane/snapshot/stream-protocol.js';
import { generateNodeKeyPair } from '../data-plane/snapshot/seal.js';
import { ControlPlaneProcess, NodeProbe, startGatehouseNode, type NodeProcess } from './lib/gatehouse.js';
import { measureRevocations, measureSnapshot } from './lib/measure.js';
import { cleanupSync, ROOT, startTs, stopAll, type Tracked } from './lib/procs.js';
import { percentile } from './lib/stats.js';

const USAGE = `usage: npm run bench:scale -- [options]
  --sizes LIST        key counts to measure at (default 1000,10000,100000)
  --servers N         servers (default 500)
  --revocations N     one-key changes timed per size (default 10)
  --nodes N           simulated nodes for the fan-out (default 1000; 0 skips it)
  --out FILE          results file (default bench/results/scale.json)`;

const { values: args } = parseArgs({
  options: {
    sizes: { type: 'string', default: '1000,10000,100000' },
    servers: { type: 'string', default: '500' },
    revocations: { type: 'string', default: '10' },
    nodes: { type: 'string', default: '1000' },
    out: { type: 'string', default: join(ROOT, 'bench/results/scale.json') },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (args.help) {
  process.stdout.write(USAGE + '\n');
  process.exit(0);
}
const sizes = args.sizes.split(',').map(Number);
const servers = Number(args.servers);
const revocations = Number(args.revocations);
const simulated = Number(args.nodes);
if (sizes.some((n) => !Number.isInteger(n) || n < 2) || [servers, revocations, simulated].some((n) => !Number.isInteger(n) || n < 0)) {
  process.stderr.write(`bench:scale: bad option\n${USAGE}\n`);
  process.exit(2);
}

const started = performance.now();
const log = (m: string): void => void process.stderr.write(`[scale ${((performance.now() - started) / 1000).toFixed(1)}s] ${m}\n`);
const KEYS_PER_USER = 10;

interface SizeResult {
  keys: number;
  servers: number;
  wholeSnapshotBytes: number;
  deltaBytes: number | null;
  publishMs: number;
  applyMs: number;
  rssMb: number | null;
  peakRssMb: number | null;
  commitToRefusalMs: { p50: number; p99: number; max: number; samples: number[] };
  controlPlaneShareMs: { p50: number; p99: number; max: number; samples: number[] };
}

interface FanoutResult {
  nodes: number;
  keys: number;
  firstVerifiedMs: number;
  lastVerifiedMs: number;
  chainErrors: number;
  controlPlaneShareMs: number;
}

const stat = (samples: number[]) => ({ p50: percentile(samples, 50), p99: percentile(samples, 99), max: Math.max(...samples), samples });

async function wholeSnapshotBytes(cp: ControlPlaneProcess): Promise<number> {
  const key = Buffer.from(JSON.stringify((await generateNodeKeyPair()).publicJwk)).toString('base64url');
  const res = await fetch(`${cp.url}${NODE_SNAPSHOT_PATH}`, { headers: { authorization: `Bearer ${cp.ready.nodeToken}`, [NODE_ID_HEADER]: 'bench-size', [NODE_KEY_HEADER]: key } });
  if (!res.ok) throw new Error(`GET ${NODE_SNAPSHOT_PATH}: HTTP ${res.status}`);
  return (await res.arrayBuffer()).byteLength;
}

/** A one-key change verified by `count` simulated nodes, timed from the change's commit. */
async function fanout(cp: ControlPlaneProcess, count: number, keys: number, revoke: { id: string; key: string }): Promise<FanoutResult> {
  const proc: Tracked = startTs('fanout', join(ROOT, 'bench/procs/fanout.ts'), [cp.url, cp.ready.nodeToken as string, String(count)], {
    ipc: true,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' },
  });
  const messages: Array<Record<string, unknown>> = [];
  proc.proc.on('message', (m: Record<string, unknown>) => messages.push(m));
  const waitMessage = async (type: string, timeoutMs: number): Promise<Record<string, unknown>> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const at = messages.findIndex((m) => m.type === type);
      if (at >= 0) return messages.splice(at, 1)[0]!;
      if (Date.now() > deadline) throw new Error(`fan-out: no ${type} within ${timeoutMs} ms\n${proc.tail()}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  try {
    await waitMessage('ready', 180_000);
    const { configVersion } = await cp.gql<{ configVersion: number }>('{ configVersion }');
    proc.proc.send({ type: 'expect', version: configVersion + 1 });
    const r = await cp.gql<{ revokeVirtualKey: { errors: unknown[] } }>(`mutation($id: ID!) { revokeVirtualKey(input: { id: $id }) { errors { code } } }`, { id: revoke.id });
    if (r.revokeVirtualKey.errors.length) throw new Error(JSON.stringify(r.revokeVirtualKey.errors));
    const done = await waitMessage('verified', 60_000);
    const stats = await cp.stats();
    if (!stats) throw new Error('no publish stats');
    return {
      nodes: count,
      keys,
      firstVerifiedMs: (done.firstAt as number) - stats.requestedAt,
      lastVerifiedMs: (done.lastAt as number) - stats.requestedAt,
      chainErrors: done.chainErrors as number,
      controlPlaneShareMs: stats.writtenAt - stats.requestedAt,
    };
  } finally {
    if (proc.proc.connected) proc.proc.disconnect();
    await proc.stop();
  }
}

async function main(): Promise<void> {
  const cp = await ControlPlaneProcess.start();
  let node: NodeProcess | null = null;
  let probe: NodeProbe | null = null;
  try {
    const upstreamUrl = 'http://127.0.0.1:9/mcp'; // never called: distribution is what is measured
    await cp.gql(`mutation { createMcpServer(input: { name: "bench", connectionType: HTTP, connectionString: "${upstreamUrl}", toolsToExecute: ["*"] }) { errors { code } } }`);
    const u = await cp.gql<{ createUser: { user: { id: string } } }>(`mutation { createUser(input: { email: "bench@example.com" }) { user { id } } }`);
    await cp.gql(`mutation($u: ID!) { createVirtualKey(input: { userId: $u, name: "k", servers: [{ server: "bench", tools: ["*"] }] }) { key } }`, { u: u.createUser.user.id });
    node = await startGatehouseNode({ controlPlaneUrl: cp.url, nodeToken: cp.ready.nodeToken });
    probe = new NodeProbe(node.url);
    const { configVersion } = await cp.gql<{ configVersion: number }>('{ configVersion }');
    await probe.waitForVersion(configVersion, 60_000, 20);

    const results: SizeResult[] = [];
    let fan: FanoutResult | null = null;
    let keysNow = 1;
    let usersNow = 1;
    for (const [i, size] of sizes.entries()) {
      log(`seeding up to ${size} keys${i === 0 ? ` and ${servers} servers` : ''}`);
      const users = Math.max(0, Math.ceil(size / KEYS_PER_USER) - usersNow);
      const run = await measureSnapshot(cp, node, probe, {
        label: `s${i}`,
        users,
        servers: i === 0 ? servers : 0,
        keys: size - keysNow,
        upstreamUrl,
        grantServer: 'bench',
        reveal: revocations + (i === 0 ? 1 : 0),
      });
      keysNow = size;
      usersNow += users;
      const whole = await wholeSnapshotBytes(cp);
      const commitToRefusal: number[] = [];
      const share: number[] = [];
      let deltaBytes: number | null = null;
      const toRevoke = i === 0 ? run.seed.revealed.slice(1) : run.seed.revealed;
      log(`  ${run.measure.keys} keys: whole snapshot ${(whole / 1e6).toFixed(2)} MB, node serving ${Math.round(run.measure.applyMs)} ms after publish, RSS ${Math.round(run.measure.rssMb ?? -1)} MB; timing ${toRevoke.length} one-key changes`);
      for (const k of toRevoke) {
        const m = (await measureRevocations(cp, probe, [k], { keys: run.measure.keys, servers: run.measure.servers })).measure;
        const stats = await cp.stats();
        // The mutation's response follows its commit by one GraphQL serialisation: add the control plane's
        // time from commit to response by measuring from the publisher's first notice instead.
        if (stats && stats.kind === 'delta') {
          share.push(stats.writtenAt - stats.requestedAt);
          deltaBytes = stats.bytes;
        }
        commitToRefusal.push(m.samplesMs[0]!);
      }
      results.push({
        keys: run.measure.keys,
        servers: run.measure.servers,
        wholeSnapshotBytes: whole,
        deltaBytes,
        publishMs: run.measure.publishMs,
        applyMs: run.measure.applyMs,
        rssMb: run.measure.rssMb,
        peakRssMb: run.measure.peakRssMb,
        commitToRefusalMs: stat(commitToRefusal),
        controlPlaneShareMs: stat(share),
      });
      log(`  commit → refusal p50 ${percentile(commitToRefusal, 50).toFixed(1)} ms p99 ${percentile(commitToRefusal, 99).toFixed(1)} ms; control plane's share p50 ${percentile(share, 50).toFixed(1)} ms`);
      if (i === 0 && simulated > 0) {
        log(`fan-out: ${simulated} simulated nodes at ${run.measure.keys} keys`);
        fan = await fanout(cp, simulated, run.measure.keys, run.seed.revealed[0]!);
        log(`  last of ${simulated} verified ${fan.lastVerifiedMs.toFixed(0)} ms after commit (control plane wrote all in ${fan.controlPlaneShareMs.toFixed(0)} ms)`);
      }
    }

    const report = { startedAt: new Date().toISOString(), machine: { cpus: availableParallelism(), cpuModel: cpus()[0]?.model.trim(), loadavg: loadavg(), node: process.version }, sizes: results, fanout: fan };
    mkdirSync(dirname(args.out), { recursive: true });
    writeFileSync(args.out, JSON.stringify(report, null, 2) + '\n');
    const row = (cells: Array<string | number>) => cells.map((c) => String(c).padStart(14)).join('') + '\n';
    let out = '\nsnapshot distribution (issue 11 / SPEC §8)\n';
    out += row(['keys', 'whole MB', 'delta B', 'apply ms', 'RSS MB', 'c→r p50', 'c→r p99', 'cp p50', 'cp p99']);
    for (const r of results) {
      out += row([r.keys, (r.wholeSnapshotBytes / 1e6).toFixed(2), r.deltaBytes ?? '-', Math.round(r.applyMs), Math.round(r.rssMb ?? -1), r.commitToRefusalMs.p50.toFixed(1), r.commitToRefusalMs.p99.toFixed(1), r.controlPlaneShareMs.p50.toFixed(1), r.controlPlaneShareMs.p99.toFixed(1)]);
    }
    const big = results.find((r) => r.keys >= 100_000);
    out += '\ntargets:\n';
    if (big) {
      out += `  100k keys applied in < 1 s:            ${Math.round(big.applyMs)} ms  ${big.applyMs < 1000 ? 'MET' : 'NOT MET'}\n`;
      out += `  node RSS < 300 MB:                     ${Math.round(big.rssMb ?? -1)} MB  ${(big.rssMb ?? Infinity) < 300 ? 'MET' : 'NOT MET'}\n`;
      out += `  one-key change commit→refusal p99 < 50 ms: ${big.commitToRefusalMs.p99.toFixed(1)} ms  ${big.commitToRefusalMs.p99 < 50 ? 'MET' : 'NOT MET'}\n`;
    }
    if (fan) out += `  ${fan.nodes} nodes verified a one-key change in < 2 s: ${fan.lastVerifiedMs.toFixed(0)} ms  ${fan.lastVerifiedMs < 2000 && fan.chainErrors === 0 ? 'MET' : 'NOT MET'} (chain errors ${fan.chainErrors})\n`;
    out += `  (c→r: mutation response → node's 403 key_revoked; cp: publisher's first notice → delta bytes written; load average ${loadavg().map((l) => l.toFixed(1)).join(' ')})\n`;
    process.stdout.write(out + `results: ${args.out}\n`);
  } finally {
    await probe?.close().catch(() => undefined);
    await node?.close();
    await cp.close();
    await stopAll();
  }
}

process.on('exit', cleanupSync);
main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`bench:scale: harness error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    void stopAll().finally(() => process.exit(1));
  },
);
