/**
 * Developer tool (not part of `npm run bench`): instructions per /mcp tools/call of two checkouts of the
 * node, counted by valgrind (callgrind). On a shared box the CPU time of a request moves with whatever
 * else runs (two identical builds measured minutes apart differ by 10-20%, and the host's steal is not
 * even reported), while the number of instructions a request executes does not: this is the A/B to trust
 * for changes of a few percent. Not a latency or throughput figure (no cache misses, no syscall cost).
 *
 * How: one real upstream (`bench/procs/upstream.ts`); per checkout, a test node (its own
 * `test/data-plane/helpers.ts`) under `valgrind --tool=callgrind --instr-atstart=no`, warmed up (JIT) with
 * unmeasured calls; then rounds alternate between A and B: instrumentation on, exactly `n` tools/calls
 * over 8 keep-alive connections, instrumentation off, dump, instructions ÷ n. Medians are printed; a
 * round that caught a major GC shows as an outlier, which the median ignores. With `--keep`, the dumps
 * stay in the printed directory, and V8's perf map (`/tmp/perf-<pid>.map`) lets `callgrind_annotate`'s
 * JIT addresses be named (see bench/README.md).
 *
 * Usage: node --import tsx bench/dev/instructions.ts <checkout A> <checkout B> [rounds=5] [n=3000] [warm-up n=6000] [--keep]
 * Needs valgrind (apt install valgrind). Takes ~2 minutes per 5 rounds.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'undici';
import { ROOT, startTs, stopAll } from '../lib/procs.js';
import { median } from '../lib/stats.js';

const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const keep = process.argv.includes('--keep');
const [dirA, dirB] = [args[0], args[1]];
if (!dirA || !dirB) throw new Error('usage: instructions.ts <checkout A> <checkout B> [rounds] [n] [warm-up n] [--keep]');
const rounds = Number(args[2] ?? 5);
const n = Number(args[3] ?? 3000);
const warmup = Number(args[4] ?? 6000);
const work = mkdtempSync(join(tmpdir(), 'gatehouse-instructions-'));

/** The node under valgrind: a test node of `dir` against `upstreamUrl`, which writes `{url, key}` to `out`. */
const NODE_SCRIPT = `
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
const [dir, upstreamUrl, out] = process.argv.slice(2);
const helpers = await import(join(dir, 'test/data-plane/helpers.ts'));
const node = await helpers.startTestNode();
const snapshot = await helpers.buildSnapshot({ servers: [{ name: 'bench', url: upstreamUrl, headers: { authorization: { secret: 'Bearer x' } } }], keys: [{ name: 'k', servers: [{ server: 'bench', tools: ['*'] }] }] });
node.apply(snapshot);
writeFileSync(out, JSON.stringify({ url: node.mcpUrl, key: snapshot.keyValues.k }));
setInterval(() => undefined, 1 << 30);
`;

interface Subject {
  label: string;
  proc: ChildProcess;
  url: URL;
  key: string;
  counts: number[];
}

async function calls(subject: Subject, count: number): Promise<void> {
  const pool = new Pool(subject.url.origin, { connections: 8, pipelining: 1 });
  const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'bench-echo', arguments: { text: 'hello' } } });
  let sent = 0;
  const headers = { authorization: `Bearer ${subject.key}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-06-18' };
  const worker = async (): Promise<void> => {
    while (sent < count) {
      sent++;
      const res = await pool.request({ path: subject.url.pathname, method: 'POST', headers, body });
      const text = await res.body.text();
      if (!text.includes('"ok"')) throw new Error(`${subject.label}: unexpected answer ${text.slice(0, 200)}`);
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  await pool.close();
}

function control(pid: number, ...command: string[]): void {
  execFileSync('callgrind_control', [...command, String(pid)], { stdio: 'ignore' });
}

/** Total instructions of the newest dump of `pid`. */
function lastDumpTotal(pid: number): number {
  const dumps = readdirSync(work)
    .filter((f) => f.startsWith(`cg.${pid}.`))
    .map((f) => join(work, f))
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  const text = readFileSync(dumps[0] as string, 'utf8');
  const total = /^totals: (\d+)/m.exec(text);
  if (!total) throw new Error(`no totals in ${dumps[0]}`);
  return Number(total[1]);
}

async function measure(subject: Subject): Promise<number> {
  const pid = subject.proc.pid as number;
  const before = readdirSync(work).length;
  control(pid, '-z');
  control(pid, '-i', 'on');
  await calls(subject, n);
  control(pid, '-i', 'off');
  control(pid, '-d');
  // callgrind writes the dump asynchronously to the request.
  for (let i = 0; i < 200 && readdirSync(work).length === before; i++) await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 300));
  return lastDumpTotal(pid) / n;
}

async function main(): Promise<void> {
  const up = startTs('upstream', join(ROOT, 'bench/procs/upstream.ts'), [], {});
  const upPort = (JSON.parse(await up.waitForLine((l) => l.includes('ready'), 30_000, 'ready')) as { port: number }).port;
  const script = join(work, 'node.mts');
  execFileSync('sh', ['-c', `cat > ${script}`], { input: NODE_SCRIPT });
  const subjects: Subject[] = [];
  for (const [label, dir] of [['A', dirA], ['B', dirB]] as [string, string][]) {
    const out = join(work, `${label}.json`);
    const proc = spawn(
      'valgrind',
      ['--tool=callgrind', '--instr-atstart=no', '--smc-check=all-non-file', `--callgrind-out-file=${join(work, 'cg.%p')}`, process.execPath, ...(keep ? ['--perf-basic-prof'] : []), '--import', 'tsx', script, dir, `http://127.0.0.1:${upPort}/mcp`, out],
      { cwd: ROOT, stdio: 'ignore' },
    );
    for (let i = 0; i < 600 && !existsSync(out); i++) await new Promise((r) => setTimeout(r, 200));
    if (!existsSync(out)) throw new Error(`${label}: the node under valgrind did not start`);
    await new Promise((r) => setTimeout(r, 500));
    const { url, key } = JSON.parse(readFileSync(out, 'utf8')) as { url: string; key: string };
    subjects.push({ label: `${label} ${dir}`, proc, url: new URL(url), key, counts: [] });
  }
  for (const subject of subjects) await calls(subject, warmup);
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? subjects : [...subjects].reverse();
    const line: string[] = [];
    for (const subject of order) {
      const perCall = await measure(subject);
      subject.counts.push(perCall);
      line.push(`${subject.label.slice(0, 1)} ${Math.round(perCall).toLocaleString('en')}`);
    }
    console.log(`round ${r + 1}: ${line.join(' | ')} instructions/call`);
  }
  for (const s of subjects) console.log(`${s.label}: median ${Math.round(median(s.counts)).toLocaleString('en')} instructions per tools/call (min ${Math.round(Math.min(...s.counts)).toLocaleString('en')})`);
  const [a, b] = subjects as [Subject, Subject];
  console.log(`B/A: ${(median(b.counts) / median(a.counts)).toFixed(3)}`);
  // valgrind writes a last dump as its node exits: only then may the directory go.
  await Promise.all(subjects.map((s) => new Promise((resolve) => (s.proc.once('exit', resolve), s.proc.kill('SIGTERM')))));
  if (keep) console.log(`dumps kept in ${work} (node pids ${subjects.map((s) => s.proc.pid).join(', ')})`);
  else rmSync(work, { recursive: true, force: true });
}

main().then(
  () => stopAll().then(() => process.exit(0)),
  (error: unknown) => {
    console.error(error);
    void stopAll().then(() => process.exit(1));
  },
);
