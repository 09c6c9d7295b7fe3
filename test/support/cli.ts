/**
 * Runs the `gatehouse` CLI in-process (runCli) against a test control plane and captures what it wrote:
 * `const gatehouse = cliRunner(() => ({ url, adminToken, cwd }))`, then `await gatehouse(['servers', 'list'])`.
 * The environment names the control plane and token; overrides replace any part of the I/O.
 */
import { runCli, type CliIO } from '../../sdk-client/cli/run.js';

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

export interface CliTarget {
  url: string;
  adminToken: string;
  cwd: string;
  /** Extra environment (e.g. GATEHOUSE_CONFIG) under the URL and token. */
  env?: Record<string, string>;
}

export function cliRunner(target: () => CliTarget): (argv: string[], overrides?: Partial<CliIO>) => Promise<CliRun> {
  return async (argv, overrides = {}) => {
    const t = target();
    let stdout = '';
    let stderr = '';
    const code = await runCli(argv, {
      env: { GATEHOUSE_URL: t.url, GATEHOUSE_ADMIN_TOKEN: t.adminToken, ...t.env },
      stdout: { write: (s: string) => (stdout += s) },
      stderr: { write: (s: string) => (stderr += s) },
      cwd: t.cwd,
      ...overrides,
    });
    return { code, stdout, stderr };
  };
}
