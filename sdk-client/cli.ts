/**
 * `gatehouse`, the command-line client for the control plane (`npx gatehouse`, built by `npm run
 * build:cli` into dist/; `npm run -s gatehouse --` runs this source with tsx). Only wires the process to
 * runCli (cli/run.ts): arguments, environment, standard streams, exit status.
 */
import { runCli } from './cli/run.js';

// exitCode rather than process.exit(), so output still buffered in a pipe is written before Node exits.
process.exitCode = await runCli(process.argv.slice(2), {
  env: process.env,
  stdout: process.stdout,
  stderr: process.stderr,
  // stdin is left out: runCli reads process.stdin only for `--file -` and `login`.
});
