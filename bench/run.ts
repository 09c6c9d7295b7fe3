/**
 * `npm run bench`: how far the data plane's `/mcp` hot path is from SPEC §8's targets, measured against
 * baselines taken IN THE SAME RUN on the same machine, so the verdicts rest on ratios and survive noisy
 * hosts. It starts everything it measures, each in its own process, on 127.0.0.1 only, and stops them:
 *
 *   upstream    bench/procs/upstream.ts       trivial JSON-RPC MCP server on node:http
 *   nginx       generated nginx.conf          reverse proxy, keep-alive upstream (skipped if absent)
 *   node floor  bench/procs/node-proxy.ts     minimal node:http + undici proxy (informational)
 *   control     bench/procs/control-plane.ts  the real control plane (SQLite, temp dir) + IPC seeding
 *   node        dist/gatehouse-node.mjs       one data-plane node, as operators run it (npm run node)
 *   load        wrk + bench/wrk/post.lua      (bench/procs/loadgen.ts when wrk is absent)
 *
 * Phases: (1) `tools/call` throughput and latency at 32 connections against each system in turn;
 * (2) 10,000 keys + 500 servers, then ~20 revocations timed from the mutation's response to the node's
 * 403 key_revoked; (3) 100,000 keys: publish → node serving, node RSS. Prints a table, writes
 * bench/results/latest.json and exits 0 whatever the verdicts (it is a report); exits 1 only when the
 * harness itself fails. bench/README.md says what each number means.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, release, totalmem } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { ControlPlaneProcess, NodeProbe, startGatehouseNode, type NodeProcess } from './lib/gatehouse.js';
import { runLoad, type Generator, type LoadResult, type LoadSpec } from './lib/load.js';
import { measureRevocations, measureSnapshot, sanityCheck } from './lib/measure.js';
import { startNginx, type Nginx } from './lib/nginx.js';
import { boxCpuSeconds, cleanupSync, cpuSeconds, findExecutable, makeTempDir, monotonicUs, readMemory, ROOT, startTs, stopAll, withChildren, type Tracked } from './lib/procs.js';
import { mainThreadProfile, summarizeProfile, type ProfileSummary, type TimeWindow } from './lib/profile.js';
import {
  computeVerdicts,
  renderReport,
  roundResults,
  type BenchResults,
  type RevocationMeasure,
  type SnapshotMeasure,
  type SystemName,
  type ThroughputEntry,
} from './lib/report.js';
import { median } from './lib/stats.js';
import { measureGovernance, renderGovernance, type GovernanceResults } from './lib/governance.js';
import { measureAudit, renderAudit, type AuditResults } from './lib/audit.js';

const USAGE = `usage: npm run bench -- [options]
  --duration S        recorded seconds per load run (default 10)
  --warmup S          warm-up seconds per load run, discarded (default 2)
  --connections N     concurrent connections (default 32)
  --rounds N          load runs per system, order alternating; the median round is reported (default 1)
  --generator G       auto | wrk | undici (default auto: wrk when installed)
  --revocations N     revocations to time with 10,000 keys (default 20)
  --skip-revocation   skip the 10,000-key phase
  --skip-scale        skip the 100,000-key phase
  --skip-governance   skip /mcp with limits on (in-process, Redis) and /anthropic streaming (issue 7)
  --skip-audit        skip /mcp with the audit trail and guardrail (redact) on against off (issue 8)
  --no-node-floor     skip the informational minimal-Node-proxy baseline
  --workers N         also run a node with --workers N against nginx with worker_processes N (default 0: skip)
  --no-wide-grant     skip /mcp with a key granted 50 servers × 20 tools
  --profile           CPU-profile the node and the control plane; print where each phase's time went
  --out FILE          results file (default bench/results/latest.json)`;

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '2' },
    connections: { type: 'string', default: '32' },
    rounds: { type: 'string', default: '1' },
    generator: { type: 'string', default: 'auto' },
    revocations: { type: 'string', default: '20' },
    'skip-revocation': { type: 'boolean', default: false },
    'skip-scale': { type: 'boolean', default: false },
    'skip-governance': { type: 'boolean', default: false },
    'skip-audit': { type: 'boolean', default: false },
    'no-node-floor': { type: 'boolean', default: false },
    workers: { type: 'string', default: '0' },
    'no-wide-grant': { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    out: { type: 'string', default: join(ROOT, 'bench/results/latest.json') },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  process.stdout.write(USAGE + '\n');
  process.exit(0);
}
function numberArg(name: string, raw: string, min: number): number {
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min) {
    process.stderr.write(`bench: --${name} must be a number ≥ ${min}\n${USAGE}\n`);
    process.exit(2);
  }
  return n;
}
const opts = {
  durationS: numberArg('duration', args.duration, 1),
  warmupS: numberArg('warmup', args.warmup, 0),
  connections: Math.round(numberArg('connections', args.connections, 1)),
  rounds: Math.round(numberArg('rounds', args.rounds, 1)),
  generator: args.generator,
  revocations: Math.round(numberArg('revocations', args.revocations, 1)),
  skipRevocation: args['skip-revocation'],
  skipScale: args['skip-scale'],
  nodeFloor: !args['no-node-floor'],
  workers: Math.round(numberArg('workers', args.workers, 0)),
  wideGrant: !args['no-wide-grant'],
  profile: args.profile,
  out: args.out,
};
if (!['auto', 'wrk', 'undici'].includes(opts.generator)) {
  process.stderr.write(`bench: --generator must be auto, wrk or undici\n${USAGE}\n`);
  process.exit(2);
}

// Configuration sizes from SPEC §8: revocation with 10,000 keys and 500 servers; apply and memory at 100,000.
const REVOCATION_KEYS = 10_000;
const REVOCATION_SERVERS = 500;
const SCALE_KEYS = 100_000;
/** One user per this many keys. */
const KEYS_PER_USER = 10;
/**
 * Revocations timed again at 100,000 keys: informational, and few, because each one recompiles and
 * re-applies the whole snapshot (seconds each today).
 */
