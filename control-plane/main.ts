/**
 * `npm run control-plane`: the control plane alone (nodes run elsewhere with `npm run node`). `--help`
 * lists the settings; everything is configured through the environment.
 */
import { createControlPlane } from './app.js';

const USAGE = `usage: npm run control-plane   (settings from the environment)

  GATEHOUSE_CP_PORT / PORT   port (default 8090)        HOST   address (default 0.0.0.0)
  GATEHOUSE_DATA_DIR         key material and the embedded SQLite database (default ./data)
  DATABASE_URL               postgres://… for PostgreSQL (several replicas may share it)
  GATEHOUSE_MASTER_KEY       32-byte key (base64 or hex) for secrets at rest (else generated in the data dir)
  GATEHOUSE_SIGNING_KEYS     snapshot signing keys (else data/signing-keys.json; see npm run signing-key -- --help)
  GATEHOUSE_ADMIN_TOKEN      a bootstrap admin token to accept (else one is generated and printed once)
  GATEHOUSE_METRICS_TOKEN    a bearer token that may read /metrics and nothing else (admin tokens may too)
  GATEHOUSE_NODE_TOKEN       opt in to a shared node token (weaker than per-node enrollment: whoever holds it
                             can act as any node). Unset: nodes enroll their own keys (enrollNode/approveNode).
  LOG_LEVEL                  pino level (info)
`;

if (process.argv.slice(2).some((a) => a === '--help' || a === '-h')) {
  process.stdout.write(USAGE);
  process.exit(0);
}
if (process.argv.length > 2) {
  process.stderr.write(`gatehouse control plane: unexpected arguments ${process.argv.slice(2).join(' ')}\n\n${USAGE}`);
  process.exit(2);
}

const cp = await createControlPlane({
  port: Number(process.env.GATEHOUSE_CP_PORT ?? process.env.PORT ?? 8090),
  host: process.env.HOST ?? '0.0.0.0',
  dataDir: process.env.GATEHOUSE_DATA_DIR ?? './data',
});
if (cp.generatedAdminToken) {
  // Printed once, to stdout only: it is not stored anywhere in plaintext and cannot be shown again.
  process.stdout.write(`\nBootstrap admin token (shown once, keep it safe): ${cp.generatedAdminToken}\n\n`);
}
// `on`, not `once`: a repeated stop signal (to the process group and relayed by tsx) must not kill it mid-close.
let closing = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (closing) return;
    closing = true;
    void cp.close().then(() => process.exit(0));
  });
}
