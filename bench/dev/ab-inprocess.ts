/**
 * Developer tool (not part of `npm run bench`): A/B of two checkouts of the node's hot path in ONE process,
 * interleaved. On a shared box whose host steals CPU unpredictably, two runs minutes apart differ by more
 * than most changes do; here both versions are loaded side by side (each its own test node from
 * `test/data-plane/helpers.ts` of its checkout, the same real upstream process), and the load alternates
 * between them every few seconds, so both see the same box. Reported: process CPU µs per tools/call
 * (`process.cpuUsage`, the load generator and upstream are other processes), req/s and p99, per round
 * and as medians.
 *
 * Usage: node --import tsx bench/dev/ab-inprocess.ts <checkout A> <checkout B> [seconds=3] [rounds=6] [connections=32]
 */
import { join } from 'node:path';
import { runLoad } from '../lib/load.js';
import { ROOT, startTs, stopAll } from '../lib/procs.js';
import { median } from '../lib/stats.js';

interface Helpers {
  buildSnapshot(config: unknown): Promise<{ keyValues: Record<string, string> }>;
  startTestNode(): Promise<{ mcpUrl: string; apply(snapshot: unknown): unknown; close(): Promise<void> }>;
}

const dirA = process.argv[2];
const dirB = process.argv[3];
if (!dirA || !dirB) throw new Error('usage: ab-inprocess.ts <checkout A> <checkout B> [seconds] [rounds] [connections]');
const seconds = Number(process.argv[4] ?? 3);
const rounds = Number(process.argv[5] ?? 6);
const connections = Number(process.argv[6] ?? 32);

async function main(): Promise<void> {
  const up = startTs('upstream', join(ROOT, 'bench/procs/upstream.ts'), [], {});
  const upPort = (JSON.parse(await up.waitForLine((l) => l.includes('ready'), 30_000, 'ready')) as { port: number }).port;
  const generator = { kind: 'wrk' as const, binary: '/usr/bin/wrk', threads: 1 };
  const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'bench-echo', arguments: { text: 'hello' } } });
  const variants: { label: string; url: string; authorization: string; cpu: number[]; rps: number[]; p99: number[] }[] = [];
  for (const [label, dir] of [['A', dirA], ['B', dirB]] as [string, string][]) {
    const helpers = (await import(join(dir, 'test/data-plane/helpers.ts'))) as Helpers;
    const node = await helpers.startTestNode();
    const snapshot = await helpers.buildSnapshot({
      servers: [{ name: 'bench', url: `http://127.0.0.1:${upPort}/mcp`, headers: { authorization: { secret: 'Bearer x' } } }],
      keys: [{ name: 'k', servers: [{ server: 'bench', tools: ['*'] }] }],
    });
    node.apply(snapshot);
    const authorization = `Bearer ${snapshot.keyValues.k as string}`;
    variants.push({ label: `${label} ${dir}`, url: node.mcpUrl, authorization, cpu: [], rps: [], p99: [] });
  }
  for (const v of variants) await runLoad(generator, { url: v.url, body, authorization: v.authorization, connections, durationS: 2, warmupS: 0 });
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? variants : [...variants].reverse();
    const line: string[] = [];
    for (const v of order) {
      const before = process.cpuUsage();
      const result = await runLoad(generator, { url: v.url, body, authorization: v.authorization, connections, durationS: seconds, warmupS: 0 });
      const used = process.cpuUsage(before);
      const cpu = (used.user + used.system) / result.requests;
      v.cpu.push(cpu);
      v.rps.push(result.rps);
      v.p99.push(result.p99Ms);
      line.push(`${v.label.slice(0, 1)} ${cpu.toFixed(1)} µs ${result.rps.toFixed(0)} req/s p99 ${result.p99Ms.toFixed(1)} errors ${result.errors}`);
    }
    console.log(`round ${r + 1}: ${line.join(' | ')}`);
  }
  for (const v of variants) console.log(`${v.label}: median ${median(v.cpu).toFixed(1)} µs CPU/req (min ${Math.min(...v.cpu).toFixed(1)}), ${median(v.rps).toFixed(0)} req/s, p99 ${median(v.p99).toFixed(1)} ms`);
  const [a, b] = variants as [(typeof variants)[0], (typeof variants)[0]];
  const ratios = a.cpu.map((x, i) => (b.cpu[i] as number) / x);
  console.log(`B/A CPU per request: median ${median(ratios).toFixed(3)} (per round ${ratios.map((x) => x.toFixed(3)).join(' ')})`);
}

main().then(
  () => stopAll().then(() => process.exit(0)),
  (error: unknown) => {
    console.error(error);
    void stopAll().then(() => process.exit(1));
  },
);
