/**
 * Developer tool (not part of `npm run bench`): CPU microseconds per tools/call of the node (user and
 * system, from /proc) against the node floor, under a modest closed-loop wrk load. CPU per request is
 * steadier than req/s on a shared box, and says where a change helps before the full bench is run.
 *
 * Usage: node --import tsx bench/dev/cpu-per-request.ts [seconds=5] [connections=16] [--audit] [--profile DIR]
 * Environment:
 *   ONLY=mcp|server      measure only /mcp (with DUMP_FLOOR=file: then the floor too) or /mcp/{server}
 *   NODE_FLAGS='…'       NODE_OPTIONS for the node, e.g. `--import ./gc-trace.mjs` where that module runs
 *                        `v8.setFlagsFromString('--trace-gc-nvp')` (V8 refuses --trace-gc in NODE_OPTIONS);
 *                        with DUMP_NODE=file the node's output lands in a file: sum `allocated` and
 *                        `promoted` over the scavenges to see how much of a request's garbage survives
 *   FLOOR_FLAGS='…'      node flags for the floor proxy
 *   STRACE=1 / PERF=1    syscalls per request (strace -c) / a perf record of the node (--perf-basic-prof)
 */
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ControlPlaneProcess, startGatehouseNode } from '../lib/gatehouse.js';
import { runLoad } from '../lib/load.js';
import { ROOT, startTs, stopAll } from '../lib/procs.js';

const args = process.argv.slice(2);
const seconds = Number(args[0] ?? 5);
const connections = Number(args[1] ?? 16);
const audit = args.includes('--audit');
const profileAt = args.indexOf('--profile');
const profileDir = profileAt >= 0 ? args[profileAt + 1] : undefined;

function cpuTicks(pid: number): number {
  const [user, system] = cpuSplit(pid);
  return user + system;
}
function cpuSplit(pid: number): [number, number] {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return [Number(fields[11]), Number(fields[12])]; // utime, stime (clock ticks, 100/s)
}

/** The control plane's pid, when its CPU per request is reported too (it stores the audit events). */
let controlPlanePid: number | null = null;

async function measure(label: string, pid: number, url: string, body: string, authorization: string | null): Promise<void> {
  const generator = { kind: 'wrk' as const, binary: '/usr/bin/wrk', threads: 1 };
  await runLoad(generator, { url, body, authorization, connections, durationS: 2, warmupS: 0 });
  const before = cpuTicks(pid);
  const cpBefore = controlPlanePid ? cpuTicks(controlPlanePid) : 0;
  const split0 = cpuSplit(pid);
  const perf = process.env.PERF ? spawn('perf', ['record', '-F', '4999', '-g', '-p', String(pid), '-o', `/tmp/perf-${label.replace(/\W+/g, '_')}.data`], { stdio: 'ignore' }) : null;
  const tracer = process.env.STRACE ? spawn('strace', ['-c', '-f', '-p', String(pid), '-o', `/tmp/strace-${pid}.txt`]) : null;
  const r = await runLoad(generator, { url, body, authorization, connections, durationS: seconds, warmupS: 0 });
  const ticks = cpuTicks(pid) - before;
  // The control plane goes on storing what the node shipped during the run; its CPU is read a second
  // later so the batches of the run's last 250 ms are in it.
  if (controlPlanePid) await new Promise((resolve) => setTimeout(resolve, 1000));
  const cpUs = controlPlanePid ? ((cpuTicks(controlPlanePid) - cpBefore) * 10_000) / r.requests : null;
  const split1 = cpuSplit(pid);
  const userUs = ((split1[0] - split0[0]) * 10_000) / r.requests;
  const sysUs = ((split1[1] - split0[1]) * 10_000) / r.requests;
  if (perf) {
    const done = new Promise((r) => perf.once('exit', r));
    perf.kill('SIGINT');
    await done;
  }
  if (tracer) {
    const done = new Promise((r) => tracer.once('exit', r));
    tracer.kill('SIGINT');
    await done;
    const lines = readFileSync(`/tmp/strace-${pid}.txt`, 'utf8').split('\n').filter((l) => /^\s*\d/.test(l));
    for (const l of lines.slice(0, 8)) {
      const f = l.trim().split(/\s+/);
      console.log(`    ${f[f.length - 1]}: ${(Number(f[3]) / r.requests).toFixed(2)} calls/req`);
    }
  }
  const rssMb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
  console.log(`${label.padEnd(28)} ${r.rps.toFixed(0).padStart(7)} req/s  p99 ${r.p99Ms.toFixed(2).padStart(6)} ms  ${((ticks * 10_000) / r.requests).toFixed(1).padStart(6)} µs CPU/req (user ${userUs.toFixed(1)}, sys ${sysUs.toFixed(1)})  RSS ${rssMb.toFixed(0)} MB  errors ${r.errors}${cpUs !== null ? `  control plane ${cpUs.toFixed(1)} µs CPU/req` : ''}`);
}