const SCALE_REVOCATIONS = 2;
/** The whole run is bounded: a hung phase becomes a harness error, not a bench that never ends. */
const WATCHDOG_MS = 10 * 60_000;
const SERVER_NAME = 'bench';

const started = performance.now();
function log(message: string): void {
  process.stderr.write(`[bench ${((performance.now() - started) / 1000).toFixed(1)}s] ${message}\n`);
}

function toolCallBody(tool: string): string {
  return JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: tool, arguments: { text: 'hello' } } });
}

function chooseGenerator(notes: string[]): { generator: Generator; name: string; version: string | null } {
  const wrk = findExecutable('wrk', process.env.BENCH_WRK);
  if (opts.generator === 'wrk' && !wrk) throw new Error('--generator wrk: wrk is not installed (apt-get install wrk)');
  if (opts.generator === 'undici' || !wrk) {
    if (!wrk) {
      const message =
        'wrk is not installed: using the undici load generator (Node, own process). It spends more CPU per request than wrk, ' +
        'CPU taken from the systems under test, so absolute numbers are lower; the ratios still compare like with like. ' +
        'Install wrk (apt-get install wrk) for the reference setup.';
      log(message);
      notes.push(message);
    }
    return { generator: { kind: 'undici' }, name: 'undici (bench/procs/loadgen.ts)', version: null };
  }
  const probe = spawnSync(wrk, ['-v'], { encoding: 'utf8' });
  const version = /wrk\s+(\S+)/.exec(`${probe.stdout}${probe.stderr}`)?.[1] ?? null;
  // Two threads on a 2-core box keep 32 connections busy without starving what is measured.
  const threads = Math.max(1, Math.min(2, availableParallelism()));
  return { generator: { kind: 'wrk', binary: wrk, threads }, name: 'wrk', version };
}

interface System {
  name: SystemName;
  label: string;
  spec: LoadSpec | null;
  skipped?: string;
  check: () => Promise<void>;
  /** The processes whose CPU is the system's own (for `direct`, the upstream). */
  pids: () => number[];
}

interface CpuSample {
  sys: number | null;
  up: number | null;
  cp: number | null;
  box: number | null;
  us: number;
}

type CpuUse = NonNullable<ThroughputEntry['cpu']>;

