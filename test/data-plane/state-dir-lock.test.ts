/**
 * A node restarted at once finds its previous process still closing (flushing its audit outbox, closing
 * upstreams) and holding the state dir: it waits for the lock instead of refusing to start; a holder that
 * does not let go within the wait still gets the "in use" error (two nodes never share a state dir); one
 * that says it is closing (`.lock-owner`) is waited for as long as its close takes.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import lockfile from 'proper-lockfile';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../data-plane/log.js';
import { StateDirLockedError, startNode, type DataPlaneNode } from '../../data-plane/node/node.js';
import { LogCapture } from '../support/log-capture.js';

const dirs: string[] = [];
const nodes: DataPlaneNode[] = [];
afterEach(async () => {
  for (const node of nodes.splice(0)) await node.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function holdStateDir(): { stateDir: string; release: () => Promise<void> } {
  const stateDir = mkdtempSync(join(tmpdir(), 'gh-lock-'));
  dirs.push(stateDir);
  const unlock = lockfile.lockSync(stateDir, { lockfilePath: join(stateDir, '.lock'), realpath: false, stale: 10_000, update: 2_000 });
  return { stateDir, release: async () => unlock() };
}

// The control plane is never reached here (port 9): the node starts, holds its state dir and keeps retrying.
const start = (stateDir: string) =>
  startNode({ controlPlaneUrl: 'http://127.0.0.1:9', nodeToken: 'ghn_unused', port: 0, nodeId: 'lock-test', stateDir, env: {}, logger: createLogger('lock-test', { destination: new LogCapture() }) });

describe('the state dir lock', () => {
  it('waits for a previous process that lets go soon', async () => {
    const { stateDir, release } = holdStateDir();
    const starting = start(stateDir);
    // The previous process finishes closing a moment later.
    setTimeout(() => void release(), 300);
    const node = await starting;
    nodes.push(node);
    expect(node.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  });

  it('waits for a previous process that says it is closing, past the wait for a serving one', async () => {
    const { stateDir, release } = holdStateDir();
    // What a closing node leaves beside its lock (state-dir-lock.ts LockOwner; no start time: judged by its pid alone): this very process, so it is alive.
    writeFileSync(join(stateDir, '.lock-owner'), JSON.stringify({ pid: process.pid, host: hostname(), closing: true }));
    const starting = start(stateDir);
    // Longer than a serving holder is waited for (5 s): a slow close (a large outbox to sync) is still awaited.
    setTimeout(() => void release(), 6_500);
    const node = await starting;
    nodes.push(node);
    expect(node.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  }, 20_000);

  it('still refuses a state dir another running node keeps', async () => {
    const { stateDir, release } = holdStateDir();
    try {
      await expect(start(stateDir)).rejects.toBeInstanceOf(StateDirLockedError);
    } finally {
      await release();
    }
  }, 20_000);
});
