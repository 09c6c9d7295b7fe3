/**
 * Fallback load generator, used when `wrk` is not installed: closed-loop HTTP/1.1 load from an undici
 * `Pool` (one keep-alive connection per concurrent request), in its own process so it does not share an
 * event loop with anything it measures. Node spends more CPU per request than wrk, and on a 2-core box
 * that CPU is taken from the systems under test, so absolute numbers are lower than with wrk; the ratios
 * (same generator for every system) are what to read.
 *
 * Input: one JSON argument (see `LoadSpec` in bench/lib/load.ts). Runs `warmupMs` unrecorded, then
 * `durationMs` recorded; prints one line `BENCH_JSON {...}` in the same shape as bench/wrk/post.lua.
 */
import { Pool } from 'undici';

interface Spec {
  url: string;
  body: string;
  headers: Record<string, string>;
  connections: number;
  durationMs: number;
  warmupMs: number;
}

const spec = JSON.parse(process.argv[2] ?? '{}') as Spec;
const target = new URL(spec.url);
const pool = new Pool(target.origin, { connections: spec.connections, pipelining: 1, keepAliveTimeout: 60_000 });
const headers = { 'content-type': 'application/json', ...spec.headers };

let recording = false;
let stopping = false;
let requests = 0;
const errors = { connect: 0, read: 0, write: 0, status: 0, timeout: 0 };
// Microseconds, like wrk; grown as needed.
let latencies = new Float64Array(1 << 18);
let count = 0;

function record(us: number): void {
  if (count === latencies.length) {
    const bigger = new Float64Array(latencies.length * 2);
    bigger.set(latencies);
    latencies = bigger;
  }
  latencies[count++] = us;
}

async function worker(): Promise<void> {
  while (!stopping) {
    const started = performance.now();
    try {
      const res = await pool.request({ path: target.pathname, method: 'POST', headers, body: spec.body, headersTimeout: 5_000, bodyTimeout: 5_000 });
      await res.body.dump({ limit: 1 << 20 });
      if (!recording) continue;
      requests += 1;
      record((performance.now() - started) * 1000);
      if (res.statusCode < 200 || res.statusCode >= 400) errors.status += 1;
    } catch (error) {
      if (!recording) continue;
      const code = (error as { code?: string }).code ?? '';
      if (code.includes('TIMEOUT')) errors.timeout += 1;
      else if (code.includes('CONNECT') || code === 'ECONNREFUSED') errors.connect += 1;
      else errors.read += 1;
    }
  }
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index] ?? 0;
}

const workers = Array.from({ length: spec.connections }, () => worker());
await new Promise((r) => setTimeout(r, spec.warmupMs));
recording = true;
// Markers for the parent, which reads CPU counters around the recorded part.
process.stdout.write('BENCH_RECORDING\n');
const started = performance.now();
await new Promise((r) => setTimeout(r, spec.durationMs));
recording = false;
process.stdout.write('BENCH_RECORDED\n');
const elapsedUs = (performance.now() - started) * 1000;
stopping = true;
await Promise.all(workers);
await pool.close();

const sorted = latencies.slice(0, count).sort();
let sum = 0;
for (const v of sorted) sum += v;
const line = {
  requests,
  durationUs: Math.round(elapsedUs),
  errors,
  latencyUs: {
    p50: Math.round(percentile(sorted, 50)),
    p90: Math.round(percentile(sorted, 90)),
    p99: Math.round(percentile(sorted, 99)),
    max: Math.round(sorted[sorted.length - 1] ?? 0),
    mean: count > 0 ? sum / count : 0,
  },
};
process.stdout.write(`BENCH_JSON ${JSON.stringify(line)}\n`);
process.exit(0);
