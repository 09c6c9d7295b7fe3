/**
 * `npm run node -- --control-plane URL [options]`: one data-plane node (`--help` lists the options). The
 * node's credentials never come from a flag, so they do not show in process listings: its own enrolled
 * key pair (default; a one-time GATEHOUSE_ENROLLMENT_TOKEN approves it at once), or the shared
 * GATEHOUSE_NODE_TOKEN when the control plane accepts one.
 */
import cluster from 'node:cluster';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { tuneGarbageCollector } from './gc-tuning.js';
import { InvalidSettingError, msFromEnv, nodeMsSettings } from './ms-settings.js';
import { allowedOriginsFromEnv, defaultNodeId, defaultStateDir, StateDirLockedError, startNode, type DataPlaneNode } from './node.js';

const USAGE = `usage: npm run node -- --control-plane URL [options]

  --control-plane URL       the control plane (or GATEHOUSE_CONTROL_PLANE_URL)
  --port N                  port for /mcp, /healthz, /readyz, /metrics (default 8080, or GATEHOUSE_NODE_PORT)
  --host H                  address to listen on (default 0.0.0.0, or HOST)
  --node-id ID              this node's id (default <hostname>-<port>, or GATEHOUSE_NODE_ID)
  --state-dir DIR           keys, trust and the last verified snapshot (default ./data/nodes/<node id>,
                            or GATEHOUSE_NODE_STATE_DIR); locked: two running nodes never share one
  --no-state                keep nothing on disk
  --workers N               serve with N processes (node:cluster, one listening port shared, default 1, or
                            GATEHOUSE_NODE_WORKERS): each worker is a node of its own, with its own snapshot
                            link, id <node id>-w<i> and state dir <state dir>/w<i>; size N to the cores left
                            after the upstreams (see README)
  --trust-jwks FILE         seed trust in the control plane's signing keys (GET /nodes/jwks)
  --node-token-file FILE    read the shared node token from FILE (instead of GATEHOUSE_NODE_TOKEN)
  --enrollment-token-file FILE  read a one-time enrollment token from FILE (instead of GATEHOUSE_ENROLLMENT_TOKEN)
  -h, --help                this text

Credentials (environment only):
  GATEHOUSE_ENROLLMENT_TOKEN  one-time token from the enrollNode mutation: the node is approved when it
                              presents it. Without one (and without a shared token) the node logs its
                              fingerprint and waits for an admin's approveNode.
  GATEHOUSE_NODE_TOKEN        the shared node token, for control planes that accept one (weaker: whoever
                              holds it can act as any node).
  GATEHOUSE_NODE_KEY, GATEHOUSE_NODE_IDENTITY_KEY
                              the node's private X25519 / Ed25519 JWKs from a secret store (else kept in
                              the state dir).
  GATEHOUSE_METRICS_TOKEN     the bearer token Prometheus sends to read /metrics (without it, /metrics
                              answers 401: it names every server and which are down).
Stopping (SIGTERM, SIGINT): the node drains. It takes no new connection, closes idle ones, ends
long-lived event streams (their clients reconnect), lets calls in flight finish for up to
GATEHOUSE_DRAIN_MS (default 10000 ms) and cuts the rest, then flushes its audit events and exits 0.
  GATEHOUSE_DRAIN_MS          how long a stopping node lets requests in flight finish (default 10000)
Settings in milliseconds (GATEHOUSE_*_MS) take a number, 0 or more (GATEHOUSE_REPORT_INTERVAL_MS: 1 or
more); the node does not start on anything else.
Other: GATEHOUSE_ALLOWED_ORIGINS, GATEHOUSE_REPORT_INTERVAL_MS, LOG_LEVEL.
`;

function fail(message: string): never {
  process.stderr.write(`gatehouse node: ${message}\n\n${USAGE}`);
  process.exit(2);
}

