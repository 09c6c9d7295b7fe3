/**
 * The state dir's lock: one process per state dir (keys, trust, last snapshot, audit outbox). Two nodes
 * sharing one would both append to and ship from the same audit outbox (events lost or doubled). It
 * decides who holds the dir and when a holder is gone; it keeps nothing else there.
 */
import { readFileSync, renameSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
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
  /**
   * When the holder's process started (/proc/<pid>/stat field 22, clock ticks since boot; null where there
   * is no /proc). A live process under that pid that started at another time has only reused the pid.
   */
  started: string | null;
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
    if (typeof owner.pid !== 'number' || typeof owner.host !== 'string') return null;
    return { pid: owner.pid, host: owner.host, started: typeof owner.started === 'string' ? owner.started : null, closing: owner.closing === true };
  } catch {
    return null;
  }
}

/** Written whole (a temporary file renamed over it): a reader never sees half of it. */
function writeLockOwner(stateDir: string, owner: LockOwner): void {
  const temporary = join(stateDir, `${LOCK_OWNER_FILE}.${process.pid}`);
  writeFileSync(temporary, JSON.stringify(owner));
  renameSync(temporary, join(stateDir, LOCK_OWNER_FILE));
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

/** When process `pid` started (field 22 of /proc/<pid>/stat), or null where that cannot be read. */
function processStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 2 (the command) is in parentheses and may hold spaces and parentheses: count after the last one.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[22 - 3] ?? null;
  } catch {
    return null;
  }
}

/**
 * Whether the holder named by `owner` (a process of this host, not this one) is gone: its pid runs no
 * process, or one that started at another time than the holder recorded (the pid reused by an unrelated
 * process, which refreshes no lock). An owner file without a start time (no /proc) is judged by the pid alone.
 */
function holderGone(owner: LockOwner): 'exited' | 'pid reused' | null {
  if (!processAlive(owner.pid)) return 'exited';
  if (owner.started === null) return null;
  const started = processStartTime(owner.pid);
  return started !== null && started !== owner.started ? 'pid reused' : null;
}

/** How long a node waits for a holder that serves (it may be about to close), and for one that is closing. */
const LOCK_WAIT_SERVING_MS = 5_000;
const LOCK_WAIT_CLOSING_MS = 60_000;
/** The take-over mutex is held for a few file operations: one held longer than this is a hung process. */
const MUTEX_WAIT_MS = 10_000;

/**
 * Holds the state dir's take-over mutex while `critical` runs: every node of this host acquires the lock,
 * writes the owner file, and judges and removes a gone holder's lock only under it, so that the owner file
 * it reads is the lock's, and the lock it removes is the one it judged.
 *
 * Written by hand, not a second proper-lockfile lock: proper-lockfile takes a stale lock over by stat, then
 * rmdir, then mkdir, which two processes can interleave (both find it stale; the second removes the lock
 * the first just made, and both hold it: the race this mutex closes). A mutex must instead be released by
 * the kernel when its holder dies, and Node has no flock(2); a listening Unix socket in Linux's abstract
 * namespace is such an object (bind fails with EADDRINUSE while any process listens on the name; no file
 * stays behind). Named by the state dir's device and inode, so every path to one dir finds one mutex. It
 * spans this host's network namespace, as the owner file's pids span its pid namespace (hence `host`).
 * Elsewhere (no abstract namespace) it is a proper-lockfile lock beside the state dir's, whose own
 * take-over keeps that rare window (a node killed inside the mutex, two others coming for it at once).
 */
async function withTakeoverMutex<T>(stateDir: string, critical: () => Promise<T>): Promise<T> {
  const release = process.platform === 'linux' ? await listenOnMutex(stateDir) : await lockFileMutex(stateDir);
  try {
    return await critical();
  } finally {
    await release();
  }
}

