/**
 * Developer tool (not part of `npm run bench`): bytes allocated per /mcp tools/call, by the function that
 * allocated them, for the node and for the node floor, under a wrk load. Young-generation garbage is what
 * the scavenger pays for (a node under load scavenges every few tens of milliseconds, and each pause holds
 * every request in flight): this says which code makes it, where a CPU profile only shows the GC's time.
 *
 * How: each process is started with `--inspect=127.0.0.1:0`; over the inspector (Chrome DevTools Protocol,
 * Node 22's global WebSocket) V8's sampling heap profiler runs during the load with
 * `includeObjectsCollectedByMinorGC/MajorGC`, so it counts every sampled allocation, not only what is still
 * alive at the end (what `--heap-prof` reports). Sampled bytes are an estimate (one sample per
 * `samplingInterval` bytes on average); divide by requests served.
 *
 * Usage: node --import tsx bench/dev/allocations.ts [seconds=5] [connections=32] [--audit] [--survivors] [top=25]
 */
import { join } from 'node:path';
import { ControlPlaneProcess, startGatehouseNode } from '../lib/gatehouse.js';
import { runLoad } from '../lib/load.js';
import { ROOT, startTs, stopAll } from '../lib/procs.js';

const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const seconds = Number(args[0] ?? 5);
const connections = Number(args[1] ?? 32);
const top = Number(args[2] ?? 25);
const audit = process.argv.includes('--audit');
/** `--survivors`: only what outlived a scavenge (what is promoted to the old generation and costs mark-compacts). */
const survivorsOnly = process.argv.includes('--survivors');
const SAMPLING_INTERVAL = 256;

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  callFrame: CallFrame;
  selfSize: number;
  children: ProfileNode[];
}

/** One CDP session over the inspector's WebSocket. */
class Inspector {
  #next = 1;
  readonly #pending = new Map<number, (result: unknown) => void>();
  private constructor(private readonly ws: WebSocket) {
    ws.addEventListener('message', (event) => {
      const message = JSON.parse(String(event.data)) as { id?: number; result?: unknown; error?: unknown };
      if (message.id !== undefined) this.#pending.get(message.id)?.(message.error ? Promise.reject(new Error(JSON.stringify(message.error))) : message.result);
    });
  }

  static async open(url: string): Promise<Inspector> {
    const ws = new WebSocket(url);
    await new Promise((resolve, reject) => {
      ws.addEventListener('open', resolve, { once: true });
      ws.addEventListener('error', reject, { once: true });
    });
    return new Inspector(ws);
  }

