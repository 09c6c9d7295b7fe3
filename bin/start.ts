/**
 * `npm start`: the control plane (:8090) and one data-plane node (:8080) in one process, on an embedded
 * SQLite database and key material under ./data (generated on first start). The only module that
 * imports both planes; production runs them apart (`npm run control-plane`, `npm run node`).
 */
import { join } from 'node:path';
import { createControlPlane } from '../control-plane/app.js';
import { allowedOriginsFromEnv, startNode } from '../data-plane/node/node.js';

const dataDir = process.env.GATEHOUSE_DATA_DIR ?? './data';
const host = process.env.HOST ?? '127.0.0.1';
const cp = await createControlPlane({ port: Number(process.env.GATEHOUSE_CP_PORT ?? 8090), host, dataDir });
const node = await startNode({
  controlPlaneUrl: cp.url,
  nodeToken: cp.nodeToken,
  port: Number(process.env.GATEHOUSE_NODE_PORT ?? 8080),
  host,
  nodeId: process.env.GATEHOUSE_NODE_ID ?? 'local',
  stateDir: join(dataDir, 'node'),
  trustedJwks: cp.trustedKeys,
  allowedOrigins: allowedOriginsFromEnv(process.env),
});

if (cp.generatedAdminToken) {
  // Printed once, to stdout only: only its hash is stored, so it cannot be shown again.
  process.stdout.write(`\nBootstrap admin token (shown once, keep it safe): ${cp.generatedAdminToken}\n`);
}
process.stdout.write(`\nGatehouse is up.\n  GraphiQL:  ${cp.url}/graphql\n  MCP:       ${node.url}/mcp\n\n`);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void Promise.all([node.close(), cp.close()]).then(() => process.exit(0));
  });
}
