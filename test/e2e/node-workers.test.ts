/**
 * `npm run node -- --workers N` (issue 5, "throughput scales with cores"): the built node started with
 * `--workers 2` forks two worker processes on one port, each a node of its own (id `<node id>-w<i>`, its
 * own snapshot link); both serve tools/call; a worker that dies is replaced and the port keeps serving; a
 * stop takes the primary and its workers down.
 */
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGatewayFixture, type GatewayFixture } from '../support/gateway-fixture.js';
import { postMcp } from '../support/mcp-http.js';
import { spawnNode, type NodeProcess } from '../support/node-process.js';
import { processRunning } from '../support/processes.js';
import { waitFor } from '../support/wait.js';

/** The primary's child processes (its workers). */
function workerPids(primary: number): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(primary)], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
  } catch {
    return []; // pgrep exits 1 when there are none
  }
}

describe('a node with --workers 2', () => {
  let gw: GatewayFixture;
  let node: NodeProcess;

  beforeAll(async () => {
    gw = await startGatewayFixture('sqlite');
    node = await spawnNode({ controlPlaneUrl: gw.cp.url, nodeToken: gw.cp.cp.nodeToken, nodeId: 'wk', env: gw.nodeEnv, extraArgs: ['--workers', '2'] });
  }, 90_000);

  afterAll(async () => {
    await node?.stop();
    await gw?.close();
  });

  async function connectedWorkers(): Promise<string[]> {
    const r = await gw.cp.gql<{ nodes: { edges: { node: { id: string; connected: boolean } }[] } }>(`{ nodes(first: 50) { edges { node { id connected } } } }`);
    return r.nodes.edges.map((e) => e.node).filter((n) => n.connected).map((n) => n.id).sort();
  }

  async function callEcho(text: string): Promise<string> {
    const r = await postMcp(node.url, gw.key, { id: 1, method: 'tools/call', params: { name: 'crm_http-echo', arguments: { text } } });
    return JSON.stringify(r.body);
  }

  it('forks two workers, each its own node on the control plane, and both serve', async () => {
    await waitFor(async () => (await connectedWorkers()).join(',') === 'wk-w0,wk-w1', { what: 'both workers connected', timeoutMs: 30_000 });
    expect(workerPids(node.proc.pid as number)).toHaveLength(2);
    // Each request on a new connection: the kernel hands connections to either worker.
    for (let i = 0; i < 10; i++) {
      await waitFor(async () => (await callEcho(`w${i}`)).includes(`http:w${i}`), { what: `call ${i} answered` });
    }
  }, 60_000);

  it('replaces a worker that dies, and the port keeps serving', async () => {
    const before = workerPids(node.proc.pid as number);
    expect(before).toHaveLength(2);
    const victim = before[0] as number;
    process.kill(victim, 'SIGKILL');
    await waitFor(() => !processRunning(victim), { what: 'the killed worker gone' });
    expect(await callEcho('after-kill')).toContain('http:after-kill');
    await waitFor(() => {
      const now = workerPids(node.proc.pid as number);
      return now.length === 2 && !now.includes(victim);
    }, { what: 'a replacement worker', timeoutMs: 30_000 });
    await waitFor(async () => (await connectedWorkers()).join(',') === 'wk-w0,wk-w1', { what: 'both workers connected again', timeoutMs: 30_000 });
  }, 90_000);

  it('a stop takes the primary and every worker down', async () => {
    const workers = workerPids(node.proc.pid as number);
    expect(workers.length).toBeGreaterThan(0);
    await node.stop();
    for (const pid of workers) expect(processRunning(pid)).toBe(false);
    expect(node.proc.exitCode ?? node.proc.signalCode).not.toBeNull();
  }, 60_000);
});
