/**
 * The state-dir lock between real node processes (the built bundle), where the in-process tests
 * (state-dir-lock.test.ts) cannot go: several processes at once, and pids of other processes.
 * - Several nodes waiting at once on a closing node that dies without releasing the state dir: exactly one
 *   serves, the others refuse (exit 1, "in use"). Before, each took the dead node's lock over by ageing its
 *   mtime and retrying; one that had read the dead owner before another took the lock aged that fresh lock
 *   too and took it as well: two (three, once) nodes appended to and shipped from one audit outbox until
 *   proper-lockfile told all but the last, up to 2 s later, that their lock was compromised.
 * - A node whose previous node was killed and whose pid now belongs to an unrelated live process: taken
 *   over at once. Before, the live pid passed for a serving holder and the node refused after ~5 s.
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { NODE_BUNDLE, spawnNode, type NodeProcess } from '../support/node-process.js';
import { removeAtExit, spawnOwned, type OwnedProcess } from '../support/processes.js';
import { waitFor } from '../support/wait.js';

// Never reached (port 9): a node starts, holds its state dir and keeps retrying its control plane.
const CONTROL_PLANE = 'http://127.0.0.1:9';
const IN_USE = /state dir .* is in use by another running node/;

interface Started {
  owned: OwnedProcess;
  output: () => string;
  code: number | null | undefined;
}

const owned: OwnedProcess[] = [];
const nodes: NodeProcess[] = [];
afterEach(async () => {
  await Promise.all(owned.splice(0).map((p) => p.stop({ signal: 'SIGKILL' })));
  await Promise.all(nodes.splice(0).map((n) => n.kill()));
});

/** A node process on `stateDir`, its output collected (not waited for: several start at the same moment). */
function startBundle(stateDir: string): Started {
  const child = spawnOwned(
    process.execPath,
    [NODE_BUNDLE, '--control-plane', CONTROL_PLANE, '--port', '0', '--host', '127.0.0.1', '--state-dir', stateDir, '--node-id', 'raced'],
    { env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', GATEHOUSE_NODE_TOKEN: 'ghn_unused' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  owned.push(child);
  let output = '';
  child.proc.stdout?.on('data', (c: Buffer) => (output += c.toString('utf8')));
  child.proc.stderr?.on('data', (c: Buffer) => (output += c.toString('utf8')));
  const started: Started = { owned: child, output: () => output, code: undefined };
  void child.exited.then((code) => (started.code = code));
  return started;
}

/** A process unrelated to any node, alive until the test's end. */
function unrelatedLiveProcess(): number {
  const sleeper = spawnOwned(process.execPath, ['-e', 'setTimeout(() => {}, 600_000)'], { stdio: 'ignore' });
  owned.push(sleeper);
  return sleeper.proc.pid as number;
}

describe('the state-dir lock between node processes', () => {
  it('admits exactly one of several nodes waiting on a closing node that is then killed', async () => {
    // The race is one of milliseconds: rounds on state dirs of their own, four at once, make it likely
    // (the code before the mutex let two nodes in about once in ten rounds here).
    const ROUNDS = 8;
    const AT_ONCE = 4;
    const CONTENDERS = 6;
    const round = async (index: number): Promise<void> => {
      const stateDir = removeAtExit(mkdtempSync(join(tmpdir(), 'gh-lock-race-')));
      // A node that is closing (a rolling restart), standing in for one: its lock and its owner file.
      const closing = spawnOwned(process.execPath, ['-e', 'setTimeout(() => {}, 600_000)'], { stdio: 'ignore' });
      owned.push(closing);
      mkdirSync(join(stateDir, '.lock'));
      writeFileSync(join(stateDir, '.lock-owner'), JSON.stringify({ pid: closing.proc.pid, host: hostname(), closing: true }));
      const contenders = Array.from({ length: CONTENDERS }, () => startBundle(stateDir));
      await waitFor(() => contenders.every((c) => /closing; waiting for it/.test(c.output())), { timeoutMs: 30_000, what: 'every contender waiting' });
      // Killed before it let go (its close outlasted its supervisor's patience): every contender finds it
      // gone within one poll of the others, and comes for its lock.
      await closing.stop({ signal: 'SIGKILL' });
      // Settled: all but one have exited (a refusal comes ~5 s after its start).
      await waitFor(() => contenders.filter((c) => c.code !== undefined).length >= CONTENDERS - 1, { timeoutMs: 30_000, what: 'all but one contender exited' });
      // The winner serves, and would have been told of a lost lock by now (proper-lockfile checks every 2 s).
      const served = contenders.filter((c) => /data-plane node listening/.test(c.output()));
      const outputs = contenders.map((c, i) => `--- contender ${i} (exit ${String(c.code)})\n${c.output()}`).join('\n');
      expect(served.length, `round ${index}: exactly one node served\n${outputs}`).toBe(1);
      const [winner] = served;
      expect(winner?.code, `round ${index}: the serving node runs on\n${outputs}`).toBeUndefined();
      expect(winner?.output()).not.toMatch(/lock taken over/);
      for (const loser of contenders.filter((c) => c !== winner)) {
        expect(loser.code, `round ${index}: a refused node exits 1\n${outputs}`).toBe(1);
        expect(loser.output(), `round ${index}: a refused node says why\n${outputs}`).toMatch(IN_USE);
      }
      // The owner file names the one that serves.
      const owner = JSON.parse(readFileSync(join(stateDir, '.lock-owner'), 'utf8')) as { pid: number };
      expect(owner.pid).toBe(winner?.owned.proc.pid);
    };
    for (let first = 0; first < ROUNDS; first += AT_ONCE) {
      await Promise.all(Array.from({ length: AT_ONCE }, (_, i) => round(first + i)));
      await Promise.all(owned.splice(0).map((p) => p.stop({ signal: 'SIGKILL' })));
    }
  }, 150_000);

  it('takes over at once from a killed node whose pid now belongs to an unrelated live process', async () => {
    const first = await spawnNode({ controlPlaneUrl: CONTROL_PLANE, nodeToken: 'ghn_unused', nodeId: 'reused' });
    nodes.push(first);
    const { stateDir } = first;
    await first.kill();
    // The pid reused: the owner file, as the killed node left it, now names a process that holds nothing.
    const ownerPath = join(stateDir, '.lock-owner');
    const left = JSON.parse(readFileSync(ownerPath, 'utf8')) as { pid: number };
    expect(left.pid).toBe(first.proc.pid);
    writeFileSync(ownerPath, JSON.stringify({ ...left, pid: unrelatedLiveProcess() }));

    // It serves (a node that took the pid for a serving holder's would have refused after ~5 s, exit 1).
    const second = await spawnNode({ controlPlaneUrl: CONTROL_PLANE, nodeToken: 'ghn_unused', nodeId: 'reused', stateDir });
    nodes.push(second);
    const takeOver = JSON.parse(await second.waitForLog(/taking its lock over/)) as { reason: string };
    expect(takeOver.reason).toBe('pid reused');
    expect((JSON.parse(readFileSync(ownerPath, 'utf8')) as { pid: number }).pid).toBe(second.proc.pid);
  }, 60_000);
});
