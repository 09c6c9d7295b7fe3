/**
 * `npm run control-plane`: the control plane alone (nodes run elsewhere with `npm run node`).
 * Settings: PORT / GATEHOUSE_CP_PORT (8090), HOST (0.0.0.0), GATEHOUSE_DATA_DIR (./data), DATABASE_URL.
 */
import { createControlPlane } from './app.js';

const cp = await createControlPlane({
  port: Number(process.env.GATEHOUSE_CP_PORT ?? process.env.PORT ?? 8090),
  host: process.env.HOST ?? '0.0.0.0',
  dataDir: process.env.GATEHOUSE_DATA_DIR ?? './data',
});
if (cp.generatedAdminToken) {
  // Printed once, to stdout only: it is not stored anywhere in plaintext and cannot be shown again.
  process.stdout.write(`\nBootstrap admin token (shown once, keep it safe): ${cp.generatedAdminToken}\n\n`);
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void cp.close().then(() => process.exit(0)));
}
