/**
 * `gatehouse`, the command-line client for the control plane (`npx gatehouse`, built by `npm run
 * build:cli` into dist/; `npm run -s gatehouse --` runs this source with tsx). Only wires the process to
 * runCli (cli/run.ts): arguments, environment, standard streams, exit status.
 */
import { runCli } from './cli/run.js';

// Ctrl-C ends a following command (`audit tail`) cleanly; a second one ends the process.
const interrupt = new AbortController();
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    interrupt.abort();
    process.once(signal, () => process.exit(130));
  });
}

// exitCode rather than process.exit(), so output still buffered in a pipe is written before Node exits.
process.exitCode = await runCli(process.argv.slice(2), {
  env: process.env,
  stdout: process.stdout,
  stderr: process.stderr,
  signal: interrupt.signal,
  // stdin is left out: runCli reads process.stdin only for `--file -` and `login`.
});