async function main(): Promise<void> {
  const startedAt = new Date();
  const notes: string[] = [];
  const tmp = makeTempDir('gatehouse-bench-');
  // Everything started, so `finally` can stop it whatever failed.
  const running: {
    upstream: Tracked | null;
    floor: Tracked | null;
    nginx: Nginx | null;
    nginxWorkers: Nginx | null;
    cp: ControlPlaneProcess | null;
    node: NodeProcess | null;
    nodeWorkers: NodeProcess | null;
    probe: NodeProbe | null;
  } = {
    nginxWorkers: null,
    nodeWorkers: null,
    upstream: null,
    floor: null,
    nginx: null,
    cp: null,
    node: null,
    probe: null,
  };
  const warnings: string[] = [];
  const profileDirs = opts.profile ? { node: join(tmp, 'prof-node'), cp: join(tmp, 'prof-cp') } : null;
  const windows: Array<{ process: 'node' | 'cp'; label: string; window: TimeWindow }> = [];

  try {
    const gen = chooseGenerator(notes);
    log(`load generator: ${gen.name}${gen.version ? ` ${gen.version}` : ''}`);
    if (profileDirs) {
      mkdirSync(profileDirs.node, { recursive: true });
      mkdirSync(profileDirs.cp, { recursive: true });
      notes.push('--profile: the node and control plane ran under the V8 sampling profiler, which slows them a little; compare numbers from runs without it.');
    }

    // 1. Upstream.
    const upstream = startTs('upstream', join(ROOT, 'bench/procs/upstream.ts'), [], { env: { PATH: process.env.PATH ?? '' } });
    running.upstream = upstream;
    const upstreamPort = (JSON.parse(await upstream.waitForLine((l) => l.includes('"ready":true'), 30_000, 'ready line')) as { port: number }).port;
    const upstreamUrl = `http://127.0.0.1:${upstreamPort}/mcp`;
    log(`upstream on ${upstreamUrl} (pid ${upstream.pid})`);

    // 2. The Node floor (informational): what any Node proxy costs here, apart from Gatehouse's own work.
    let floorUrl: string | null = null;
    if (opts.nodeFloor) {
      const floor = startTs('node-floor', join(ROOT, 'bench/procs/node-proxy.ts'), [`http://127.0.0.1:${upstreamPort}`], { env: { PATH: process.env.PATH ?? '' } });
      running.floor = floor;
      const port = (JSON.parse(await floor.waitForLine((l) => l.includes('"ready":true'), 30_000, 'ready line')) as { port: number }).port;
      floorUrl = `http://127.0.0.1:${port}/mcp`;
      log(`node floor proxy on ${floorUrl}`);
    }

    // 3. nginx, when installed.
    const nginxBinary = findExecutable('nginx', process.env.BENCH_NGINX);
    let nginxSkip = '';
    if (nginxBinary) {
      running.nginx = await startNginx(nginxBinary, upstreamPort);
      log(`nginx on ${running.nginx.url} (worker_processes ${running.nginx.workers})`);
      if (opts.workers > 0) {
        running.nginxWorkers = await startNginx(nginxBinary, upstreamPort, opts.workers);
        log(`nginx on ${running.nginxWorkers.url} (worker_processes ${opts.workers})`);
      }
    } else {
      nginxSkip = 'nginx not installed';
      const message = 'nginx is not installed: the nginx baseline is skipped and the two gatehouse ÷ nginx targets are not judged (apt-get install nginx).';
      log(message);
      notes.push(message);
    }

    // 4. Control plane, configured through GraphQL as an operator would: a server with a HEADERS
    //    credential, a user, a virtual key.
    const cp = await ControlPlaneProcess.start(profileDirs ? { cpuProfileDir: profileDirs.cp } : {});
    running.cp = cp;
    log(`control plane on ${cp.url}`);
    const created = await cp.gql<{ createMcpServer: { errors: unknown[] } }>(
      `mutation($input: CreateMcpServerInput!) { createMcpServer(input: $input) { mcpServer { name } errors { field code message } } }`,
      {
        input: {
          name: SERVER_NAME,
          connectionType: 'HTTP',
          connectionString: upstreamUrl,
          authType: 'HEADERS',
          headers: [{ name: 'Authorization', value: 'Bearer bench-upstream-credential' }],
          toolsToExecute: ['*'],
        },
      },
    );
    if (created.createMcpServer.errors.length) throw new Error(`createMcpServer: ${JSON.stringify(created.createMcpServer.errors)}`);
    const user = await cp.gql<{ createUser: { user: { id: string } | null; errors: unknown[] } }>(
      `mutation { createUser(input: { email: "bench@example.com", name: "Bench" }) { user { id } errors { code message } } }`,
    );
    if (!user.createUser.user) throw new Error(`createUser: ${JSON.stringify(user.createUser.errors)}`);
    const issued = await cp.gql<{ createVirtualKey: { key: string | null; errors: unknown[] } }>(
      `mutation($input: CreateVirtualKeyInput!) { createVirtualKey(input: $input) { key virtualKey { id } errors { field code message } } }`,
      { input: { userId: user.createUser.user.id, name: 'bench load key', servers: [{ server: SERVER_NAME, tools: ['*'] }] } },
    );
    const benchKey = issued.createVirtualKey.key;
    if (!benchKey) throw new Error(`createVirtualKey: ${JSON.stringify(issued.createVirtualKey.errors)}`);
    // 4b. Issue 5: a key granted 50 servers × 20 tools (49 more servers on the same upstream), calling the
    //     same tool, so per-request cost that grows with the grant shows up against the one-server key.
    let wideKey: string | null = null;
    if (opts.wideGrant) {
      const tools = ['echo', ...Array.from({ length: 19 }, (_, i) => `tool_${i + 1}`)];
      const names = [SERVER_NAME, ...Array.from({ length: 49 }, (_, i) => `wide_${i + 1}`)];
      for (const name of names.slice(1)) {
        const made = await cp.gql<{ createMcpServer: { errors: unknown[] } }>(
          `mutation($input: CreateMcpServerInput!) { createMcpServer(input: $input) { mcpServer { name } errors { field code message } } }`,
          { input: { name, connectionType: 'HTTP', connectionString: upstreamUrl, authType: 'NONE', toolsToExecute: ['*'] } },
        );
        if (made.createMcpServer.errors.length) throw new Error(`createMcpServer ${name}: ${JSON.stringify(made.createMcpServer.errors)}`);
      }
      const wide = await cp.gql<{ createVirtualKey: { key: string | null; errors: unknown[] } }>(
        `mutation($input: CreateVirtualKeyInput!) { createVirtualKey(input: $input) { key errors { field code message } } }`,
        { input: { userId: user.createUser.user.id, name: 'bench wide key', servers: names.map((server) => ({ server, tools })) } },
      );
      wideKey = wide.createVirtualKey.key;
      if (!wideKey) throw new Error(`createVirtualKey (wide): ${JSON.stringify(wide.createVirtualKey.errors)}`);
    }
    const { configVersion } = await cp.gql<{ configVersion: number }>('{ configVersion }');

    // 5. The node; ready once it serves the configuration just made.
    const node = await startGatehouseNode({ controlPlaneUrl: cp.url, nodeToken: cp.ready.nodeToken, ...(profileDirs ? { cpuProfileDir: profileDirs.node } : {}) });
    running.node = node;
    node.proc.onLine((line) => {
      // Anything at warn or above during a bench run deserves a look (e.g. upstream reconnects under load).
      try {
        if (((JSON.parse(line) as { level?: number }).level ?? 0) >= 40) warnings.push(line);
      } catch {
        warnings.push(line);
      }
    });
    const probe = new NodeProbe(node.url);
    running.probe = probe;
    await probe.waitForVersion(configVersion, 30_000, 20);
    let nodeWorkers: NodeProcess | null = null;
    if (opts.workers > 0) {
      // Every worker is a node of its own (own link, own state dir); the bench waits until one answers with
      // the configuration, then probes a few more connections so each worker has had time to apply it.
      nodeWorkers = await startGatehouseNode({ controlPlaneUrl: cp.url, nodeToken: cp.ready.nodeToken, nodeId: 'bench-workers', workers: opts.workers });
      running.nodeWorkers = nodeWorkers;
      const probes = Array.from({ length: opts.workers * 4 }, () => new NodeProbe((nodeWorkers as NodeProcess).url));
      await Promise.all(probes.map((p) => p.waitForVersion(configVersion, 60_000, 50)));
      await Promise.all(probes.map((p) => p.close()));
      log(`node with ${opts.workers} workers on ${nodeWorkers.url} serving config version ${configVersion}`);
    }
    log(`node on ${node.url} (pid ${node.proc.pid}) serving config version ${configVersion}`);

    // 6. Throughput: the same tools/call against each system, one at a time.
    const directBody = toolCallBody('echo');
    const gatehouseBody = toolCallBody(`${SERVER_NAME}-echo`);
    const spec = (url: string, body: string, authorization: string | null): LoadSpec => ({
      url,
      body,
      authorization,
      connections: opts.connections,
      durationS: opts.durationS,
      warmupS: opts.warmupS,
    });
    const nginx = running.nginx;
    const systems: System[] = [
      { name: 'direct', label: 'direct upstream', spec: spec(upstreamUrl, directBody, null), check: () => sanityCheck('direct', upstreamUrl, directBody, null), pids: () => [upstream.pid] },
      nginx
        ? {
            name: 'nginx',
            label: 'nginx → upstream',
            spec: spec(`${nginx.url}/mcp`, directBody, null),
            check: () => sanityCheck('nginx', `${nginx.url}/mcp`, directBody, null),
            pids: () => withChildren(nginx.proc.pid),
          }
        : { name: 'nginx', label: 'nginx → upstream', spec: null, skipped: nginxSkip, check: async () => undefined, pids: () => [] },
    ];
    const floor = running.floor;
    if (floorUrl && floor) {
      const url = floorUrl;
      systems.push({ name: 'nodeFloor', label: 'node floor → upstream (info)', spec: spec(url, directBody, null), check: () => sanityCheck('node floor', url, directBody, null), pids: () => [floor.pid] });
    }
    const gatehouseUrl = `${node.url}/mcp`;
    systems.push({
      name: 'gatehouse',
      label: 'gatehouse /mcp → upstream',
      spec: spec(gatehouseUrl, gatehouseBody, `Bearer ${benchKey}`),
      check: () => sanityCheck('gatehouse', gatehouseUrl, gatehouseBody, `Bearer ${benchKey}`),
      pids: () => [node.proc.pid],
    });
    if (wideKey) {
      const key = wideKey;
      systems.push({
        name: 'gatehouseWide',
        label: 'gatehouse /mcp, 50×20 grant → upstream',
        spec: spec(gatehouseUrl, gatehouseBody, `Bearer ${key}`),
        check: () => sanityCheck('gatehouse (wide grant)', gatehouseUrl, gatehouseBody, `Bearer ${key}`),
        pids: () => [node.proc.pid],
      });
    }
    const nginxN = running.nginxWorkers;
    if (nginxN && nodeWorkers) {
      const workersUrl = `${nodeWorkers.url}/mcp`;
      const workersNode = nodeWorkers;
      systems.push({
        name: 'nginxWorkers',
        label: `nginx, ${opts.workers} workers → upstream`,
        spec: spec(`${nginxN.url}/mcp`, directBody, null),
        check: () => sanityCheck('nginx (workers)', `${nginxN.url}/mcp`, directBody, null),
        pids: () => withChildren(nginxN.proc.pid),
      });
      systems.push({
        name: 'gatehouseWorkers',
        label: `gatehouse /mcp, ${opts.workers} workers → upstream`,
        spec: spec(workersUrl, gatehouseBody, `Bearer ${benchKey}`),
        check: () => sanityCheck('gatehouse (workers)', workersUrl, gatehouseBody, `Bearer ${benchKey}`),
        pids: () => withChildren(workersNode.proc.pid),
      });
    }
    // `/mcp/{server}` (issue 9): the same upstream, passed through; the tool keeps its own name.
    const serverRouteUrl = `${node.url}/mcp/${SERVER_NAME}`;
    systems.push({
      name: 'gatehouseServer',
      label: 'gatehouse /mcp/{server} → upstream',
      spec: spec(serverRouteUrl, directBody, `Bearer ${benchKey}`),
      check: () => sanityCheck('gatehouse /mcp/{server}', serverRouteUrl, directBody, `Bearer ${benchKey}`),
      pids: () => [node.proc.pid],
    });

    const results = new Map<SystemName, LoadResult[]>();
    const cpuUse = new Map<SystemName, CpuUse[]>();
    for (let round = 0; round < opts.rounds; round++) {
      // Alternate the order between rounds, so drift on the host does not always favour the same system.
      for (const system of round % 2 === 0 ? systems : [...systems].reverse()) {
        if (!system.spec) continue;
        await system.check();
        log(`load: ${system.label}${opts.rounds > 1 ? ` (round ${round + 1}/${opts.rounds})` : ''}, ${opts.warmupS} s warm-up + ${opts.durationS} s`);
        // CPU counters and the monotonic clock around the recorded part only (not the warm-up).
        const pids = system.pids();
        const cpPid = cp.proc.pid;
        const sample = (): CpuSample => ({ sys: cpuSeconds(pids), up: cpuSeconds([upstream.pid]), cp: cpPid === undefined ? null : cpuSeconds([cpPid]), box: boxCpuSeconds(), us: monotonicUs() });
        const marks: { before: CpuSample | null; after: CpuSample | null } = { before: null, after: null };
        const result = await runLoad(gen.generator, system.spec, { start: () => (marks.before = sample()), end: () => (marks.after = sample()) });
        await system.check();
        log(`  ${Math.round(result.rps)} req/s, p50 ${result.p50Ms.toFixed(2)} ms, p99 ${result.p99Ms.toFixed(2)} ms, ${result.errors} errors`);
        results.set(system.name, [...(results.get(system.name) ?? []), result]);
        const { before, after } = marks;
        if (before && after) {
          const seconds = (after.us - before.us) / 1e6;
          const cores = (x: number | null, y: number | null): number | null => (x === null || y === null || seconds <= 0 ? null : (y - x) / seconds);
          cpuUse.set(system.name, [
            ...(cpuUse.get(system.name) ?? []),
            { systemCores: cores(before.sys, after.sys), upstreamCores: cores(before.up, after.up), controlPlaneCores: cores(before.cp, after.cp), boxCores: cores(before.box, after.box) },
          ]);
          if (system.name === 'gatehouse' && round === 0) windows.push({ process: 'node', label: 'node: tools/call load', window: { startUs: before.us, endUs: after.us } });
        }
      }
    }
    const throughput: ThroughputEntry[] = systems.map((system) => {
      const runs = results.get(system.name) ?? [];
      if (runs.length === 0) return { system: system.name, label: system.label, result: null, skipped: system.skipped ?? 'not measured' };
      // Several rounds: the median-throughput round is the headline, with the median of the rounds' p99s.
      const byRps = [...runs].sort((a, b) => a.rps - b.rps);
      const headline = byRps[Math.floor((byRps.length - 1) / 2)] as LoadResult;
      const cpu = cpuUse.get(system.name) ?? [];
      const mid = (xs: Array<number | null>): number | null => {
        const known = xs.filter((x): x is number => x !== null);
        return known.length > 0 ? median(known) : null;
      };
      return {
        system: system.name,
        label: system.label,
        result: runs.length > 1 ? { ...headline, p99Ms: median(runs.map((r) => r.p99Ms)) } : headline,
        ...(runs.length > 1 ? { rounds: runs } : {}),
        ...(cpu.length > 0
          ? {
              cpu: {
                systemCores: mid(cpu.map((c) => c.systemCores)),
                upstreamCores: mid(cpu.map((c) => c.upstreamCores)),
                controlPlaneCores: mid(cpu.map((c) => c.controlPlaneCores ?? null)),
                boxCores: mid(cpu.map((c) => c.boxCores ?? null)),
              },
            }
          : {}),
      };
    });
    const get = (name: SystemName): LoadResult | null => throughput.find((t) => t.system === name)?.result ?? null;
    const ratio = (a: LoadResult | null, b: LoadResult | null, pick: (r: LoadResult) => number): number | null => (a && b ? pick(a) / pick(b) : null);
    const rps = (r: LoadResult): number => r.rps;
    const ratios: BenchResults['ratios'] = {
      gatehouseToNginxRps: ratio(get('gatehouse'), get('nginx'), rps),
      gatehouseToNginxP99: ratio(get('gatehouse'), get('nginx'), (r) => r.p99Ms),
      nginxToDirectRps: ratio(get('nginx'), get('direct'), rps),
      gatehouseToDirectRps: ratio(get('gatehouse'), get('direct'), rps),
      nodeFloorToNginxRps: ratio(get('nodeFloor'), get('nginx'), rps),
      gatehouseToNodeFloorRps: ratio(get('gatehouse'), get('nodeFloor'), rps),
      serverRouteToMcpRps: ratio(get('gatehouseServer'), get('gatehouse'), rps),
      gatehouseToNodeFloorP99: ratio(get('gatehouse'), get('nodeFloor'), (r) => r.p99Ms),
      wideGrantToMcpRps: ratio(get('gatehouseWide'), get('gatehouse'), rps),
      workersToNginxWorkersRps: ratio(get('gatehouseWorkers'), get('nginxWorkers'), rps),
      workersToOneRps: ratio(get('gatehouseWorkers'), get('gatehouse'), rps),
    };
    const baselineMemory = readMemory(node.proc.pid);

    // 6b. Governance (issue 7): the limits stage on (in-process, Redis) against off, and /anthropic streaming.
    let governance: GovernanceResults | null = null;
    if (!args['skip-governance']) {
      governance = await measureGovernance({
        generator: gen.generator,
        cp,
        node,
        nodeToken: cp.ready.nodeToken as string,
        userId: user.createUser.user.id,
        serverName: SERVER_NAME,
        unlimitedKey: benchKey,
        connections: opts.connections,
        durationS: opts.durationS,
        warmupS: opts.warmupS,
        log,
      });
    }

    // 6c. Audit trail + guardrail (issue 8): on against off, two fresh nodes.
    let audit: AuditResults | null = null;
    if (!args['skip-audit']) {
      audit = await measureAudit({
        generator: gen.generator,
        cp,
        nodeToken: cp.ready.nodeToken as string,
        serverName: SERVER_NAME,
        key: benchKey,
        connections: opts.connections,
        durationS: opts.durationS,
        warmupS: opts.warmupS,
        rounds: opts.rounds,
        log,
      });
    }

    // 7. Revocation with 10,000 keys and 500 servers (SPEC: p99 under 200 ms).
    let snapshot10k: SnapshotMeasure | null = null;
    let revocation: RevocationMeasure | null = null;
    if (!opts.skipRevocation) {
      log(`seeding ${REVOCATION_KEYS.toLocaleString('en-US')} keys and ${REVOCATION_SERVERS} servers`);
      const run = await measureSnapshot(cp, node, probe, {
        label: 'r',
        users: REVOCATION_KEYS / KEYS_PER_USER - 1,
        servers: REVOCATION_SERVERS,
        keys: REVOCATION_KEYS - 1,
        upstreamUrl,
        grantServer: SERVER_NAME,
        reveal: opts.revocations,
      });
      snapshot10k = run.measure;
      log(`  ${run.measure.keys} keys: published in ${Math.round(run.measure.publishMs)} ms, node serving ${Math.round(run.measure.applyMs)} ms later`);
      log(`timing ${run.seed.revealed.length} revocations`);
      const revoked = await measureRevocations(cp, probe, run.seed.revealed, { keys: run.measure.keys, servers: run.measure.servers });
      revocation = revoked.measure;
      windows.push({ process: 'node', label: `node: ${revocation.samplesMs.length} revocations at ${run.measure.keys} keys`, window: revoked.window });
      windows.push({ process: 'cp', label: `control plane: ${revocation.samplesMs.length} revocations at ${run.measure.keys} keys`, window: revoked.window });
      log(`  p50 ${revocation.p50Ms.toFixed(1)} ms, p99 ${revocation.p99Ms.toFixed(1)} ms`);
    }

    // 8. 100,000 keys: publish → serving, and memory.
    let snapshot100k: SnapshotMeasure | null = null;
    let revocation100k: RevocationMeasure | null = null;
    if (!opts.skipScale) {
      const keysNow = snapshot10k?.keys ?? 1;
      const usersNow = snapshot10k?.users ?? 1;
      log(`seeding up to ${SCALE_KEYS.toLocaleString('en-US')} keys`);
      const run = await measureSnapshot(cp, node, probe, {
        label: 's',
        users: Math.max(0, SCALE_KEYS / KEYS_PER_USER - usersNow),
        servers: snapshot10k ? 0 : REVOCATION_SERVERS,
        keys: SCALE_KEYS - keysNow,
        upstreamUrl,
        grantServer: SERVER_NAME,
        reveal: SCALE_REVOCATIONS,
      });
      snapshot100k = run.measure;
      windows.push({ process: 'node', label: `node: applying the ${run.measure.keys}-key snapshot`, window: run.nodeWindow });
      windows.push({ process: 'cp', label: `control plane: compiling + publishing the ${run.measure.keys}-key snapshot`, window: run.controlPlaneWindow });
      log(`  ${run.measure.keys} keys: published in ${Math.round(run.measure.publishMs)} ms, node serving ${Math.round(run.measure.applyMs)} ms later, RSS ${Math.round(run.measure.rssMb ?? -1)} MB`);
      log(`timing ${run.seed.revealed.length} revocations at ${run.measure.keys} keys`);
      revocation100k = (await measureRevocations(cp, probe, run.seed.revealed, { keys: run.measure.keys, servers: run.measure.servers })).measure;
      log(`  p50 ${revocation100k.p50Ms.toFixed(1)} ms, max ${revocation100k.maxMs.toFixed(1)} ms`);
    }

    // 9. Profiles: V8 writes them when the processes exit, so stop the node and control plane first.
    const profiles: ProfileSummary[] = [];
    if (profileDirs) {
      await probe.close();
      running.probe = null;
      await node.close();
      await cp.close();
      const files = { node: mainThreadProfile(profileDirs.node), cp: mainThreadProfile(profileDirs.cp) };
      const kept = { node: join(ROOT, 'bench/results/node.cpuprofile'), cp: join(ROOT, 'bench/results/control-plane.cpuprofile') };
      for (const which of ['node', 'cp'] as const) {
        const file = files[which];
        if (!file) {
          notes.push(`--profile: no .cpuprofile from the ${which === 'node' ? 'node' : 'control plane'}`);
          continue;
        }
        // Kept next to the results, to open in Chrome DevTools or speedscope.
        copyFileSync(file, kept[which]);
        for (const w of windows.filter((x) => x.process === which)) profiles.push(summarizeProfile(w.label, relative(ROOT, kept[which]), w.window));
      }
      log(`profiles: ${relative(ROOT, kept.node)}, ${relative(ROOT, kept.cp)}`);
    }

    const finishedAt = new Date();
    const report: BenchResults = {
      startedAt: startedAt.toISOString(),
      finishedAt: finishedAt.toISOString(),
      durationS: (finishedAt.getTime() - startedAt.getTime()) / 1000,
      machine: {
        cpus: availableParallelism(),
        cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
        node: process.version,
        platform: process.platform,
        kernel: release(),
        memoryGb: totalmem() / 2 ** 30,
      },
      generator: {
        name: gen.name,
        version: gen.version,
        threads: gen.generator.kind === 'wrk' ? Math.min(gen.generator.threads, opts.connections) : null,
        connections: opts.connections,
        durationS: opts.durationS,
        warmupS: opts.warmupS,
        rounds: opts.rounds,
      },
      nginx: { binary: nginxBinary, workers: running.nginx?.workers ?? null },
      throughput,
      ratios,
      snapshot10k,
      snapshot100k,
      baselineRssMb: baselineMemory?.rssMb ?? null,
      revocation,
      revocation100k,
      gatehouseWarnings: warnings,
      profiles,
      verdicts: [],
      notes,
    };
    report.verdicts = computeVerdicts(report);
    mkdirSync(dirname(opts.out), { recursive: true });
    writeFileSync(opts.out, JSON.stringify(roundResults(report), null, 2) + '\n');
    process.stdout.write(renderReport(report));
    if (audit) {
      writeFileSync(join(dirname(opts.out), 'audit.json'), JSON.stringify(audit, null, 2) + '\n');
      process.stdout.write(renderAudit(audit));
    }
    if (governance) {
      writeFileSync(join(dirname(opts.out), 'governance.json'), JSON.stringify(governance, null, 2) + '\n');
      process.stdout.write(renderGovernance(governance));
    }
    process.stdout.write(`results: ${relative(process.cwd(), opts.out) || opts.out}\n`);
  } finally {
    await Promise.all([
      running.probe?.close().catch(() => undefined),
      running.node?.close(),
      running.nodeWorkers?.close(),
      running.cp?.close(),
      running.nginx?.close(),
      running.nginxWorkers?.close(),
      running.floor?.stop(),
      running.upstream?.stop(),
    ]);
    await stopAll();
    rmSync(tmp, { recursive: true, force: true });
  }
}

process.on('exit', cleanupSync);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    process.stderr.write(`bench: ${signal}: stopping what it started\n`);
    void stopAll().finally(() => process.exit(130));
  });
}
const watchdog = setTimeout(() => {
  process.stderr.write(`bench: harness error: still running after ${WATCHDOG_MS / 60_000} minutes; stopping\n`);
  void stopAll().finally(() => process.exit(1));
}, WATCHDOG_MS);

main().then(
  () => {
    clearTimeout(watchdog);
    process.exit(0);
  },
  (error: unknown) => {
    clearTimeout(watchdog);
    process.stderr.write(`bench: harness error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    void stopAll().finally(() => process.exit(1));
  },
);
