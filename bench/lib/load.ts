/**
 * One load run against one system: `tools/call` POSTs at a fixed number of concurrent keep-alive
 * connections (closed loop: each connection sends its next request when the previous answer arrives),
 * a warm-up that is thrown away (JIT, connection pools, nginx upstream keep-alive), then a recorded run.
 *
 * Generators: `wrk` with bench/wrk/post.lua when installed (C, cheap per request, so the CPU it takes
 * from the systems under test is small and the same for all of them), else bench/procs/loadgen.ts
 * (undici, own process). Both print the same `BENCH_JSON` line, parsed here.
 */
import { join } from 'node:path';
import { ROOT, startProcess, startTs } from './procs.js';

export type Generator = { kind: 'wrk'; binary: string; threads: number } | { kind: 'undici' };

export interface LoadSpec {
  url: string;
  body: string;
  /** Full `Authorization` header value, or null to send none. */
  authorization: string | null;
  connections: number;
  durationS: number;
  warmupS: number;
}

export interface LoadResult {
  requests: number;
  durationS: number;
  rps: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  meanMs: number;
  /** Socket errors, timeouts and non-2xx/3xx answers. */
  errors: number;
  errorDetail: Record<string, number>;
}

interface RawLine {
  requests: number;
  durationUs: number;
  errors: Record<string, number>;
  latencyUs: { p50: number; p90: number; p99: number; max: number; mean: number };
}

const MCP_HEADERS = { accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-06-18' };

function parse(lines: readonly string[], what: string): RawLine {
  const line = lines.find((l) => l.startsWith('BENCH_JSON '));
  if (!line) throw new Error(`${what}: no result line\n${lines.slice(-20).join('\n')}`);
  return JSON.parse(line.slice('BENCH_JSON '.length)) as RawLine;
}

async function runWrk(binary: string, threads: number, spec: LoadSpec, seconds: number): Promise<RawLine> {
  const args = ['-t', String(Math.min(threads, spec.connections)), '-c', String(spec.connections), '-d', `${seconds}s`, '--timeout', '5s', '-s', join(ROOT, 'bench/wrk/post.lua'), spec.url];
  const proc = startProcess('wrk', binary, args, {
    env: { ...process.env, BENCH_BODY: spec.body, BENCH_AUTH: spec.authorization ?? '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const { code } = await proc.exited;
  if (code !== 0) throw new Error(`wrk exited with ${code}\n${proc.tail()}`);
  return parse(proc.lines, 'wrk');
}

/** Called around the recorded part of a run (not the warm-up), e.g. to read CPU counters. */
export interface RecordHooks {
  start(): void;
  end(): void;
}

async function runUndici(spec: LoadSpec, hooks: RecordHooks | undefined): Promise<RawLine> {
  const headers: Record<string, string> = { ...MCP_HEADERS };
  if (spec.authorization) headers.authorization = spec.authorization;
  const input = { url: spec.url, body: spec.body, headers, connections: spec.connections, durationMs: spec.durationS * 1000, warmupMs: spec.warmupS * 1000 };
  const proc = startTs('loadgen', join(ROOT, 'bench/procs/loadgen.ts'), [JSON.stringify(input)]);
  proc.proc.stdin?.end();
  proc.onLine((line) => {
    if (line === 'BENCH_RECORDING') hooks?.start();
    if (line === 'BENCH_RECORDED') hooks?.end();
  });
  const { code } = await proc.exited;
  if (code !== 0) throw new Error(`undici load generator exited with ${code}\n${proc.tail()}`);
  return parse(proc.lines, 'undici load generator');
}

export async function runLoad(generator: Generator, spec: LoadSpec, hooks?: RecordHooks): Promise<LoadResult> {
  let raw: RawLine;
  if (generator.kind === 'wrk') {
    // Warm-up: a separate short run whose numbers are discarded.
    if (spec.warmupS > 0) await runWrk(generator.binary, generator.threads, spec, spec.warmupS);
    hooks?.start();
    raw = await runWrk(generator.binary, generator.threads, spec, spec.durationS);
    hooks?.end();
  } else {
    raw = await runUndici(spec, hooks);
  }
  const durationS = raw.durationUs / 1e6;
  const errors = Object.values(raw.errors).reduce((a, b) => a + b, 0);
  return {
    requests: raw.requests,
    durationS,
    rps: durationS > 0 ? raw.requests / durationS : 0,
    p50Ms: raw.latencyUs.p50 / 1000,
    p90Ms: raw.latencyUs.p90 / 1000,
    p99Ms: raw.latencyUs.p99 / 1000,
    maxMs: raw.latencyUs.max / 1000,
    meanMs: raw.latencyUs.mean / 1000,
    errors,
    errorDetail: Object.fromEntries(Object.entries(raw.errors).filter(([, n]) => n > 0)),
  };
}

/** One request through undici, for the sanity checks before and after each load run. */
export async function postOnce(url: string, body: string, authorization: string | null): Promise<{ status: number; text: string }> {
  const headers: Record<string, string> = { 'content-type': 'application/json', ...MCP_HEADERS };
  if (authorization) headers.authorization = authorization;
  const res = await fetch(url, { method: 'POST', headers, body, signal: AbortSignal.timeout(10_000) });
  return { status: res.status, text: await res.text() };
}
