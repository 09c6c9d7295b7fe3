/**
 * Developer tool (not part of `npm run bench`): instructions per /mcp tools/call of two checkouts of the
 * node, counted by valgrind (callgrind). On a shared box the CPU time of a request moves with whatever
 * else runs (two identical builds measured minutes apart differ by 10-20%, and the host's steal is not
 * even reported), while the number of instructions a request executes does not: this is the A/B to trust
 * for changes of a few percent. Not a latency or throughput figure (no cache misses, no syscall cost).
 *
 * How: one real upstream (`bench/procs/upstream.ts`); per checkout, a test node (its own
 * `test/data-plane/helpers.ts`) under `valgrind --tool=callgrind --instr-atstart=no`, warmed up (JIT) with
 * unmeasured calls; then each round measures A and B at the same time: `rewarm` unmeasured calls to each,
 * instrumentation on in both, exactly `n` tools/calls to each over 8 keep-alive connections (both loads
 * concurrent), instrumentation off, dump, instructions ÷ n. Measuring them one after the other (as this tool
 * first did) went wrong on a busy box: the node that had sat idle under valgrind for minutes while the other
 * was measured re-compiled code inside its measured round and read ~2× (2026-12-01: every second
 * measurement doubled, and a third of a round's instructions were TurboFan and lazy compilation); the
 * warm-up runs both nodes together for the same reason. Hence also `--no-flush-bytecode` and
 * `--no-memory-reducer` (no code dropped and no GCs while a node waits for its next round: what a node under
 * steady load has anyway, its code never goes idle) and `--single-threaded`: V8 then
 * compiles on the main thread when a function gets hot, during the warm-up, instead of in background
 * jobs that valgrind (one thread at a time, and slower still on a loaded box) ran late, inside the
 * measured rounds. The flags apply to both checkouts alike. Medians are printed; a
 * round that caught a major GC shows as an outlier, which the median ignores. With `--keep`, the dumps
 * stay in the printed directory, and V8's perf map (`/tmp/perf-<pid>.map`) lets `callgrind_annotate`'s
 * JIT addresses be named (see bench/README.md).
 *
 * Usage: node --import tsx bench/dev/instructions.ts <checkout A> <checkout B> [rounds=5] [n=3000] [warm-up n=6000] [re-warm n=500] [--keep]
 * Needs valgrind (apt install valgrind). Takes ~2 minutes per 5 rounds.
 *
 * With `--audit` (`instructions.ts --audit <checkout> <checkout>`, both the same): A and B are two whole nodes
 * (`data-plane/node/main.ts`) of this checkout on one control plane, A with GATEHOUSE_AUDIT=off and B with the
 * audit trail and the guardrail (redact) on, as `npm run bench` compares them: B − A is the node's own CPU
 * for auditing a call (sink, outbox, fsyncs, reading back and shipping), without the control plane's
 * storing (not under valgrind). B's batches linger 60 s (GATEHOUSE_AUDIT_LINGER_MS) so they fill to the
 * protocol's 1,000 events as at load; at the 250 ms default, a valgrind-slowed node would ship a few
 * events per batch and B − A would be mostly per-batch cost.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'undici';
import { ControlPlaneProcess, startGatehouseNode } from '../lib/gatehouse.js';
import { ROOT, startTs, stopAll } from '../lib/procs.js';
import { median } from '../lib/stats.js';

const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const keep = process.argv.includes('--keep');
const auditMode = process.argv.includes('--audit');
const [dirA, dirB] = [args[0], args[1]];
if (!dirA || !dirB) throw new Error('usage: instructions.ts <checkout A> <checkout B> [rounds] [n] [warm-up n] [re-warm n] [--keep]');
const rounds = Number(args[2] ?? 5);
const n = Number(args[3] ?? 3000);
const warmup = Number(args[4] ?? 6000);
const rewarm = Number(args[5] ?? 500);
const work = mkdtempSync(join(tmpdir(), 'gatehouse-instructions-'));
const VALGRIND_ARGS = ['--tool=callgrind', '--instr-atstart=no', '--smc-check=all-non-file', `--callgrind-out-file=${join(work, 'cg.%p')}`];
const NODE_ARGS = ['--single-threaded', '--no-flush-bytecode', '--no-memory-reducer'];

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
      let text: string;
      try {
        const res = await pool.request({ path: subject.url.pathname, method: 'POST', headers, body });
        text = await res.body.text();
      } catch (error) {
        // A keep-alive connection the valgrind-slowed node closed as the next request went out: send it again.
        if ((error as { code?: unknown }).code !== 'ECONNRESET' && (error as { code?: unknown }).code !== 'UND_ERR_SOCKET') throw error;
        sent--;
        continue;
      }
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

/** The number of dumps of `pid` so far. */
function dumpsOf(pid: number): number {
  return readdirSync(work).filter((f) => f.startsWith(`cg.${pid}.`)).length;
}

