/**
 * Processes a test starts (nodes under tsx, `npm start`, redis-server, Claude Code), each in a process
 * group of its own, so that a stop reaches everything it started (tsx's node, npm's tsx), and killed with
 * their groups when the test file's worker exits, however the file ended. Before, a test or hook that
 * timed out left its stop() unreached, and a stop that ended in SIGKILL reached tsx only: its node child
 * ran on as an orphan, for ever (spinning once its cwd or state dir was removed).
 *
 * It does not wait for readiness or collect output: the helpers that call it do.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { rmSync } from 'node:fs';
import { waitFor } from './wait.js';

export interface OwnedProcess {
  proc: ChildProcess;
  /** Resolves when the group's leader has exited (its code, or null after a signal). */
  exited: Promise<number | null>;
  /** Whether any process of the group still runs. */
  alive(): boolean;
  /**
   * SIGTERM to the whole group, SIGKILL to it after `graceMs`; resolves once every process of the group
   * has exited, not only the leader (npm and tsx exit before the node they started has closed).
   */
  stop(options?: { graceMs?: number; signal?: NodeJS.Signals }): Promise<void>;
}

const groups = new Set<number>();
const tempDirs = new Set<string>();
let hooked = false;

function signalGroup(pid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** Whether process `pid` still runs (signal 0 only checks). */
export function processRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** At the worker's exit (synchronous: only kills and removals are possible there). */
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.once('exit', () => {
    for (const pid of groups) signalGroup(pid, 'SIGKILL');
    for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  });
}

/** A directory removed when the worker exits (after every owned process is killed). */
export function removeAtExit(dir: string): string {
  hookExit();
  tempDirs.add(dir);
  return dir;
}

/** spawn() in a process group of its own, killed with the group at the worker's exit unless stopped first. */
export function spawnOwned(command: string, args: readonly string[], options: SpawnOptions = {}): OwnedProcess {
  hookExit();
  const proc = spawn(command, args, { ...options, detached: true });
  const pid = proc.pid;
  if (pid !== undefined) groups.add(pid);
  const alive = (): boolean => pid !== undefined && signalGroup(pid, 0);
  const exited = new Promise<number | null>((resolve) => {
    proc.once('exit', (code) => {
      // A group that is gone lets its id be reused by others: it must not be signalled at exit then.
      if (pid !== undefined && !alive()) groups.delete(pid);
      resolve(code);
    });
    // Never started (ENOENT): nothing to wait for or kill.
    proc.once('error', () => resolve(null));
  });
  return {
    proc,
    exited,
    alive,
    async stop({ graceMs = 10_000, signal = 'SIGTERM' } = {}) {
      if (pid === undefined) return;
      if (alive()) {
        signalGroup(pid, signal);
        const timer = setTimeout(() => signalGroup(pid, 'SIGKILL'), graceMs);
        try {
          await exited;
          await waitFor(() => !alive(), { timeoutMs: graceMs + 5_000, what: `process group ${pid} to exit` });
        } finally {
          clearTimeout(timer);
        }
      }
      groups.delete(pid);
    },
  };
}
