/**
 * Reads a V8 `.cpuprofile` (written by `node --cpu-prof`) and returns where the time went: self time
 * (samples whose top frame is the function) and inclusive time (samples with the function anywhere on the
 * stack), per function + source location. Used by `npm run bench -- --profile` to point at the node's hot
 * path without opening DevTools.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './procs.js';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  /** Monotonic clock, microseconds (the clock `process.hrtime` reads on Linux). */
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** A span of the monotonic clock in microseconds, e.g. from `process.hrtime.bigint() / 1000n`. */
export interface TimeWindow {
  startUs: number;
  endUs: number;
}

export interface HotFunction {
  name: string;
  location: string;
  selfMs: number;
  selfPct: number;
  totalMs: number;
  totalPct: number;
}

export interface ProfileSummary {
  /** Which process and which part of the run, e.g. "node: tools/call load". */
  label: string;
  file: string;
  /** Whether only the samples inside the load run were counted (else the node's whole life). */
  windowed: boolean;
  /** Sampled time excluding (idle), ms. */
  busyMs: number;
  idleMs: number;
  topSelf: HotFunction[];
  /** Inclusive time of JavaScript functions from the repository and its dependencies (not Node internals). */
  topInclusive: HotFunction[];
  /** Self time per package or area (native frames counted with the JavaScript that called them). */
  byPackage: Array<{ name: string; selfPct: number }>;
}

/** `undici`, `@modelcontextprotocol/sdk`, `data-plane/mcp`, `node:stream`, `(garbage collector)`… */
function packageOf(frame: CallFrame): string {
  const url = frame.url;
  if (!url) return frame.functionName.startsWith('(') ? frame.functionName : '(native)';
  const dep = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (dep?.[1]) return dep[1];
  const internal = /^node:(?:internal\/)?([^/:]+)/.exec(url);
  if (internal?.[1]) return `node:${internal[1]}`;
  const own = /((?:data-plane|control-plane|bench)\/[^/]+)/.exec(url);
  if (own?.[1]) return own[1].replace(/\.ts$/, '');
  return url.startsWith('wasm://') ? 'wasm (llhttp)' : url;
}

function location(frame: CallFrame): string {
  let url = frame.url;
  if (url.startsWith('file://')) url = url.slice('file://'.length);
  if (url.startsWith(ROOT + '/')) url = url.slice(ROOT.length + 1);
  url = url.replace(/^node_modules\//, '').replace(/^.*\/node_modules\//, '');
  if (!url) return '(native)';
  // tsx compiles each .ts file to one line (no source map in the profile): the line says nothing there.
  return url.endsWith('.ts') && frame.lineNumber === 0 ? url : `${url}:${frame.lineNumber + 1}`;
}

/**
 * The main thread's profile in `dir`. `--import tsx` runs its module hooks on a worker thread, which
 * writes a profile of its own; the main thread's (the one serving requests) is by far the biggest.
 */
export function mainThreadProfile(dir: string): string | null {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((f) => ({ path: join(dir, f), size: statSync(join(dir, f)).size }))
    .sort((a, b) => b.size - a.size);
  return files[0]?.path ?? null;
}

export function summarizeProfile(label: string, file: string, window: TimeWindow | null, top = 12): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const node of profile.nodes) {
    byId.set(node.id, node);
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  const keyOf = (node: ProfileNode): string => `${node.callFrame.functionName || '(anonymous)'}\u0000${location(node.callFrame)}`;
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  const packages = new Map<string, number>();
  let idleUs = 0;
  let busyUs = 0;
  let at = profile.startTime;
  // Only the load run when its window overlaps the profile (same clock), so start-up does not count.
  const lastAt = profile.startTime + profile.timeDeltas.reduce((a, b) => a + b, 0);
  const win = window !== null && window.startUs < lastAt && window.endUs > profile.startTime ? window : null;
  profile.samples.forEach((id, i) => {
    const delta = profile.timeDeltas[i] ?? 0;
    at += delta;
    if (win && (at < win.startUs || at > win.endUs)) return;
    const node = byId.get(id);
    if (!node) return;
    if (node.callFrame.functionName === '(idle)') {
      idleUs += delta;
      return;
    }
    busyUs += delta;
    const key = keyOf(node);
    self.set(key, (self.get(key) ?? 0) + delta);
    // A native leaf (a syscall, a builtin) is charged to the nearest JavaScript frame's package.
    let owner: ProfileNode = node;
    for (let cur: number | undefined = id; cur !== undefined && !owner.callFrame.url && !owner.callFrame.functionName.startsWith('('); ) {
      cur = parent.get(cur);
      const next = cur === undefined ? undefined : byId.get(cur);
      if (!next || next.callFrame.functionName === '(root)') break;
      owner = next;
    }
    const pkg = packageOf(owner.callFrame);
    packages.set(pkg, (packages.get(pkg) ?? 0) + delta);
    // Each function once per sample, however deep the recursion.
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const frame = byId.get(cur);
      if (!frame || frame.callFrame.functionName === '(root)') continue;
      const k = keyOf(frame);
      if (seen.has(k)) continue;
      seen.add(k);
      total.set(k, (total.get(k) ?? 0) + delta);
    }
  });
  const toHot = (key: string): HotFunction => {
    const [name = '', loc = ''] = key.split('\u0000');
    const s = self.get(key) ?? 0;
    const t = total.get(key) ?? 0;
    return { name, location: loc, selfMs: s / 1000, selfPct: (100 * s) / busyUs, totalMs: t / 1000, totalPct: (100 * t) / busyUs };
  };
  const topSelf = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k]) => toHot(k));
  const ranked = [...total.entries()]
    .filter(([k]) => {
      const loc = k.split('\u0000')[1] ?? '';
      return loc !== '(native)' && !loc.startsWith('node:') && !loc.startsWith('tsx/');
    })
    .sort((a, b) => b[1] - a[1])
    .map(([k]) => toHot(k));
  // A chain of thin wrappers (kysely's executeQuery → provideConnection → …) shows as many entries with
  // the same total: keep the first of each run within one package.
  const topInclusive: HotFunction[] = [];
  for (const h of ranked) {
    const prev = topInclusive[topInclusive.length - 1];
    const pkgOf = (x: HotFunction): string => x.location.split('/')[0] ?? '';
    if (prev && pkgOf(prev) === pkgOf(h) && Math.abs(prev.totalPct - h.totalPct) < 0.3) continue;
    topInclusive.push(h);
    if (topInclusive.length === top) break;
  }
  const byPackage = [...packages.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 10)
    .map(([name, us]) => ({ name, selfPct: (100 * us) / busyUs }));
  return { label, file, windowed: win !== null, busyMs: busyUs / 1000, idleMs: idleUs / 1000, topSelf, topInclusive, byPackage };
}