/**
 * One round: both nodes re-warmed, then measured at the same time (instrumentation on in both, `n` calls to
 * each, concurrently), so whatever depends on the wall clock (timers, GCs of an idle heap, V8's tiering
 * against a valgrind-slowed clock) falls on both alike; measured one after the other, the node that had
 * sat idle read up to 2× (see the module comment).
 */
async function measureBoth(subjects: readonly Subject[]): Promise<number[]> {
  await Promise.all(subjects.map((s) => calls(s, rewarm)));
  const pids = subjects.map((s) => s.proc.pid as number);
  const before = pids.map(dumpsOf);
  for (const pid of pids) control(pid, '-z');
  for (const pid of pids) control(pid, '-i', 'on');
  await Promise.all(subjects.map((s) => calls(s, n)));
  for (const pid of pids) control(pid, '-i', 'off');
  for (const pid of pids) control(pid, '-d');
  // callgrind writes the dump asynchronously to the request.
  for (let i = 0; i < 400 && pids.some((pid, k) => dumpsOf(pid) === before[k]); i++) await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 300));
  return pids.map((pid) => lastDumpTotal(pid) / n);
}

async function main(): Promise<void> {
  const up = startTs('upstream', join(ROOT, 'bench/procs/upstream.ts'), [], {});
  const upPort = (JSON.parse(await up.waitForLine((l) => l.includes('ready'), 30_000, 'ready')) as { port: number }).port;
  const script = join(work, 'node.mts');
  execFileSync('sh', ['-c', `cat > ${script}`], { input: NODE_SCRIPT });
  const subjects: Subject[] = auditMode ? await auditSubjects(`http://127.0.0.1:${upPort}/mcp`) : [];
  for (const [label, dir] of auditMode ? [] : ([['A', dirA], ['B', dirB]] as [string, string][])) {
    const out = join(work, `${label}.json`);
    const proc = spawn(
      'valgrind',
      [...VALGRIND_ARGS, process.execPath, ...NODE_ARGS, ...(keep ? ['--perf-basic-prof'] : []), '--import', 'tsx', script, dir, `http://127.0.0.1:${upPort}/mcp`, out],
      // valgrind's and the node's own messages go to a file beside the dumps, for when a node dies.
      { cwd: ROOT, stdio: ['ignore', 'ignore', openSync(join(work, `${label}.log`), 'w')] },
    );
    started.push(proc);
    for (let i = 0; i < 600 && !existsSync(out); i++) await new Promise((r) => setTimeout(r, 200));
    if (!existsSync(out)) throw new Error(`${label}: the node under valgrind did not start`);
    await new Promise((r) => setTimeout(r, 500));
    const { url, key } = JSON.parse(readFileSync(out, 'utf8')) as { url: string; key: string };
    subjects.push({ label: `${label} ${dir}`, proc, url: new URL(url), key, counts: [] });
  }
  // The first calls one node at a time (they connect upstream, which a cold node under valgrind sharing the
  // box may not do within the test node's 5 s connect timeout), the rest together: neither sits idle.
  for (const subject of subjects) await calls(subject, 50);
  await Promise.all(subjects.map((s) => calls(s, warmup)));
  for (let r = 0; r < rounds; r++) {
    const perCall = await measureBoth(subjects);
    const line: string[] = [];
    subjects.forEach((subject, k) => {
      subject.counts.push(perCall[k] as number);
      line.push(`${subject.label.slice(0, 1)} ${Math.round(perCall[k] as number).toLocaleString('en')}`);
    });
    console.log(`round ${r + 1}: ${line.join(' | ')} instructions/call (B/A ${((perCall[1] as number) / (perCall[0] as number)).toFixed(3)})`);
  }
  for (const s of subjects) console.log(`${s.label}: median ${Math.round(median(s.counts)).toLocaleString('en')} instructions per tools/call (min ${Math.round(Math.min(...s.counts)).toLocaleString('en')})`);
  const [a, b] = subjects as [Subject, Subject];
  console.log(`B/A: ${(median(b.counts) / median(a.counts)).toFixed(3)}`);
  // valgrind writes a last dump as its node exits: only then may the directory go.
  await Promise.all(subjects.map((s) => new Promise((resolve) => (s.proc.once('exit', resolve), s.proc.kill('SIGTERM')))));
  if (keep) console.log(`dumps kept in ${work} (node pids ${subjects.map((s) => s.proc.pid).join(', ')})`);
  else rmSync(work, { recursive: true, force: true });
}