let values: ReturnType<typeof parse>['values'];
function parse() {
  return parseArgs({
    options: {
      'control-plane': { type: 'string' },
      port: { type: 'string' },
      host: { type: 'string' },
      'node-id': { type: 'string' },
      'state-dir': { type: 'string' },
      'no-state': { type: 'boolean' },
      workers: { type: 'string' },
      'trust-jwks': { type: 'string' },
      'node-token-file': { type: 'string' },
      'enrollment-token-file': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}
try {
  ({ values } = parse());
} catch (error) {
  fail(error instanceof Error ? error.message : String(error));
}
if (values.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}

const readToken = (file: string | undefined, envValue: string | undefined): string | null => (file ? readFileSync(file, 'utf8').trim() : envValue || null);
const controlPlaneUrl = values['control-plane'] ?? process.env.GATEHOUSE_CONTROL_PLANE_URL ?? fail('--control-plane URL is required');
const port = Number(values.port ?? process.env.GATEHOUSE_NODE_PORT ?? 8080);
if (!Number.isInteger(port) || port < 0 || port > 65535) fail('--port must be a port number');
const nodeId = values['node-id'] ?? process.env.GATEHOUSE_NODE_ID ?? (values['state-dir'] ? undefined : defaultNodeId(port));
if (nodeId !== undefined && !/^[A-Za-z0-9._:-]{1,200}$/.test(nodeId)) fail('--node-id must be 1-200 of [A-Za-z0-9._:-]');
let trustedJwks: unknown[] | null = null;
const trustSource = values['trust-jwks'] ?? process.env.GATEHOUSE_SNAPSHOT_JWKS_FILE;
if (trustSource) {
  const parsed = JSON.parse(readFileSync(trustSource, 'utf8')) as unknown;
  trustedJwks = Array.isArray(parsed) ? parsed : ((parsed as { keys?: unknown[] }).keys ?? fail(`${trustSource} is not a JWKS`));
}

const workers = Number(values.workers ?? process.env.GATEHOUSE_NODE_WORKERS ?? 1);
if (!Number.isInteger(workers) || workers < 1 || workers > 256) fail('--workers must be a whole number from 1 to 256');
// startNode reads them too (and throws the same error); read here first so that a cluster's primary refuses
// before it forks (a worker that cannot start would be restarted for ever) and the message is a usage error.
let reportIntervalMs: number | undefined;
try {
  nodeMsSettings(process.env);
  // The link reports on this interval: 0 (or, before, any value not a number) would be every millisecond.
  reportIntervalMs = msFromEnv(process.env, 'GATEHOUSE_REPORT_INTERVAL_MS', undefined, 1);
} catch (error) {
  if (!(error instanceof InvalidSettingError)) throw error;
  fail(error.message);
}

tuneGarbageCollector();

if (workers > 1 && cluster.isPrimary) {
  // The primary only forks and restarts workers; the listening socket is shared by node:cluster and each
  // connection goes to one worker (round-robin), so any worker can serve any request (nodes are stateless).
  let stopping = false;
  const fork = (index: number): void => {
    cluster.fork({ GATEHOUSE_WORKER_INDEX: String(index) }).once('exit', (code, signal) => {
      if (stopping) return;
      process.stderr.write(`gatehouse node: worker ${index} exited (${signal ?? code}); restarting it\n`);
      setTimeout(() => fork(index), 1_000).unref();
    });
  };
  for (let i = 0; i < workers; i++) fork(i);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      stopping = true;
      for (const worker of Object.values(cluster.workers ?? {})) worker?.kill('SIGTERM');
      cluster.once('exit', () => {
        if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0);
      });
    });
  }
} else {
  await runNode();
}

/** One node in this process (the only one, or worker GATEHOUSE_WORKER_INDEX of a cluster). */
async function runNode(): Promise<void> {
  const worker = process.env.GATEHOUSE_WORKER_INDEX;
  const workerId = worker === undefined ? nodeId : nodeId === undefined ? undefined : `${nodeId}-w${worker}`;
  const baseStateDir = values['no-state'] ? null : (values['state-dir'] ?? process.env.GATEHOUSE_NODE_STATE_DIR ?? defaultStateDir(nodeId as string));
  const stateDir = baseStateDir === null || worker === undefined ? baseStateDir : join(baseStateDir, `w${worker}`);
  try {
    // Its state dir removed or taken over: this process can keep nothing any more, so it goes (exit 1 for
    // a supervisor to see), within 10 s whatever the close waits on.
    let node: DataPlaneNode | null = null;
    const stateDirLost = (): void => {
      setTimeout(() => process.exit(1), 10_000).unref();
      if (node === null) process.exit(1);
      void node.close().finally(() => process.exit(1));
    };
    node = await startNode({
      controlPlaneUrl,
      nodeToken: readToken(values['node-token-file'], process.env.GATEHOUSE_NODE_TOKEN),
      enrollmentToken: readToken(values['enrollment-token-file'], process.env.GATEHOUSE_ENROLLMENT_TOKEN),
      port,
      host: values.host ?? process.env.HOST ?? '0.0.0.0',
      nodeId: workerId,
      stateDir,
      trustedJwks,
      reportIntervalMs,
      allowedOrigins: allowedOriginsFromEnv(process.env),
      redisUrl: process.env.REDIS_URL ?? null,
      onStateDirLost: stateDirLost,
    });
    const started = node;
    // `on`, not `once`: a repeated stop signal (to the process group and relayed by tsx) must not kill the
    // node mid-close, losing its last audit events and leaving its state dir locked until the lock goes stale.
    let closing = false;
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.on(signal, () => {
        if (closing) return;
        closing = true;
        void started.close().then(() => process.exit(0));
      });
    }
  } catch (error) {
    if (!(error instanceof StateDirLockedError)) throw error;
    process.stderr.write(`gatehouse node: ${error.message}\n`);
    process.exit(1);
  }
}
