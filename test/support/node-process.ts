/**
 * A data-plane node started the way an operator starts one (`npm run node`: `node dist/gatehouse-node.mjs`,
 * built from these sources by the suite's global setup), as its own process, on an ephemeral port. Collects
 * its log lines and waits until it says where it listens. The process is an owned process group
 * (processes.ts): stopped as a whole, and killed when the test file's worker exits if no stop() got to it;
 * a state dir it made is removed then.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { removeAtExit, spawnOwned } from './processes.js';
import { waitFor } from './wait.js';
import { TEST_METRICS_TOKEN } from './node-metrics.js';

const ROOT = resolve(import.meta.dirname, '../..');
/** The built node (data-plane/node/build.mjs; test/support/global-setup.ts builds it before the suite). */
export const NODE_BUNDLE = join(ROOT, 'dist/gatehouse-node.mjs');

export interface NodeProcess {
  url: string;
  proc: ChildProcess;
  stateDir: string;
  logs: string[];
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** SIGTERM, then SIGKILL if it lingers; resolves once the node is gone. */
  stop(): Promise<void>;
  /** SIGKILL to the node (a crash: nothing is closed or released); resolves once both are gone. */
  kill(): Promise<void>;
}

export async function spawnNode(options: {
  controlPlaneUrl: string;
  /** The shared node token, or null for a node that enrolls (pass GATEHOUSE_ENROLLMENT_TOKEN in env). */
  nodeToken: string | null;
  nodeId?: string;
  /** Absolute, or relative to `cwd`. */
  stateDir?: string;
  /** The node's working directory (default: the checkout). */
  cwd?: string;
  env?: Record<string, string>;
  extraArgs?: string[];
}): Promise<NodeProcess> {
  const stateDir = options.stateDir ?? removeAtExit(mkdtempSync(join(tmpdir(), 'gatehouse-node-')));
  const args = [NODE_BUNDLE, '--control-plane', options.controlPlaneUrl, '--port', '0', '--host', '127.0.0.1', '--state-dir', stateDir];
  if (options.nodeId) args.push('--node-id', options.nodeId);
  args.push(...(options.extraArgs ?? []));
  const owned = spawnOwned(process.execPath, args, {
    cwd: options.cwd ?? ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...(options.nodeToken !== null ? { GATEHOUSE_NODE_TOKEN: options.nodeToken } : {}), LOG_LEVEL: 'debug', GATEHOUSE_METRICS_TOKEN: TEST_METRICS_TOKEN, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const proc = owned.proc;
  const logs: string[] = [];
  let buffered = '';
  const collect = (chunk: Buffer): void => {
    buffered += chunk.toString('utf8');
    const lines = buffered.split('\n');
    buffered = lines.pop() ?? '';
    logs.push(...lines.filter((l) => l.trim()));
  };
  proc.stdout?.on('data', collect);
  proc.stderr?.on('data', collect);

  const waitForLog = (pattern: RegExp, timeoutMs = 15_000): Promise<string> =>
    waitFor(() => logs.find((l) => pattern.test(l)), { timeoutMs, what: `node log ${pattern}` });

  const listening = await waitForLog(/data-plane node listening/, 30_000).catch(async (error: unknown) => {
    await owned.stop({ signal: 'SIGKILL' });
    throw new Error(`${String(error)}\n${logs.join('\n')}`);
  });
  const url = (JSON.parse(listening) as { url: string }).url;
  return {
    url,
    proc,
    stateDir,
    logs,
    waitForLog,
    stop: () => owned.stop(),
    kill: () => owned.stop({ signal: 'SIGKILL' }),
  };
}