/** `--audit`: a control plane, and two whole nodes of this checkout under valgrind, audit off (A) and on (B). */
async function auditSubjects(upstreamUrl: string): Promise<Subject[]> {
  const cp = await ControlPlaneProcess.start();
  const server = await cp.gql<{ createMcpServer: { errors: unknown[] } }>(`mutation($input: CreateMcpServerInput!) { createMcpServer(input: $input) { errors { message } } }`, {
    input: { name: 'bench', connectionType: 'HTTP', connectionString: upstreamUrl, authType: 'HEADERS', headers: [{ name: 'Authorization', value: 'Bearer x' }], toolsToExecute: ['*'] },
  });
  if (server.createMcpServer.errors.length) throw new Error(JSON.stringify(server.createMcpServer.errors));
  await cp.gql(`mutation { setAuditSettings(input: { scope: SERVER, target: "bench", guardrail: REDACT }) { errors { message } } }`);
  const user = await cp.gql<{ createUser: { user: { id: string } } }>(`mutation { createUser(input: { email: "i@example.com", name: "I" }) { user { id } } }`);
  const issued = await cp.gql<{ createVirtualKey: { key: string } }>(`mutation($input: CreateVirtualKeyInput!) { createVirtualKey(input: $input) { key } }`, {
    input: { userId: user.createUser.user.id, name: 'k', servers: [{ server: 'bench', tools: ['*'] }] },
  });
  const subjects: Subject[] = [];
  for (const [label, env] of [['A audit off', { GATEHOUSE_AUDIT: 'off' }], ['B audit on', { GATEHOUSE_AUDIT_LINGER_MS: '60000' }]] as [string, Record<string, string>][]) {
    const node = await startGatehouseNode({
      controlPlaneUrl: cp.url,
      nodeToken: cp.ready.nodeToken,
      nodeId: `instructions-${label.slice(0, 1)}`,
      env,
      valgrind: { args: VALGRIND_ARGS, nodeArgs: [...NODE_ARGS, ...(keep ? ['--perf-basic-prof'] : [])], startTimeoutMs: 300_000 },
    });
    started.push(node.proc.proc);
    subjects.push({ label, proc: node.proc.proc, url: new URL(`${node.url}/mcp`), key: issued.createVirtualKey.key, counts: [] });
  }
  return subjects;
}

/** The valgrind processes started, so a failed run does not leave them running (they would skew the next). */
const started: ChildProcess[] = [];

main().then(
  () => stopAll().then(() => process.exit(0)),
  (error: unknown) => {
    console.error(error);
    for (const proc of started) if (proc.exitCode === null) proc.kill('SIGKILL');
    void stopAll().then(() => process.exit(1));
  },
);
