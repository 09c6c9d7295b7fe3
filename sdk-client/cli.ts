/**
 * `gatehouse`, the command-line client for the control plane (`npm run -s gatehouse -- <args>`). Only wires
 * the process to runCli (cli-app.ts): arguments, environment, standard streams, exit status.
 */
import { runCli } from './cli-app.js';

// exitCode rather than process.exit(), so output still buffered in a pipe is written before Node exits.
process.exitCode = await runCli(process.argv.slice(2), {
  env: process.env,
  stdout: process.stdout,
  stderr: process.stderr,
  // stdin is left out: runCli touches process.stdin only for `--file -`.
});
