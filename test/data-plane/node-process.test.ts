/**
 * Nodes that explain themselves (issue 10 item 5), as an operator starts them: `--help` on every command;
 * two nodes started from one checkout with only different --port or --node-id keep separate state dirs
 * (derived from the node id); a second process on a locked state dir refuses to start with a clear
 * message; a node refused by the control plane names the variable to check; an enrolled node with a
 * one-time token serves; `nodes` shows CONNECTED then DISCONNECTED, and forgetNode removes it.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { hostname, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { NODE_BUNDLE, spawnNode, type NodeProcess } from '../support/node-process.js';
import { spawnOwned } from '../support/processes.js';
import { waitFor } from '../support/wait.js';

const ROOT = resolve(import.meta.dirname, '../..');
const TSX = join(ROOT, 'node_modules/.bin/tsx');

/**
 * Runs a command to completion (asynchronously, so several start in parallel: each tsx start takes seconds
 * here): a TypeScript entry under tsx, the node as operators run it (the built bundle).
 */
function run(script: string, args: string[], cwd = ROOT): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const [command, entry] = script === 'data-plane/node/main.ts' ? [process.execPath, NODE_BUNDLE] : [TSX, join(ROOT, script)];
  const { proc } = spawnOwned(command, [entry, ...args], { cwd, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout?.on('data', (c: Buffer) => (stdout += c.toString()));
  proc.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((r) => proc.once('close', (status) => r({ status, stdout, stderr })));
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as { port: number };
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

/** A node started from `cwd` with only the flags given (no --state-dir): the defaults are what is tested. */
function startPlain(cwd: string, cpUrl: string, token: string, flags: string[]) {
  const owned = spawnOwned(process.execPath, [NODE_BUNDLE, '--control-plane', cpUrl, '--host', '127.0.0.1', ...flags], {
    cwd,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', GATEHOUSE_NODE_TOKEN: token },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out: string[] = [];
  owned.proc.stdout?.on('data', (c: Buffer) => out.push(c.toString()));
  owned.proc.stderr?.on('data', (c: Buffer) => out.push(c.toString()));
  return { stop: () => owned.stop(), out, exited: owned.exited, text: () => out.join('') };
}

describe('node and control-plane commands', () => {
  it('--help exits 0 and lists the options, for every command of the planes', async () => {
    const [node, cp, start, signing, bad] = await Promise.all([
      run('data-plane/node/main.ts', ['--help']),
      run('control-plane/main.ts', ['--help']),
      run('bin/start.ts', ['--help']),
      run('control-plane/signing-keys-cli.ts', ['--help']),
      run('data-plane/node/main.ts', ['--nope']),
    ]);
    expect(node.status).toBe(0);
    expect(node.stdout).toMatch(/--node-id/);
    expect(node.stdout).toMatch(/GATEHOUSE_ENROLLMENT_TOKEN/);
    expect(cp.status).toBe(0);
    expect(cp.stdout).toMatch(/GATEHOUSE_NODE_TOKEN/);
    expect(start.status).toBe(0);
    expect(signing.status).toBe(0);
    // An unknown flag is a usage error with the usage, not a stack trace.
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/usage:/);
    expect(bad.stderr).not.toMatch(/ERR_PARSE_ARGS|at parseArgs/);
  }, 90_000);
});

describe('nodes started from one checkout', () => {
  let cp: TestControlPlane;
  const checkout = mkdtempSync(join(tmpdir(), 'gatehouse-checkout-'));
  const started: Array<ReturnType<typeof startPlain>> = [];

  beforeAll(async () => {
    cp = await startTestControlPlane();
  });
  afterAll(async () => {
    await Promise.all(started.map((s) => s.stop()));
    await cp?.close();
    rmSync(checkout, { recursive: true, force: true });
  });

  it('keep separate state with only different --node-id, or only different --port; a second process on one state dir is refused', async () => {
    const token = cp.cp.nodeToken as string;
    const [p1, p2, p3, p4] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    const a = startPlain(checkout, cp.url, token, ['--port', String(p1), '--node-id', 'alpha']);
    const b = startPlain(checkout, cp.url, token, ['--port', String(p2), '--node-id', 'beta']);
    const c = startPlain(checkout, cp.url, token, ['--port', String(p3)]);
    started.push(a, b, c);
    for (const s of [a, b, c]) await waitFor(() => /snapshot applied/.test(s.text()), { timeoutMs: 30_000, what: 'node applied a snapshot' });
    const nodesDir = join(checkout, 'data', 'nodes');
    const host = hostname().replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 60);
    expect(readdirSync(nodesDir).sort()).toEqual(['alpha', 'beta', `${host}-${p3}`].sort());
    const keyOf = (dir: string) => readFileSync(join(nodesDir, dir, 'node-key.json'), 'utf8');
    expect(new Set([keyOf('alpha'), keyOf('beta'), keyOf(`${host}-${p3}`)]).size).toBe(3);
    // Persisted after the apply is logged: wait for the files rather than race the write.
    await waitFor(() => readdirSync(nodesDir).every((dir) => existsSync(join(nodesDir, dir, 'snapshot.json'))), { what: 'each node persisted its snapshot' });

    // The same node id again (another port): its state dir is in use.
    const dup = startPlain(checkout, cp.url, token, ['--port', String(p4), '--node-id', 'alpha']);
    expect(await dup.exited).toBe(1);
    expect(dup.text()).toMatch(/state dir .*alpha is in use by another running node.*--node-id/s);
  });
});

describe('a node the control plane refuses, and one it enrolls', () => {
  let cp: TestControlPlane;
  let node: NodeProcess | null = null;

  beforeAll(async () => {
    cp = await startTestControlPlane({ sharedNodeToken: false });
  });
  afterAll(async () => {
    await node?.stop();
    await cp?.close();
  });

  it('a wrong node token is logged naming GATEHOUSE_NODE_TOKEN; the control plane logs the refusal', async () => {
    const wrong = await spawnNode({ controlPlaneUrl: cp.url, nodeToken: 'ghn_wrong_token_value_for_this_test', nodeId: 'wrong-token' });
    try {
      await wrong.waitForLog(/refused this node \(HTTP 401 node_token_required\).*GATEHOUSE_NODE_TOKEN/);
      await waitFor(() => cp.logs.has(/refused a node request/), { what: 'control plane logged the refusal' });
      expect(cp.logs.text()).not.toContain('ghn_wrong_token_value_for_this_test');
    } finally {
      await wrong.stop();
    }
  });

  it('enrolls with a one-time token, serves, shows CONNECTED with last seen, then DISCONNECTED, and can be forgotten', async () => {
    const issued = await cp.gql<{ enrollNode: { enrollmentToken: string } }>(`mutation { enrollNode(input: { nodeId: "enrolled-1" }) { enrollmentToken } }`);
    node = await spawnNode({ controlPlaneUrl: cp.url, nodeToken: null, nodeId: 'enrolled-1', env: { GATEHOUSE_ENROLLMENT_TOKEN: issued.enrollNode.enrollmentToken } });
    await waitFor(async () => (await fetch(`${node!.url}/readyz`)).ok, { timeoutMs: 20_000, what: 'enrolled node ready' });
    const query = '{ nodes { edges { node { id state enrollment lastSeenAt } } } }';
    type Nodes = { nodes: { edges: { node: { id: string; state: string; enrollment: string; lastSeenAt: string } }[] } };
    const find = async () => (await cp.gql<Nodes>(query)).nodes.edges.map((e) => e.node).find((n) => n.id === 'enrolled-1');
    expect(await find()).toMatchObject({ state: 'CONNECTED', enrollment: 'APPROVED' });

    const forget = `mutation { forgetNode(input: { id: "enrolled-1" }) { node { id } errors { code } } }`;
    expect((await cp.gql<{ forgetNode: { errors: { code: string }[] } }>(forget)).forgetNode.errors.map((e) => e.code)).toEqual(['NODE_CONNECTED']);
    await node.stop();
    node = null;
    await waitFor(async () => (await find())?.state === 'DISCONNECTED', { what: 'node DISCONNECTED' });
    expect((await find())?.lastSeenAt).toBeTruthy();
    expect((await cp.gql<{ forgetNode: { errors: unknown[] } }>(forget)).forgetNode.errors).toEqual([]);
    expect(await find()).toBeUndefined();
  });
});
