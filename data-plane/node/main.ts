/**
 * `npm run node -- --control-plane URL [--port 8080] [--host 0.0.0.0] [--node-id ID] [--state-dir DIR]
 *  [--trust-jwks FILE]`: one data-plane node. The node token comes from GATEHOUSE_NODE_TOKEN (or
 * `--node-token-file`), never from a flag, so it does not show in process listings.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { allowedOriginsFromEnv, startNode } from './node.js';

const { values } = parseArgs({
  options: {
    'control-plane': { type: 'string' },
    port: { type: 'string' },
    host: { type: 'string' },
    'node-id': { type: 'string' },
    'state-dir': { type: 'string' },
    'no-state': { type: 'boolean' },
    'trust-jwks': { type: 'string' },
    'node-token-file': { type: 'string' },
  },
});

function fail(message: string): never {
  process.stderr.write(`gatehouse node: ${message}\n`);
  process.exit(2);
}

const controlPlaneUrl = values['control-plane'] ?? process.env.GATEHOUSE_CONTROL_PLANE_URL ?? fail('--control-plane URL is required');
const nodeToken = values['node-token-file']
  ? readFileSync(values['node-token-file'], 'utf8').trim()
  : (process.env.GATEHOUSE_NODE_TOKEN ?? fail('GATEHOUSE_NODE_TOKEN (or --node-token-file) is required'));
let trustedJwks: unknown[] | null = null;
const trustSource = values['trust-jwks'] ?? process.env.GATEHOUSE_SNAPSHOT_JWKS_FILE;
if (trustSource) {
  const parsed = JSON.parse(readFileSync(trustSource, 'utf8')) as unknown;
  trustedJwks = Array.isArray(parsed) ? parsed : ((parsed as { keys?: unknown[] }).keys ?? fail(`${trustSource} is not a JWKS`));
}

const node = await startNode({
  controlPlaneUrl,
  nodeToken,
  port: Number(values.port ?? process.env.GATEHOUSE_NODE_PORT ?? 8080),
  host: values.host ?? process.env.HOST ?? '0.0.0.0',
  nodeId: values['node-id'] ?? process.env.GATEHOUSE_NODE_ID,
  stateDir: values['no-state'] ? null : (values['state-dir'] ?? process.env.GATEHOUSE_NODE_STATE_DIR ?? './data/node'),
  trustedJwks,
  reportIntervalMs: process.env.GATEHOUSE_REPORT_INTERVAL_MS ? Number(process.env.GATEHOUSE_REPORT_INTERVAL_MS) : undefined,
  allowedOrigins: allowedOriginsFromEnv(process.env),
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void node.close().then(() => process.exit(0)));
}
