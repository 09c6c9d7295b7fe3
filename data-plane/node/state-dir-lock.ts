/**
 * The state dir's lock: one process per state dir (keys, trust, last snapshot, audit outbox). Two nodes
 * sharing one would both append to and ship from the same audit outbox (events lost or doubled).
 */
import { readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import lockfile from 'proper-lockfile';
import type { Logger } from '../log.js';

/** Thrown when another process holds the state dir. */
export class StateDirLockedError extends Error {
  constructor(readonly stateDir: string) {
    super(
      `state dir ${stateDir} is in use by another running node: two nodes must not share keys and snapshots. ` +
        'Give this node its own --node-id (its state dir is derived from it) or its own --state-dir.',
    );
    this.name = 'StateDirLockedError';
  }
}

/** Who holds a state dir's lock, kept beside it (proper-lockfile removes its lock dir with rmdir: nothing goes inside). */
const LOCK_OWNER_FILE = '.lock-owner';

interface LockOwner {
  pid: number;
  host: string;
  /** Set when the holder starts closing: a node started meanwhile waits for it instead of giving up. */
  closing: boolean;
}

export interface StateDirLock {
  /** Says the holder is closing (a successor waits for its exit, however long its close takes). */
  closing(): void;
  release(): Promise<void>;
}

function readLockOwner(stateDir: string): LockOwner | null {
  try {
    const owner = JSON.parse(readFileSync(join(stateDir, LOCK_OWNER_FILE), 'utf8')) as Partial<LockOwner>;
    return typeof owner.pid === 'number' && typeof owner.host === 'string' ? { pid: owner.pid, host: owner.host, closing: owner.closing === true } : null;
  } catch {
    return null;
  }
}

function writeLockOwner(stateDir: string, owner: LockOwner): void {
  writeFileSync(join(stateDir, LOCK_OWNER_FILE), JSON.stringify(owner));
}

/** Whether process `pid` of this host runs (EPERM: it does, as another user). */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: string }).code === 'EPERM';
  }
}

/** How long a node waits for a holder that serves (it may be about to close), and for one that is closing. */
const LOCK_WAIT_SERVING_MS = 5_000;
const LOCK_WAIT_CLOSING_MS = 60_000;

/**
 * Locks the state dir for this process (released on close, and by proper-lockfile on process exit). The
 * lock is proper-lockfile's (mtime kept fresh; a holder on another host that vanished goes stale in 10 s);
 * `.lock-owner` beside it names the holder's pid and host and whether it is closing, so that a node
 * restarted at once
 * - waits for a previous process that is still closing (flushing the audit outbox, closing upstreams),
 *   however long that takes up to a minute, instead of failing after a fixed few seconds,
 * - takes over at once the lock of a previous process of this host that is gone (killed: nothing released
 *   it), instead of failing until the lock went stale,
 * - and still refuses, after ~5 s, a state dir a running node serves from (StateDirLockedError).
 * The pid is trusted on the same host only: pids of another host (or container) say nothing here.
 */
export async function lockStateDir(stateDir: string, logger: Logger, onLost: (reason: string) => void): Promise<StateDirLock> {
  const lockPath = join(stateDir, '.lock');
  const started = Date.now();
  let warned = false;
  for (let attempt = 0; ; attempt++) {
    let lost = false;
    try {
      const release = await lockfile.lock(stateDir, {
        lockfilePath: lockPath,
        realpath: false,
        stale: 10_000,
        update: 2_000,
        onCompromised: (error) => {
          lost = true;
          onLost(error.message);
        },
      });
      const owner: LockOwner = { pid: process.pid, host: hostname(), closing: false };
      writeLockOwner(stateDir, owner);
      // Once the lock is lost, the owner file is another holder's (or gone with the state dir): left alone.
      const ours = (): boolean => !lost && readLockOwner(stateDir)?.pid === process.pid;
      return {
        closing: () => {
          if (ours()) writeLockOwner(stateDir, { ...owner, closing: true });
        },
        async release() {
          if (lost) return;
          if (ours()) rmSync(join(stateDir, LOCK_OWNER_FILE), { force: true });
          await release();
        },
      };
    } catch (error) {
      if ((error as { code?: string }).code !== 'ELOCKED') throw error;
    }
    const owner = readLockOwner(stateDir);
    const local = owner !== null && owner.host === hostname();
    const abandoned = local && owner.pid !== process.pid && !processAlive(owner.pid);
    if (abandoned) {
      // Aged past proper-lockfile's staleness, so the next attempt removes it and takes it.
      if (!warned) logger.warn({ stateDir, pid: owner.pid }, 'the previous node on this state dir is gone without releasing it; taking its lock over');
      warned = true;
      try {
        utimesSync(lockPath, new Date(0), new Date(0));
      } catch {
        // Released meanwhile (the next attempt takes it), or not ours to touch (the wait below ends it).
      }
    }
    const waitingOnClose = local && owner.closing && !abandoned;
    if (Date.now() - started >= (waitingOnClose ? LOCK_WAIT_CLOSING_MS : LOCK_WAIT_SERVING_MS)) throw new StateDirLockedError(stateDir);
    await new Promise((resolve) => setTimeout(resolve, abandoned ? 10 : waitingOnClose ? 50 : Math.min(100 * 1.3 ** attempt, 800)));
  }
}
