/**
 * `npm start`: the control plane (:8090) and one data-plane node (:8080) in one process, on an embedded
 * SQLite database and key material under ./data (generated on first start). The only module that
 * imports both planes; production runs them apart (`npm run control-plane`, `npm run node`).
 */
import { createControlPlane } from '../control-plane/app.js';
import { InvalidSettingError, nodeMsSettings } from '../data-plane/node/ms-settings.js';
import { allowedOriginsFromEnv, defaultStateDir, startNode } from '../data-plane/node/node.js';

const USAGE = `usage: npm start   (settings from the environment)

Runs the control plane and one data-plane node in one process, on an embedded SQLite database.
  GATEHOUSE_DATA_DIR    key material, the database and the node's state (default ./data)
  GATEHOUSE_CP_PORT     control plane port (default 8090)     GATEHOUSE_NODE_PORT   node port (default 8080)
  HOST                  address both listen on (default 127.0.0.1)
  GATEHOUSE_NODE_ID     the embedded node's id (default local; state in <data dir>/nodes/<id>)
  GATEHOUSE_ADMIN_TOKEN a bootstrap admin token to accept (else one is generated and printed once)
The embedded node uses the shared node token (generated into the data dir); more nodes can join with it
(GATEHOUSE_NODE_TOKEN) or enroll their own keys. See npm run control-plane -- --help and npm run node -- --help.
`;
if (process.argv.slice(2).some((a) => a === '--help' || a === '-h')) {
  process.stdout.write(USAGE);
  process.exit(0);
}

// The node's settings are read (and a bad one refused, as `npm run node` does) before anything starts: the
// embedded node would otherwise refuse them with a stack trace after the control plane was up.
try {
  nodeMsSettings(process.env);
} catch (error) {
  if (!(error instanceof InvalidSettingError)) throw error;
  process.stderr.write(`gatehouse: ${error.message}\n\n${USAGE}`);
  process.exit(2);
}

const dataDir = process.env.GATEHOUSE_DATA_DIR ?? './data';
const host = process.env.HOST ?? '127.0.0.1';
const cp = await createControlPlane({ port: Number(process.env.GATEHOUSE_CP_PORT ?? 8090), host, dataDir, sharedNodeToken: true });
const nodeId = process.env.GATEHOUSE_NODE_ID ?? 'local';
const node = await startNode({
  controlPlaneUrl: cp.url,
  nodeToken: cp.nodeToken,
  port: Number(process.env.GATEHOUSE_NODE_PORT ?? 8080),
  host,
  nodeId,
  stateDir: defaultStateDir(nodeId, dataDir),
  trustedJwks: cp.trustedKeys,
  allowedOrigins: allowedOriginsFromEnv(process.env),
  redisUrl: process.env.REDIS_URL ?? null,
});

if (cp.generatedAdminToken) {
  // Printed once, to stdout only: only its hash is stored, so it cannot be shown again.
  process.stdout.write(`\nBootstrap admin token (shown once, keep it safe): ${cp.generatedAdminToken}\n`);
}
process.stdout.write(`\nGatehouse is up.\n  GraphiQL:  ${cp.url}/graphql\n  MCP:       ${node.url}/mcp\n\n`);

// `on`, not `once`: a stop signal often comes twice (to the process group, and relayed by tsx or npm), and
// a second one with no listener would kill the process mid-close, losing its last audit events and leaving
// its state dir locked until the lock goes stale.
let closing = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (closing) return;
    closing = true;
    void Promise.all([node.close(), cp.close()]).then(() => process.exit(0));
  });
}
