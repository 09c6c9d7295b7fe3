/**
 * Gatehouse as the bench runs it: the control plane in its own process (bench/procs/control-plane.ts,
 * driven over IPC and GraphQL) and one data-plane node started the way an operator starts one
 * (`npm run node`: dist/gatehouse-node.mjs, built from data-plane/node/main.ts) in another process. Also the probes the bench times the node with:
 * `/readyz` (which snapshot version it serves) and a cheap authenticated `/mcp` ping (what a key gets).
 */
import { execFile } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Pool } from 'undici';
import { isCpMessage, type CpReady, type PublishStatsResult, type SeedRequest, type SeedResult } from './ipc.js';
import { makeTempDir, ROOT, sleep, startProcess, startTs, type Tracked } from './procs.js';

export class ControlPlaneProcess {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: never) => void; reject: (e: Error) => void }>();

  private constructor(
    readonly proc: Tracked,
    readonly ready: CpReady,
  ) {
    proc.proc.on('message', (message: unknown) => {
      if (!isCpMessage(message) || message.type !== 'result') return;
      const waiter = this.pending.get(message.id);
      if (!waiter) return;
      this.pending.delete(message.id);
      if (message.ok) waiter.resolve(message.data as never);
      else waiter.reject(new Error(`control plane seed failed: ${message.error}`));
    });
    void proc.exited.then(() => {
      for (const waiter of this.pending.values()) waiter.reject(new Error(`control plane exited\n${proc.tail()}`));
      this.pending.clear();
    });
  }

  static async start(options: { cpuProfileDir?: string } = {}): Promise<ControlPlaneProcess> {
    const proc = startTs('control-plane', join(ROOT, 'bench/procs/control-plane.ts'), [], {
      ipc: true,
      nodeArgs: options.cpuProfileDir ? ['--cpu-prof', '--cpu-prof-dir', options.cpuProfileDir] : [],
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', LOG_LEVEL: 'info' },
    });
    const ready = await new Promise<CpReady>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`control plane did not start within 60 s\n${proc.tail()}`)), 60_000);
      proc.proc.on('message', (message: unknown) => {
        if (isCpMessage(message) && message.type === 'ready') {
          clearTimeout(timer);
          resolve(message);
        }
      });
      void proc.exited.then(() => {
        clearTimeout(timer);
        const tail = proc.tail();
        // A native module built for another Node ABI: usually a `node` binary from node_modules/.bin
        // (npm run / npx put it first on PATH) that is not the Node better-sqlite3 was built for.
        const hint = tail.includes('NODE_MODULE_VERSION')
          ? `\nhint: this bench runs on ${process.execPath} (${process.version}), which is not the Node that better-sqlite3 was built for; ` +
            'run it with that Node (e.g. `/usr/bin/node --import tsx bench/run.ts`) or `npm rebuild better-sqlite3`'
          : '';
        reject(new Error(`control plane exited at start\n${tail}${hint}`));
      });
    });
    return new ControlPlaneProcess(proc, ready);
  }

  get url(): string {
    return this.ready.url;
  }

  async gql<T>(query: string, variables?: Record<string, unknown>): Promise<T> {
    const res = await fetch(`${this.ready.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${this.ready.adminToken}` },
      body: JSON.stringify({ query, variables }),
    });
    const body = (await res.json()) as { data?: T; errors?: unknown[] };
    if (!res.ok || body.errors?.length || body.data === undefined) throw new Error(`GraphQL ${res.status}: ${JSON.stringify(body.errors ?? body)}`);
    return body.data;
  }

  seed(request: Omit<SeedRequest, 'type' | 'id'>): Promise<SeedResult> {
    const id = this.nextId++;
    return new Promise<SeedResult>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.proc.proc.send({ type: 'seed', id, ...request });
    });
  }

  /** The publisher's last push: the control plane's share of a change's latency, its bytes and streams. */
  stats(): Promise<PublishStatsResult | null> {
    const id = this.nextId++;
    return new Promise<PublishStatsResult | null>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.proc.proc.send({ type: 'stats', id });
    });
  }

  async close(): Promise<void> {
    if (this.proc.proc.connected) this.proc.proc.disconnect();
    await this.proc.stop();
  }
}

export interface NodeProcess {
  url: string;
  proc: Tracked;
  stateDir: string;
  close(): Promise<void>;
}

/** The token bench nodes want on `/metrics` (a node without one refuses every scrape). */
export const BENCH_METRICS_TOKEN = 'bench-metrics-token';

let built: Promise<string> | null = null;

/** The node as operators run it (`npm run node`): dist/gatehouse-node.mjs, built from this checkout once per bench process. */
function nodeBundle(): Promise<string> {
  built ??= new Promise((resolve, reject) => {
    execFile(process.execPath, [join(ROOT, 'data-plane/node/build.mjs')], (error) => (error ? reject(error) : resolve(join(ROOT, 'dist/gatehouse-node.mjs'))));
  });
  return built;
}