  send<T>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    const id = this.#next++;
    return new Promise<T>((resolve) => {
      this.#pending.set(id, (result) => resolve(result as T));
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }

  close(): void {
    this.ws.close();
  }
}

/** The inspector's WebSocket URL, from the line node prints on stderr when started with `--inspect`. */
async function inspectorUrl(proc: { waitForLine(match: (line: string) => boolean, timeoutMs: number, what: string): Promise<string> }): Promise<string> {
  const line = await proc.waitForLine((l) => l.includes('Debugger listening on ws://'), 30_000, 'inspector URL');
  return /ws:\/\/\S+/.exec(line)![0];
}

function summarise(profile: { head: ProfileNode }, requests: number, label: string): void {
  const byFunction = new Map<string, number>();
  let total = 0;
  const walk = (node: ProfileNode): void => {
    if (node.selfSize > 0) {
      const frame = node.callFrame;
      const where = frame.url.replace(/^file:\/\//, '').replace(ROOT + '/', '');
      const key = `${frame.functionName || '(anonymous)'} ${where}:${frame.lineNumber + 1}`;
      byFunction.set(key, (byFunction.get(key) ?? 0) + node.selfSize);
      total += node.selfSize;
    }
    for (const child of node.children) walk(child);
  };
  walk(profile.head);
  console.log(`\n${label}: ~${(total / requests).toFixed(0)} bytes allocated per request (${requests} requests, sampled every ${SAMPLING_INTERVAL} B)`);
  for (const [key, bytes] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`  ${(bytes / requests).toFixed(0).padStart(7)} B  ${key}`);
  }
}

async function measure(label: string, wsUrl: string, url: string, body: string, authorization: string | null): Promise<void> {
  const generator = { kind: 'wrk' as const, binary: '/usr/bin/wrk', threads: 1 };
  await runLoad(generator, { url, body, authorization, connections, durationS: 2, warmupS: 0 });
  const inspector = await Inspector.open(wsUrl);
  try {
    await inspector.send('HeapProfiler.enable');
    await inspector.send('HeapProfiler.startSampling', { samplingInterval: SAMPLING_INTERVAL, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: !survivorsOnly });
    const r = await runLoad(generator, { url, body, authorization, connections, durationS: seconds, warmupS: 0 });
    const { profile } = await inspector.send<{ profile: { head: ProfileNode } }>('HeapProfiler.stopSampling');
    summarise(profile, r.requests, `${label} (${r.rps.toFixed(0)} req/s under the profiler)`);
  } finally {
    inspector.close();
  }
}

async function main(): Promise<void> {
  const up = startTs('upstream', join(ROOT, 'bench/procs/upstream.ts'), [], {});
  const upPort = (JSON.parse(await up.waitForLine((l) => l.includes('ready'), 30_000, 'ready')) as { port: number }).port;
  const upstreamUrl = `http://127.0.0.1:${upPort}/mcp`;
  const floor = startTs('floor', join(ROOT, 'bench/procs/node-proxy.ts'), [`http://127.0.0.1:${upPort}`], { nodeArgs: ['--inspect=127.0.0.1:0'] });
  const floorWs = await inspectorUrl(floor);
  const floorPort = (JSON.parse(await floor.waitForLine((l) => l.includes('ready'), 30_000, 'ready')) as { port: number }).port;
  const cp = await ControlPlaneProcess.start();
  await cp.gql(`mutation($input: CreateMcpServerInput!) { createMcpServer(input: $input) { errors { message } } }`, {
    input: { name: 'bench', connectionType: 'HTTP', connectionString: upstreamUrl, authType: 'HEADERS', headers: [{ name: 'Authorization', value: 'Bearer x' }], toolsToExecute: ['*'] },
  });
  const user = await cp.gql<{ createUser: { user: { id: string } } }>(`mutation { createUser(input: { email: "b@example.com", name: "B" }) { user { id } } }`);
  const issued = await cp.gql<{ createVirtualKey: { key: string } }>(`mutation($input: CreateVirtualKeyInput!) { createVirtualKey(input: $input) { key } }`, {
    input: { userId: user.createUser.user.id, name: 'k', servers: [{ server: 'bench', tools: ['*'] }] },
  });
  const node = await startGatehouseNode({
    controlPlaneUrl: cp.url,
    nodeToken: cp.ready.nodeToken,
    env: { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('EXP_')) as [string, string][]), NODE_OPTIONS: '--inspect=127.0.0.1:0', ...(audit ? {} : { GATEHOUSE_AUDIT: 'off' }) },
  });
  const nodeWs = await inspectorUrl(node.proc);
  const key = issued.createVirtualKey.key;
  const body = (name: string): string => JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name, arguments: { text: 'hello' } } });
  for (let i = 0; i < 100; i++) {
    const res = await fetch(`${node.url}/mcp`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: body('bench-echo') });
    if (res.ok && (await res.text()).includes('"ok"')) break;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  await measure(`gatehouse /mcp${audit ? ' (audit on)' : ''}`, nodeWs, `${node.url}/mcp`, body('bench-echo'), `Bearer ${key}`);
  await measure('node floor', floorWs, `http://127.0.0.1:${floorPort}/mcp`, body('echo'), null);
  await node.close();
}

main()
  .catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  })
  .finally(() => stopAll());