async function listenOnMutex(stateDir: string): Promise<() => Promise<void>> {
  const { dev, ino } = statSync(stateDir, { bigint: true });
  const name = `\0gatehouse/state-dir-lock/${dev}:${ino}`;
  const deadline = Date.now() + MUTEX_WAIT_MS;
  for (;;) {
    const server = createServer();
    const listening = await new Promise<boolean>((resolve, reject) => {
      server.once('error', (error: NodeJS.ErrnoException) => (error.code === 'EADDRINUSE' ? resolve(false) : reject(error)));
      // exclusive: in a cluster worker, listen() would otherwise share one handle of the primary's with every worker.
      server.listen({ path: name, exclusive: true }, () => resolve(true));
    });
    if (listening) return () => new Promise<void>((resolve) => server.close(() => resolve()));
    if (Date.now() >= deadline) throw new StateDirLockedError(stateDir);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

async function lockFileMutex(stateDir: string): Promise<() => Promise<void>> {
  // Its own file as proper-lockfile's key (.lock-takeover.lock): keyed by the state dir, as the lock itself
  // is, releasing it would stop that lock's mtime updates.
  const release = await lockfile.lock(join(stateDir, '.lock-takeover'), {
    realpath: false,
    stale: 2_000,
    retries: { retries: Math.ceil(MUTEX_WAIT_MS / 20), minTimeout: 5, maxTimeout: 20 },
    onCompromised: () => undefined,
  });
  return () => release().catch(() => undefined);
}

/**
 * Locks the state dir for this process (released on close, and by proper-lockfile on process exit). The
 * lock is proper-lockfile's (mtime kept fresh; a holder on another host that vanished goes stale in 10 s);
 * `.lock-owner` beside it names the holder's pid, its start time and host, and whether it is closing, so
 * that a node restarted at once
 * - waits for a previous process that is still closing (flushing the audit outbox, closing upstreams),
 *   however long that takes up to a minute, instead of failing after a fixed few seconds,
 * - takes over at once the lock of a previous process of this host that is gone (killed: nothing released
 *   it; its pid free or reused by another process), instead of failing until the lock went stale,
 * - and still refuses, after ~5 s, a state dir a running node serves from (StateDirLockedError).
 * Nodes of this host started at the same moment admit exactly one (withTakeoverMutex).
 * The pid is trusted on the same host only: pids of another host (or container) say nothing here.
 */
export async function lockStateDir(stateDir: string, logger: Logger, onLost: (reason: string) => void): Promise<StateDirLock> {
  const lockPath = join(stateDir, '.lock');
  const started = Date.now();
  const self: LockOwner = { pid: process.pid, host: hostname(), started: processStartTime(process.pid), closing: false };
  let warned = false;
  let waitLogged = false;

  /** proper-lockfile's lock, with the owner file written under the mutex; null while another holds it. */
  const tryLock = async (): Promise<StateDirLock | null> => {
    let lost = false;
    let release: () => Promise<void>;
    try {
      release = await lockfile.lock(stateDir, {
        lockfilePath: lockPath,
        realpath: false,
        stale: 10_000,
        update: 2_000,
        onCompromised: (error) => {
          lost = true;
          onLost(error.message);
        },
      });
    } catch (error) {
      if ((error as { code?: string }).code === 'ELOCKED') return null;
      throw error;
    }
    writeLockOwner(stateDir, self);
    // Once the lock is lost, the owner file is another holder's (or gone with the state dir): left alone.
    const ours = (): boolean => !lost && readLockOwner(stateDir)?.pid === process.pid;
    return {
      closing: () => {
        if (ours()) writeLockOwner(stateDir, { ...self, closing: true });
      },
      async release() {
        if (lost) return;
        if (ours()) rmSync(join(stateDir, LOCK_OWNER_FILE), { force: true });
        await release();
      },
    };
  };

  for (let attempt = 0; ; attempt++) {
    const outcome = await withTakeoverMutex(stateDir, async () => {
      const held = await tryLock();
      if (held) return { held };
      const owner = readLockOwner(stateDir);
      const local = owner !== null && owner.host === self.host && owner.pid !== process.pid;
      const gone = local ? holderGone(owner) : null;
      if (!gone) return { owner, gone };
      if (!warned) logger.warn({ stateDir, pid: owner?.pid, reason: gone }, 'the previous node on this state dir is gone without releasing it; taking its lock over');
      warned = true;
      try {
        rmdirSync(lockPath);
      } catch (error) {
        // Released meanwhile: the attempt below takes it.
        if ((error as { code?: string }).code !== 'ENOENT') throw error;
      }
      return { held: await tryLock(), owner, gone };
    });
    if (outcome.held) return outcome.held;
    const { owner, gone } = outcome;
    // A gone holder's lock taken by another meanwhile (a node of another host): that one is not closing.
    const waitingOnClose = owner !== null && owner.host === self.host && owner.closing && !gone;
    if (waitingOnClose && !waitLogged) logger.info({ stateDir, pid: owner.pid }, 'the previous node on this state dir is closing; waiting for it');
    waitLogged ||= waitingOnClose;
    if (Date.now() - started >= (waitingOnClose ? LOCK_WAIT_CLOSING_MS : LOCK_WAIT_SERVING_MS)) throw new StateDirLockedError(stateDir);
    await new Promise((resolve) => setTimeout(resolve, waitingOnClose ? 50 : Math.min(100 * 1.3 ** attempt, 800)));
  }
}
