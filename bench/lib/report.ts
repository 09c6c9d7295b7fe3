/**
 * The bench's output: the results object written to bench/results/latest.json, the SPEC §8 verdicts
 * computed from it, and the plain-text table printed to stdout. Verdicts never change the exit code:
 * the bench is a report, not a test.
 */
import type { LoadResult } from './load.js';
import type { ProfileSummary } from './profile.js';
import { round } from './stats.js';

/** `nodeFloor`: informational baseline, a minimal node:http + undici proxy (bench/procs/node-proxy.ts). */
/** `gatehouseWide`: /mcp with a key granted 50 servers × 20 tools; `…Workers`: with --workers N (and nginx with N workers). */
export type SystemName = 'direct' | 'nginx' | 'nodeFloor' | 'gatehouse' | 'gatehouseServer' | 'gatehouseWide' | 'nginxWorkers' | 'gatehouseWorkers';

export interface ThroughputEntry {
  system: SystemName;
  label: string;
  /** Null when the system was skipped (e.g. nginx not installed); `skipped` says why. */
  result: LoadResult | null;
  skipped?: string;
  /** Every round's result, when more than one round ran (the headline is the median round). */
  rounds?: LoadResult[];
  /**
   * CPU used during the recorded run, in cores (1.0 = one core busy the whole time): the system under
   * test (upstream itself for `direct`, nginx master + workers, the node) and the upstream. A proxy near
   * 1.0 on one event loop is CPU-bound; well under it means it is waiting on something.
   */
  /**
   * Cores used during the recorded run: the system's own processes, the upstream, the control plane (for
   * Gatehouse it stores the node's audit events as they come; idle for the others), and the whole box
   * (every process, the load generator included, from /proc/stat).
   */
  cpu?: { systemCores: number | null; upstreamCores: number | null; controlPlaneCores?: number | null; boxCores?: number | null };
}

export interface SnapshotMeasure {
  keys: number;
  servers: number;
  users: number;
  /** Building rows, inserting, committing (control plane; not a target). */
  insertMs: number;
  /** Commit → compiled, signed, wrapped and written to the node stream (control plane). */
  publishMs: number;
  /** Publish → node serving the new version (transfer, verify, unwrap, build runtime, swap). */
  applyMs: number;
  /** Commit → node serving: what an operator waits for. */
  endToEndMs: number;
  /** Node memory after the apply settled. */
  rssMb: number | null;
  peakRssMb: number | null;
}

export interface RevocationMeasure {
  keys: number;
  servers: number;
  /** Mutation response received → node answers 403 key_revoked, ms, in the order taken. */
  samplesMs: number[];
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface Verdict {
  name: string;
  measured: string;
  target: string;
  /** null: could not be measured in this run (the reason is in `measured`). */
  pass: boolean | null;
}

export interface BenchResults {
  startedAt: string;
  finishedAt: string;
  durationS: number;
  machine: { cpus: number; cpuModel: string; node: string; platform: string; kernel: string; memoryGb: number };
  generator: { name: string; version: string | null; threads: number | null; connections: number; durationS: number; warmupS: number; rounds: number };
  nginx: { binary: string | null; workers: string | null };
  throughput: ThroughputEntry[];
  ratios: {
    gatehouseToNginxRps: number | null;
    gatehouseToNginxP99: number | null;
    nginxToDirectRps: number | null;
    gatehouseToDirectRps: number | null;
    nodeFloorToNginxRps: number | null;
    gatehouseToNodeFloorRps: number | null;
    /** `/mcp/{server}` ÷ `/mcp` tools/call req/s (issue 9: the pass-through route within 0.9× of /mcp). */
    serverRouteToMcpRps: number | null;
    /** Issue 5: /mcp ÷ the node floor, and p99 ratio (targets ≥ 0.8×, ≤ 1.5×). */
    gatehouseToNodeFloorP99: number | null;
    /** /mcp with a 50-server × 20-tool grant ÷ /mcp with a one-server grant. */
    wideGrantToMcpRps: number | null;
    /** `--workers N`: gatehouse with N workers ÷ nginx with N workers, and ÷ gatehouse with one. */
    workersToNginxWorkersRps: number | null;
    workersToOneRps: number | null;
  };
  snapshot10k: SnapshotMeasure | null;
  snapshot100k: SnapshotMeasure | null;
  baselineRssMb: number | null;
  revocation: RevocationMeasure | null;
  revocation100k: RevocationMeasure | null;
  gatehouseWarnings: string[];
  /** With --profile: where the node's (and control plane's) CPU went in each measured part. */
  profiles: ProfileSummary[];
  verdicts: Verdict[];
  notes: string[];
}

const fmtInt = (n: number): string => Math.round(n).toLocaleString('en-US');
const fmtMs = (n: number): string => (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2));
const fmtX = (n: number): string => `${n.toFixed(2)}×`;