async function main(): Promise<void> {
  const up = startTs('upstream', join(ROOT, 'bench/procs/upstream.ts'), [], {});
  const upPort = (JSON.parse(await up.waitForLine((l) => l.includes('ready'), 30_000, 'ready')) as { port: number }).port;
  const upstreamUrl = `http://127.0.0.1:${upPort}/mcp`;
  const floor = startTs('floor', join(ROOT, 'bench/procs/node-proxy.ts'), [`http://127.0.0.1:${upPort}`], { nodeArgs: [...(profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir + '/floor'] : []), ...(process.env.FLOOR_FLAGS ? process.env.FLOOR_FLAGS.split(' ') : [])] });
  const floorPort = (JSON.parse(await floor.waitForLine((l) => l.includes('ready'), 30_000, 'ready')) as { port: number }).port;
  const cp = await ControlPlaneProcess.start();
  controlPlanePid = cp.proc.pid;
  await cp.gql(`mutation($input: CreateMcpServerInput!) { createMcpServer(input: $input) { errors { message } } }`, {
    input: { name: 'bench', connectionType: 'HTTP', connectionString: upstreamUrl, authType: 'HEADERS', headers: [{ name: 'Authorization', value: 'Bearer x' }], toolsToExecute: ['*'] },
  });
  const user = await cp.gql<{ createUser: { user: { id: string } } }>(`mutation { createUser(input: { email: "b@example.com", name: "B" }) { user { id } } }`);
  const issued = await cp.gql<{ createVirtualKey: { key: string } }>(
    `mutation($input: CreateVirtualKeyInput!) { createVirtualKey(input: $input) { key } }`,
    { input: { userId: user.createUser.user.id, name: 'k', servers: [{ server: 'bench', tools: ['*'] }] } },
  );
  const node = await startGatehouseNode({ controlPlaneUrl: cp.url, nodeToken: cp.ready.nodeToken, env: { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('EXP_')) as [string, string][]), ...(audit ? {} : { GATEHOUSE_AUDIT: 'off' }), ...(process.env.PERF ? { NODE_OPTIONS: '--perf-basic-prof' } : {}), ...(process.env.NODE_FLAGS ? { NODE_OPTIONS: process.env.NODE_FLAGS } : {}) }, ...(profileDir ? { cpuProfileDir: profileDir } : {}) });
  // PIN=1 (run the tool itself under `taskset -c 1`): the node alone on CPU 0, everything else on CPU 1, so
  // CPU per request and req/s move less with how the scheduler happens to mix the processes on 2 cores.
  if (process.env.PIN) {
    execFileSync('taskset', ['-a', '-p', '-c', '0', String(node.proc.pid)], { stdio: 'ignore' });
    execFileSync('taskset', ['-a', '-p', '-c', '0', String(floor.pid)], { stdio: 'ignore' });
  }
  const body = (name: string): string => JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name, arguments: { text: 'hello' } } });
  for (let i = 0; i < 100; i++) {
    const res = await fetch(`${node.url}/mcp`, { method: 'POST', headers: { authorization: `Bearer ${issued.createVirtualKey.key}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: body('bench-echo') });
    const text = await res.text();
    if (res.ok && text.includes('"ok"')) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  const only = process.env.ONLY;
  if (only === 'server') {
    await measure('gatehouse /mcp/{server}', node.proc.pid as number, `${node.url}/mcp/bench`, body('echo'), `Bearer ${issued.createVirtualKey.key}`);
    if (process.env.DUMP_NODE) writeFileSync(process.env.DUMP_NODE, node.proc.tail(100_000));
    await node.close();
    return;
  }
  if (only === 'mcp') {
    await measure(`gatehouse /mcp${audit ? ' (audit on)' : ''}`, node.proc.pid as number, `${node.url}/mcp`, body('bench-echo'), `Bearer ${issued.createVirtualKey.key}`);
    if (process.env.DUMP_NODE) writeFileSync(process.env.DUMP_NODE, node.proc.tail(100_000));
    if (process.env.DUMP_FLOOR) {
      await measure('node floor', floor.pid, `http://127.0.0.1:${floorPort}/mcp`, body('echo'), null);
      writeFileSync(process.env.DUMP_FLOOR, floor.tail(100_000));
    }
    await node.close();
    return;
  }
  await measure('node floor', floor.pid as number, `http://127.0.0.1:${floorPort}/mcp`, body('echo'), null);
  await measure(`gatehouse /mcp${audit ? ' (audit on)' : ''}`, node.proc.pid as number, `${node.url}/mcp`, body('bench-echo'), `Bearer ${issued.createVirtualKey.key}`);
  await measure('gatehouse /mcp/{server}', node.proc.pid as number, `${node.url}/mcp/bench`, body('echo'), `Bearer ${issued.createVirtualKey.key}`);
  if (process.env.DUMP_NODE) writeFileSync(process.env.DUMP_NODE, node.proc.tail(100_000));
  await measure('node floor (again)', floor.pid as number, `http://127.0.0.1:${floorPort}/mcp`, body('echo'), null);
  await node.close();
}

main().then(
  () => stopAll().then(() => process.exit(0)),
  (error: unknown) => {
    console.error(error);
    void stopAll().then(() => process.exit(1));
  },
);
