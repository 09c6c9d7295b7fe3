/**
 * Child-process plumbing for the bench: start a process, keep its last output lines (for error messages),
 * wait for a line, stop it by its own pid, and make sure nothing the bench started outlives it, even
 * when the bench itself fails. Also: finding an executable on PATH, picking a free loopback port, and
 * reading a process's resident memory from /proc.
 */
import { fork, spawn, type ChildProcess, type ForkOptions, type SpawnOptions } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, type AddressInfo } from 'node:net';
import { delimiter, join, resolve } from 'node:path';

/** Repository root (bench/lib/ → ../..). */
export const ROOT = resolve(import.meta.dirname, '../..');

const KEEP_LINES = 400;

export class Tracked {
  readonly lines: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly waiters = new Set<{ test: (line: string) => boolean; resolve: (line: string) => void }>();
  private readonly listeners: Array<(line: string) => void> = [];
  private partial = '';

  constructor(
    readonly name: string,
    readonly proc: ChildProcess,
    /** How to ask it to stop: nginx wants SIGQUIT/SIGTERM to its master (SIGKILL would orphan its workers). */
    private readonly stopSignal: NodeJS.Signals = 'SIGTERM',
  ) {
    const collect = (chunk: Buffer): void => {
      this.partial += chunk.toString('utf8');
      const parts = this.partial.split('\n');
      this.partial = parts.pop() ?? '';
      for (const line of parts) {
        if (!line.trim()) continue;
        this.lines.push(line);
        if (this.lines.length > KEEP_LINES) this.lines.shift();
        for (const waiter of this.waiters) if (waiter.test(line)) waiter.resolve(line);
        for (const listener of this.listeners) listener(line);
      }
    };
    proc.stdout?.on('data', collect);
    proc.stderr?.on('data', collect);
    this.exited = new Promise((resolveExit) => proc.once('exit', (code, signal) => resolveExit({ code, signal })));
    live.add(this);
    void this.exited.then(() => live.delete(this));
  }

  get pid(): number {
    if (this.proc.pid === undefined) throw new Error(`${this.name} has no pid (did it start?)`);
    return this.proc.pid;
  }