export function computeVerdicts(r: BenchResults): Verdict[] {
  const verdicts: Verdict[] = [];
  const nginx = r.throughput.find((t) => t.system === 'nginx');
  const nginxMissing = nginx?.result ? null : (nginx?.skipped ?? 'nginx not measured');
  verdicts.push(
    r.ratios.gatehouseToNginxRps !== null
      ? { name: '/mcp tools/call req/s, gatehouse ÷ nginx', measured: fmtX(r.ratios.gatehouseToNginxRps), target: '≥ 0.75×', pass: r.ratios.gatehouseToNginxRps >= 0.75 }
      : { name: '/mcp tools/call req/s, gatehouse ÷ nginx', measured: `skipped (${nginxMissing})`, target: '≥ 0.75×', pass: null },
  );
  verdicts.push(
    r.ratios.gatehouseToNginxP99 !== null
      ? { name: '/mcp tools/call p99, gatehouse ÷ nginx', measured: fmtX(r.ratios.gatehouseToNginxP99), target: '≤ 2×', pass: r.ratios.gatehouseToNginxP99 <= 2 }
      : { name: '/mcp tools/call p99, gatehouse ÷ nginx', measured: `skipped (${nginxMissing})`, target: '≤ 2×', pass: null },
  );
  const s = r.snapshot100k;
  verdicts.push(
    s
      ? { name: `snapshot apply, ${fmtInt(s.keys)} keys (publish → serving)`, measured: `${fmtInt(s.applyMs)} ms`, target: '< 1,000 ms', pass: s.applyMs < 1000 }
      : { name: 'snapshot apply, 100,000 keys (publish → serving)', measured: 'skipped', target: '< 1,000 ms', pass: null },
  );
  verdicts.push(
    s && s.rssMb !== null
      ? { name: `node RSS with ${fmtInt(s.keys)} keys`, measured: `${fmtInt(s.rssMb)} MB`, target: '< 300 MB', pass: s.rssMb < 300 }
      : { name: 'node RSS with 100,000 keys', measured: s ? 'unavailable (no /proc)' : 'skipped', target: '< 300 MB', pass: null },
  );
  const rv = r.revocation;
  verdicts.push(
    rv
      ? {
          name: `revocation → 403 on node, p99 (${fmtInt(rv.keys)} keys, ${rv.servers} servers, n=${rv.samplesMs.length})`,
          measured: `${fmtMs(rv.p99Ms)} ms`,
          target: '< 200 ms',
          pass: rv.p99Ms < 200,
        }
      : { name: 'revocation → 403 on node, p99', measured: 'skipped', target: '< 200 ms', pass: null },
  );
  return verdicts;
}

/** Aligned columns. A row of two cells whose second starts with "skipped" spans the rest of the line. */
function table(rows: string[][], align: Array<'l' | 'r'>): string {
  const isSpan = (row: string[]): boolean => row.length === 2 && (row[1] ?? '').startsWith('skipped') && align.length > 2;
  const sized = rows.filter((row) => !isSpan(row));
  const widths = rows[0]?.map((_, i) => Math.max(...sized.map((row) => (row[i] ?? '').length))) ?? [];
  return rows
    .map((row) =>
      isSpan(row)
        ? `${(row[0] ?? '').padEnd(widths[0] ?? 0)}  ${row[1] ?? ''}`
        : row
            .map((cell, i) => (align[i] === 'r' ? cell.padStart(widths[i] ?? 0) : cell.padEnd(widths[i] ?? 0)))
            .join('  ')
            .trimEnd(),
    )
    .join('\n');
}