/** `node [--cpu-prof …] dist/gatehouse-node.mjs --control-plane … --port 0`. */
export async function startGatehouseNode(options: {
  controlPlaneUrl: string;
  nodeToken: string | null;
  cpuProfileDir?: string;
  nodeId?: string;
  env?: Record<string, string>;
  workers?: number;
  /** Runs the node under valgrind with these arguments (bench/dev/audit-instructions.ts), and node with `nodeArgs`. */
  valgrind?: { args: string[]; nodeArgs: string[]; startTimeoutMs: number };
}): Promise<NodeProcess> {
  if (options.nodeToken === null) throw new Error('the bench control plane must accept the shared node token');
  const stateDir = makeTempDir('gatehouse-bench-node-');
  // Pin the signing keys as the README tells operators to (no trust-on-first-use warning in the logs).
  const jwksRes = await fetch(`${options.controlPlaneUrl}/nodes/jwks`, { headers: { authorization: `Bearer ${options.nodeToken}` } });
  if (!jwksRes.ok) throw new Error(`GET /nodes/jwks: HTTP ${jwksRes.status}`);
  const jwksFile = join(stateDir, 'trusted-jwks.json');
  writeFileSync(jwksFile, await jwksRes.text());
  const nodeArgs = options.cpuProfileDir ? ['--cpu-prof', '--cpu-prof-dir', options.cpuProfileDir] : [];
  const file = await nodeBundle();
  const args = ['--control-plane', options.controlPlaneUrl, '--port', '0', '--host', '127.0.0.1', '--state-dir', stateDir, '--node-id', options.nodeId ?? 'bench-node', '--trust-jwks', jwksFile, ...(options.workers ? ['--workers', String(options.workers)] : [])];
  // What an operator would set; LOG_LEVEL stays at the production default (info).
  const env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', GATEHOUSE_NODE_TOKEN: options.nodeToken as string, GATEHOUSE_METRICS_TOKEN: BENCH_METRICS_TOKEN, LOG_LEVEL: 'info', ...options.env };
  const proc = options.valgrind
    ? startProcess('gatehouse-node', 'valgrind', [...options.valgrind.args, process.execPath, ...options.valgrind.nodeArgs, file, ...args], { env })
    : startProcess('gatehouse-node', process.execPath, [...nodeArgs, file, ...args], { env });
  const line = await proc.waitForLine((l) => l.includes('data-plane node listening'), options.valgrind?.startTimeoutMs ?? 60_000, 'listening log line');
  const url = (JSON.parse(line) as { url: string }).url;
  return {
    url,
    proc,
    stateDir,
    async close() {
      await proc.stop();
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

/**
 * Probes on one keep-alive connection of their own (undici Pool), so a probe costs the node one small
 * request and the timing is not padded by connection setup.
 */
export class NodeProbe {
  private readonly pool: Pool;
  private readonly path = '/mcp';

  constructor(readonly url: string) {
    this.pool = new Pool(url, { connections: 1, pipelining: 1, keepAliveTimeout: 60_000 });
  }

  /** The snapshot version the node serves, or null while it has none. */
  async version(): Promise<number | null> {
    const res = await this.pool.request({ path: '/readyz', method: 'GET', headersTimeout: 30_000 });
    const text = await res.body.text();
    if (res.statusCode !== 200) return null;
    return (JSON.parse(text) as { version: number }).version;
  }

  /** What the node answers to an authenticated MCP ping: 200, or the HTTP error `type` (e.g. key_revoked). */
  async ping(key: string): Promise<{ status: number; type: string | null }> {
    const res = await this.pool.request({
      path: this.path,
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${key}` },
      body: '{"jsonrpc":"2.0","id":1,"method":"ping"}',
      headersTimeout: 30_000,
    });
    const text = await res.body.text();
    if (res.statusCode === 200) return { status: 200, type: null };
    let type: string | null = null;
    try {
      type = (JSON.parse(text) as { type?: string }).type ?? null;
    } catch {
      // Not JSON: leave type null.
    }
    return { status: res.statusCode, type };
  }

  /** Polls until the node serves at least `version`; returns the wall-clock time (epoch ms) it first did. */
  async waitForVersion(version: number, timeoutMs: number, intervalMs = 5): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await this.version().catch(() => null);
      if (v !== null && v >= version) return performance.timeOrigin + performance.now();
      if (Date.now() > deadline) throw new Error(`node did not serve snapshot version ${version} within ${timeoutMs} ms (serving ${v})`);
      await sleep(intervalMs);
    }
  }

  async close(): Promise<void> {
    await this.pool.close();
  }
}