  get running(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Calls `fn` with every later output line (the ring buffer only keeps the last few hundred). */
  onLine(fn: (line: string) => void): void {
    this.listeners.push(fn);
  }

  /** The last lines of output, for an error message. */
  tail(n = 30): string {
    return this.lines.slice(-n).join('\n');
  }

  /** Resolves with the first line (already seen or future) that passes `test`; rejects on exit or timeout. */
  waitForLine(test: (line: string) => boolean, timeoutMs: number, what: string): Promise<string> {
    const seen = this.lines.find(test);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolveLine, reject) => {
      const waiter = {
        test,
        resolve: (line: string) => {
          cleanup();
          resolveLine(line);
        },
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`${this.name}: no ${what} within ${timeoutMs} ms\n${this.tail()}`));
      }, timeoutMs);
      const onExit = (): void => {
        cleanup();
        reject(new Error(`${this.name} exited before ${what}\n${this.tail()}`));
      };
      const cleanup = (): void => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
        this.proc.off('exit', onExit);
      };
      this.waiters.add(waiter);
      this.proc.once('exit', onExit);
    });
  }

  /** Asks it to stop, then SIGKILLs it after `graceMs`; resolves once it is gone. */
  async stop(graceMs = 5_000): Promise<void> {
    if (!this.running) return;
    this.proc.kill(this.stopSignal);
    const timer = setTimeout(() => {
      if (this.running) this.proc.kill('SIGKILL');
    }, graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

const live = new Set<Tracked>();
const tempDirs = new Set<string>();

/** A fresh directory under the OS temp dir, removed by `cleanupSync` if nobody removed it before. */
export function makeTempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

/**
 * Last resort on the way out (synchronous: runs in `process.on('exit')`, also after Ctrl-C): signal what
 * is still running and remove the temp dirs.
 */
export function cleanupSync(): void {
  signalAllSync();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

function signalAllSync(): void {
  for (const t of live) {
    if (!t.running) continue;
    try {
      // The polite signal: nginx's master must take its workers down with it.
      t.proc.kill(t.name === 'nginx' ? 'SIGTERM' : 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
}

export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((t) => t.stop()));
}

export function startProcess(name: string, command: string, args: readonly string[], options: SpawnOptions & { stopSignal?: NodeJS.Signals } = {}): Tracked {
  const { stopSignal, ...spawnOptions } = options;
  const proc = spawn(command, args, { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'], ...spawnOptions });
  // A failed exec surfaces as an 'error' event; turn it into an exit so waiters reject instead of hanging.
  proc.on('error', (error) => {
    proc.stderr?.emit('data', Buffer.from(`${name}: ${error.message}\n`));
  });
  return new Tracked(name, proc, stopSignal);
}

/** A TypeScript entry point in its own Node process (`node --import tsx file`), optionally with IPC. */
export function startTs(
  name: string,
  file: string,
  args: readonly string[] = [],
  options: { env?: NodeJS.ProcessEnv; nodeArgs?: readonly string[]; ipc?: boolean } = {},
): Tracked {
  const execArgv = [...(options.nodeArgs ?? []), '--import', 'tsx'];
  if (options.ipc) {
    const forkOptions: ForkOptions = { cwd: ROOT, execArgv, env: options.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe', 'ipc'] };
    return new Tracked(name, fork(file, [...args], forkOptions));
  }
  // Spawning node itself (not the `tsx` wrapper, which runs node as a grandchild) so `pid` is the process
  // that serves: its /proc/<pid>/status is the memory being measured.
  return startProcess(name, process.execPath, [...execArgv, file, ...args], { env: options.env ?? process.env });
}

/** Absolute path of an executable on PATH (plus sbin dirs, where nginx lives), or null. */
export function findExecutable(name: string, override?: string): string | null {
  const candidates = override ? [override] : [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin', '/sbin'].filter(Boolean).map((dir) => join(dir, name));
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Next.
    }
  }
  return null;
}

/** A port nothing listens on right now (for nginx, which cannot listen on port 0 and report it). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((res, rej) => {
    server.once('error', rej);
    server.listen(0, '127.0.0.1', () => res());
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((res) => server.close(() => res()));
  return port;
}

export interface Memory {
  /** Resident set size now, MB. */
  rssMb: number;
  /** Peak resident set size over the process's life so far (VmHWM), MB. */
  peakMb: number;
}

/** VmRSS and VmHWM from /proc/<pid>/status (Linux); null where /proc is not available. */
export function readMemory(pid: number): Memory | null {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return null;
  }
  const kb = (field: string): number | null => {
    const match = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(status);
    return match?.[1] ? Number(match[1]) : null;
  };
  const rss = kb('VmRSS');
  const hwm = kb('VmHWM');
  if (rss === null) return null;
  return { rssMb: rss / 1024, peakMb: (hwm ?? rss) / 1024 };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Linux clock ticks per second for /proc/<pid>/stat times (USER_HZ; 100 on every mainstream kernel). */
const CLOCK_TICKS = 100;

function statFields(pid: number): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may itself contain spaces or parentheses); [0] is field 3.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** The pid and its direct children (nginx's master and workers). */
export function withChildren(pid: number): number[] {
  const pids = [pid];
  try {
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      const fields = statFields(Number(entry));
      if (fields && Number(fields[1]) === pid) pids.push(Number(entry));
    }
  } catch {
    // No /proc: just the pid.
  }
  return pids;
}

/** CPU seconds (user + system) used so far by these processes; null where /proc is not available. */
export function cpuSeconds(pids: readonly number[]): number | null {
  let ticks = 0;
  for (const pid of pids) {
    const fields = statFields(pid);
    if (!fields) return null;
    // utime and stime are fields 14 and 15 of /proc/<pid>/stat.
    ticks += Number(fields[11]) + Number(fields[12]);
  }
  return ticks / CLOCK_TICKS;
}

/**
 * CPU seconds the whole box has been busy since boot, every core summed (/proc/stat: user, nice, system,
 * irq and softirq; not idle, iowait or steal), or null where there is no /proc/stat.
 */
export function boxCpuSeconds(): number | null {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
    const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0] = fields;
    return (user + nice + system + irq + softirq) / CLOCK_TICKS;
  } catch {
    return null;
  }
}

/** The monotonic clock in microseconds: the clock V8 stamps CPU profile samples with. */
export function monotonicUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}