export function renderReport(r: BenchResults): string {
  const out: string[] = [];
  const g = r.generator;
  out.push('');
  out.push(`Gatehouse bench — ${r.machine.cpus} CPUs (${r.machine.cpuModel}), Node ${r.machine.node}, ${r.machine.platform} ${r.machine.kernel}`);
  out.push(
    `load: ${g.name}${g.version ? ` ${g.version}` : ''}${g.threads ? `, ${g.threads} threads` : ''}, ${g.connections} connections, ` +
      `${g.durationS} s recorded after ${g.warmupS} s warm-up${g.rounds > 1 ? `, median of ${g.rounds} rounds` : ''}; tools/call over HTTP/1.1 keep-alive`,
  );
  out.push('');
  const rows: string[][] = [['system', 'req/s', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'errors', 'CPU proxy', 'CPU upstream', 'CPU control plane', 'box µs/req']];
  const cores = (n: number | null | undefined): string => (n === null || n === undefined ? '-' : n.toFixed(2));
  for (const t of r.throughput) {
    if (!t.result) {
      rows.push([t.label, `skipped: ${t.skipped ?? ''}`]);
      continue;
    }
    const x = t.result;
    const proxyCpu = t.system === 'direct' ? '-' : cores(t.cpu?.systemCores);
    const box = t.cpu?.boxCores;
    const boxPerRequest = box === null || box === undefined || x.rps <= 0 ? '-' : fmtInt((box * 1e6) / x.rps);
    rows.push([t.label, fmtInt(x.rps), fmtMs(x.p50Ms), fmtMs(x.p90Ms), fmtMs(x.p99Ms), fmtMs(x.maxMs), fmtInt(x.errors), proxyCpu, cores(t.cpu?.upstreamCores), cores(t.cpu?.controlPlaneCores), boxPerRequest]);
  }
  out.push(table(rows, ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r']));
  out.push('(CPU in cores during the recorded run, from /proc: 1.00 = one core busy throughout; box µs/req: the CPU of every');
  out.push(' process on the box, the load generator included, per request served. Where the box is busy throughout, req/s is');
  out.push(' about its cores ÷ that figure: a system can gain on another only by what it saves of it.)');
  out.push('');
  const ratioRows: string[][] = [['ratio', 'value']];
  if (r.ratios.nginxToDirectRps !== null) ratioRows.push(['nginx ÷ direct req/s (SPEC machine: ~0.47)', fmtX(r.ratios.nginxToDirectRps)]);
  if (r.ratios.gatehouseToDirectRps !== null) ratioRows.push(['gatehouse ÷ direct req/s', fmtX(r.ratios.gatehouseToDirectRps)]);
  if (r.ratios.nodeFloorToNginxRps !== null) ratioRows.push(['node floor ÷ nginx req/s (the most Node gives here)', fmtX(r.ratios.nodeFloorToNginxRps)]);
  if (r.ratios.gatehouseToNodeFloorRps !== null) ratioRows.push(['gatehouse ÷ node floor req/s', fmtX(r.ratios.gatehouseToNodeFloorRps)]);
  if (r.ratios.gatehouseToNginxRps !== null) ratioRows.push(['gatehouse ÷ nginx req/s', fmtX(r.ratios.gatehouseToNginxRps)]);
  if (r.ratios.serverRouteToMcpRps !== null) ratioRows.push(['gatehouse /mcp/{server} ÷ /mcp req/s (target ≥ 0.9×)', fmtX(r.ratios.serverRouteToMcpRps)]);
  if (r.ratios.gatehouseToNginxP99 !== null) ratioRows.push(['gatehouse ÷ nginx p99', fmtX(r.ratios.gatehouseToNginxP99)]);
  if (r.ratios.gatehouseToNodeFloorP99 !== null) ratioRows.push(['gatehouse ÷ node floor p99 (issue 5 target ≤ 1.5×)', fmtX(r.ratios.gatehouseToNodeFloorP99)]);
  if (r.ratios.wideGrantToMcpRps !== null) ratioRows.push(['gatehouse, 50 servers × 20 tools grant ÷ 1 server req/s', fmtX(r.ratios.wideGrantToMcpRps)]);
  if (r.ratios.workersToNginxWorkersRps !== null) ratioRows.push(['gatehouse --workers N ÷ nginx N workers req/s', fmtX(r.ratios.workersToNginxWorkersRps)]);
  if (r.ratios.workersToOneRps !== null) ratioRows.push(['gatehouse --workers N ÷ gatehouse 1 process req/s', fmtX(r.ratios.workersToOneRps)]);
  if (ratioRows.length > 1) {
    out.push(table(ratioRows, ['l', 'r']));
    out.push('');
  }

  const info: string[][] = [['measurement', 'value']];
  const snap = (label: string, s: SnapshotMeasure | null): void => {
    if (!s) return;
    info.push([`${label}: control plane compile+sign+push`, `${fmtInt(s.publishMs)} ms`]);
    info.push([`${label}: publish → node serving`, `${fmtInt(s.applyMs)} ms`]);
    info.push([`${label}: commit → node serving`, `${fmtInt(s.endToEndMs)} ms`]);
    if (s.rssMb !== null) info.push([`${label}: node RSS (peak so far)`, `${fmtInt(s.rssMb)} MB (${fmtInt(s.peakRssMb ?? s.rssMb)} MB)`]);
  };
  if (r.baselineRssMb !== null) info.push(['node RSS, 1 key, after load', `${fmtInt(r.baselineRssMb)} MB`]);
  snap(r.snapshot10k ? `${fmtInt(r.snapshot10k.keys)} keys/${r.snapshot10k.servers} servers` : '', r.snapshot10k);
  snap(r.snapshot100k ? `${fmtInt(r.snapshot100k.keys)} keys` : '', r.snapshot100k);
  const rev = (label: string, v: RevocationMeasure | null): void => {
    if (!v) return;
    info.push([`${label}: revocation → 403, p50 / p99 / max (n=${v.samplesMs.length})`, `${fmtMs(v.p50Ms)} / ${fmtMs(v.p99Ms)} / ${fmtMs(v.maxMs)} ms`]);
  };
  rev(r.revocation ? `${fmtInt(r.revocation.keys)} keys` : '', r.revocation);
  rev(r.revocation100k ? `${fmtInt(r.revocation100k.keys)} keys (SPEC: one-key change applied in 10 ms)` : '', r.revocation100k);
  if (info.length > 1) {
    out.push(table(info, ['l', 'r']));
    out.push('');
  }

  const vrows: string[][] = [['SPEC §8 target', 'measured', 'target', 'result']];
  for (const v of r.verdicts) vrows.push([v.name, v.measured, v.target, v.pass === null ? 'SKIP' : v.pass ? 'PASS' : 'FAIL']);
  out.push(table(vrows, ['l', 'r', 'r', 'l']));

  for (const prof of r.profiles) {
    out.push('');
    const span = prof.windowed ? '' : ' (window not found: whole process life)';
    out.push(`CPU profile — ${prof.label}${span}: ${fmtInt(prof.busyMs)} ms busy, ${fmtInt(prof.idleMs)} ms idle (${prof.file})`);
    out.push(`  by package: ${prof.byPackage.map((x) => `${x.name} ${x.selfPct.toFixed(1)}%`).join(', ')}`);
    const p: string[][] = [['self %', 'self ms', 'function', 'where']];
    for (const h of prof.topSelf) p.push([h.selfPct.toFixed(1), fmtInt(h.selfMs), h.name, h.location]);
    out.push(table(p, ['r', 'r', 'l', 'l']));
    out.push('  inclusive, JavaScript of the repository and its dependencies:');
    const q: string[][] = [['total %', 'function', 'where']];
    for (const h of prof.topInclusive) q.push([h.totalPct.toFixed(1), h.name, h.location]);
    out.push(table(q, ['r', 'l', 'l']));
  }
  if (r.gatehouseWarnings.length > 0) {
    out.push('');
    out.push(`node warnings/errors logged during the run (${r.gatehouseWarnings.length}, first 5):`);
    for (const w of r.gatehouseWarnings.slice(0, 5)) out.push(`  ${w.slice(0, 300)}`);
  }
  if (r.notes.length > 0) {
    out.push('');
    for (const n of r.notes) out.push(`note: ${n}`);
  }
  out.push('');
  return out.join('\n');
}

/** JSON-friendly copy with numbers rounded. */
export function roundResults(value: unknown): unknown {
  if (typeof value === 'number') return round(value, 3);
  if (Array.isArray(value)) return value.map(roundResults);
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, roundResults(v)]));
  return value;
}
