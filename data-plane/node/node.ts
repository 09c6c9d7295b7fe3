/**
 * A data-plane node: the HTTP server for `/mcp` and friends, its runtime holder and upstream pool, and
 * the link that keeps it fed with verified snapshots. Its state dir (keys, trust, last snapshot) is
 * locked against a second process. `startNode` is used by `main.ts`, `bin/start.ts` and tests; it reads
 * no global state except what its options name.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { JWK } from 'jose';
import { applyDelta, buildRuntime, RuntimeHolder } from '../config/runtime.js';
import { createDataPlaneServer } from './data-plane-server.js';
import { lockStateDir, type StateDirLock } from './state-dir-lock.js';
import type { HttpServer } from '../http/server.js';
import { createLogger, type Logger } from '../log.js';
import { generateNodeIdentity, nodeIdentityFromPrivate, type NodeIdentityKey } from '../snapshot/node-credential.js';
import { generateNodeKeyPair, nodeKeyPairFromPrivate, type NodeKeyPair } from '../snapshot/seal.js';
import { UpstreamPool } from '../upstream/pool.js';
import { ControlPlaneLink } from './control-plane-link.js';
import { ControlPlaneCredentialSource } from '../credentials/source.js';
import { GatewayError } from '../errors.js';
import { upstreamCall, type UpstreamCall } from '../pipeline/credentials.js';
import type { CredentialAnswer } from '../snapshot/credential-protocol.js';
import { createLimiter } from '../limits/limiter.js';
import { SpendReporter } from '../limits/spend-reporter.js';
import { registerAuditMetrics } from '../audit/metrics.js';
import { AuditOutbox } from '../audit/outbox.js';
import { createAuditRecorder, type AuditRecorder } from '../audit/recorder.js';
import { AuditShipper } from '../audit/shipper.js';
import { createAuditSink } from '../audit/sink.js';
import { AuditSettingsIndex, createContentGuard } from '../guardrail/policy.js';
import { scanValue, SecretScanner } from '../guardrail/scanner.js';
import { GuardrailPolicySchema } from '../snapshot/schema.js';
import { createOtelSink } from '../tracing/otel.js';
import { nodeMsSettings } from './ms-settings.js';

export interface NodeOptions {
  controlPlaneUrl: string;
  /** The shared node token (weaker); null or absent: the node enrolls its own keys (see enrollmentToken). */
  nodeToken?: string | null;
  /** One-time enrollment token (GATEHOUSE_ENROLLMENT_TOKEN); without it the node waits for approveNode. */
  enrollmentToken?: string | null;
  port: number;
  host?: string;
  nodeId?: string;
  /** Keeps the node key, trust store and last good snapshot; null keeps nothing on disk. Resolved against the cwd at start. */
  stateDir: string | null;
  /**
   * The state dir was removed or its lock taken over while the node ran: it can no longer keep keys,
   * snapshots or audit events there, and another node may be using it. Default: the node closes (main.ts
   * exits the process). Before, a node whose state dir (or cwd) was removed ran on, and one on a relative
   * state dir in a removed cwd spun a core in recursive mkdir (libuv loops on ENOENT there).
   */
  onStateDirLost?: (reason: string) => void;
  trustedJwks?: unknown[] | null;
  /** Where `env.NAME` references are resolved (the node's own environment by default). */
  env?: Record<string, string | undefined>;
  logger?: Logger;
  reportIntervalMs?: number;
  /**
   * Idle upstreams (shared credential, no call for this long) are pinged so their health is known without
   * traffic (`UpstreamPool`). Default: `GATEHOUSE_UPSTREAM_PROBE_MS`, else 30 s; 0 turns probing off.
   */
  upstreamProbeIntervalMs?: number;
  /** Browser origins allowed on `/mcp`; requests with any other `Origin` header are refused. */
  allowedOrigins?: readonly string[];
  /** Compact the state dir's deltas into a fresh base after this many deltas / bytes (see ControlPlaneLink). */
  compactAfterDeltas?: number;
  compactAfterBytes?: number;
  /**
   * Redis for rate limits and budgets shared by every node (`REDIS_URL`); absent = in-process counters,
   * exact for this node alone (the embedded default).
   */
  redisUrl?: string | null;
  /**
   * How long a closing node lets the requests in flight finish before it cuts them (`GATEHOUSE_DRAIN_MS`,
   * default 10 s). Long-lived streams end at once whatever this is: their clients reconnect.
   */
  drainMs?: number;
}

/** `GATEHOUSE_ALLOWED_ORIGINS`: comma-separated browser origins allowed on `/mcp`. */
export function allowedOriginsFromEnv(env: Record<string, string | undefined>): string[] {
  return (env.GATEHOUSE_ALLOWED_ORIGINS ?? '').split(',').map((o) => o.trim()).filter(Boolean);
}

export interface DataPlaneNode {
  url: string;
  nodeId: string;
  server: HttpServer;
  link: ControlPlaneLink;
  holder: RuntimeHolder;
  /** The audit trail's durable outbox (`<stateDir>/audit`) and its shipper to the control plane. */
  audit: { outbox: AuditOutbox; recorder: AuditRecorder };
  close(): Promise<void>;
}

/**
 * One of the node's private keys: from an environment variable (a private JWK, e.g. from a secret store),
 * else from its file in the state dir, else generated there. Keeping keys out of the state dir is what
 * makes a copied snapshot file useless.
 */
async function loadKey<T>(envValue: string | undefined, stateDir: string | null, file: string, fromPrivate: (jwk: JWK) => T, generate: () => Promise<T & { privateJwk: JWK }>): Promise<T> {
  if (envValue) return fromPrivate(JSON.parse(envValue) as JWK);
  const path = stateDir ? join(stateDir, file) : null;
  if (path && existsSync(path)) return fromPrivate(JSON.parse(readFileSync(path, 'utf8')) as JWK);
  const pair = await generate();
  if (path) writeFileSync(path, JSON.stringify(pair.privateJwk), { mode: 0o600 });
  return pair;
}

/** X25519: data keys are wrapped for it (GATEHOUSE_NODE_KEY). */
const loadNodeKey = (env: Record<string, string | undefined>, stateDir: string | null): Promise<NodeKeyPair> =>
  loadKey(env.GATEHOUSE_NODE_KEY, stateDir, 'node-key.json', nodeKeyPairFromPrivate, generateNodeKeyPair);

/** Ed25519: signs the node's requests (GATEHOUSE_NODE_IDENTITY_KEY). */
const loadIdentityKey = (env: Record<string, string | undefined>, stateDir: string | null): Promise<NodeIdentityKey> =>
  loadKey(env.GATEHOUSE_NODE_IDENTITY_KEY, stateDir, 'node-identity.json', nodeIdentityFromPrivate, generateNodeIdentity);

/**
 * The default node id: this host and port, so two nodes started from one checkout with different ports
 * get different ids (and, from them, different state dirs) without naming either.
 */
export function defaultNodeId(port: number): string {
  return `${hostname().replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 60)}-${port}`;
}

/** Where a node keeps its state unless told: one directory per node id, so nodes never share one. */
export function defaultStateDir(nodeId: string, root = './data'): string {
  return join(root, 'nodes', nodeId);
}

function loadNodeId(explicit: string | undefined, stateDir: string | null, port: number): string {
  if (explicit) return explicit;
  const path = stateDir ? join(stateDir, 'node-id') : null;
  if (path && existsSync(path)) return readFileSync(path, 'utf8').trim();
  const id = port === 0 ? `${defaultNodeId(0).slice(0, -2)}-${randomBytes(4).toString('hex')}` : defaultNodeId(port);
  if (path) writeFileSync(path, id + '\n');
  return id;
}

/** Kept importable from here: main.ts and tests catch it by this module. */
export { StateDirLockedError } from './state-dir-lock.js';

export async function startNode(options: NodeOptions): Promise<DataPlaneNode> {
  const env = options.env ?? process.env;
  // First, before anything is made or locked: a setting the node cannot use refuses the start (InvalidSettingError).
  const msSettings = nodeMsSettings(env);
  const logger = options.logger ?? createLogger('gatehouse-node');
  // Absolute from the start: every later write names the directory itself, whatever becomes of the cwd.
  const stateDir = options.stateDir === null ? null : resolve(options.stateDir);
  if (stateDir) mkdirSync(stateDir, { recursive: true });
  let stateDirLost = (_reason: string): void => undefined;
  const lock: StateDirLock | null = stateDir ? await lockStateDir(stateDir, logger, (reason) => stateDirLost(reason)) : null;
  const nodeId = loadNodeId(options.nodeId, stateDir, options.port);
  const nodeKey = await loadNodeKey(env, stateDir);
  const identity = await loadIdentityKey(env, stateDir);

  const holder = new RuntimeHolder();
  const auditEnabled = env.GATEHOUSE_AUDIT !== 'off';
  if (!auditEnabled) logger.warn({}, 'GATEHOUSE_AUDIT=off: this node records no audit events and applies no secrets guardrail (for benchmarks only)');
  const guardrailDefault = GuardrailPolicySchema.catch('off').parse(env.GATEHOUSE_GUARDRAIL_DEFAULT ?? 'off');
  let auditSettings = new AuditSettingsIndex([], guardrailDefault);
  const scanner = new SecretScanner();
  const guard = createContentGuard(() => auditSettings, scanner);
  // Shared OAuth tokens and per-user credentials come from the control plane on demand (never in snapshots).
  // Made before the pool (which probes shared OAUTH servers with their token) and the link (which the pool's
  // reports feed): `link` is only used once a snapshot has been applied, after it exists.
  const credentials: ControlPlaneCredentialSource = new ControlPlaneCredentialSource({ fetch: (request): Promise<CredentialAnswer> => link.fetchCredential(request), logger });
  const pool: UpstreamPool = new UpstreamPool({
    holder,
    logger,
    probeIntervalMs: options.upstreamProbeIntervalMs ?? msSettings.upstreamProbeMs,
    sharedOAuthCall: async (server): Promise<UpstreamCall | null> => {
      const resolved = await credentials.get(server, null);
      return resolved instanceof GatewayError ? null : upstreamCall(server, resolved, {}, '');
    },
  });
  const link = new ControlPlaneLink({
    controlPlaneUrl: options.controlPlaneUrl,
    nodeToken: options.nodeToken ?? null,
    enrollmentToken: options.enrollmentToken ?? null,
    identity,
    nodeId,
    nodePublicJwk: nodeKey.publicJwk,
    nodePrivateJwk: nodeKey.privateJwk,
    stateDir,
    trustedJwks: options.trustedJwks ?? null,
    logger,
    reportIntervalMs: options.reportIntervalMs,
    compactAfterDeltas: options.compactAfterDeltas,
    compactAfterBytes: options.compactAfterBytes,
    catalogs: () => pool.catalogs(),
    upstreams: () => pool.health.report(),
    applyDelta: (delta) => {
      const base = holder.current;
      // verifyDelta already checked the delta's base is the applied version, so a runtime exists.
      if (!base) throw new Error('a delta arrived before any snapshot');
      const { runtime, warnings } = applyDelta(base, delta);
      for (const warning of warnings) logger.warn({ version: delta.version }, warning);
      holder.set(runtime);
    },
    apply: (payload, dataKey) => {
      // Audit settings change only with whole snapshots (the control plane sends one when they do).
      auditSettings = new AuditSettingsIndex(payload.auditSettings ?? [], guardrailDefault);
      const { runtime, missingEnv } = buildRuntime(payload, dataKey, env);
      holder.set(runtime);
      return { missingEnv };
    },
  });
  await link.loadFromDisk();
  // An upstream's health changed: the control plane hears of it within a second, not at the next interval.
  pool.health.onTransition(() => link.reportSoon());

  // Every applied change drops cached credentials: the control plane announces a revoked or replaced
  // credential by touching its user, and a server's new settings may change what its credential is.
  holder.onChange(() => credentials.invalidate());
  // Limits (issue 7): priced calls go to the control plane; budget counters are seeded from what it persisted.
  const spend = new SpendReporter({
    fetch: (method, path, body) => link.nodeFetch(method, path, body),
    logger,
    file: stateDir ? join(stateDir, 'spend-outbox.jsonl') : null,
  });
  const limiter = createLimiter({
    redisUrl: options.redisUrl ?? undefined,
    spendSink: spend,
    spendSource: spend,
    logger,
    toolPrice: (server, tool) => holder.current?.servers.get(server)?.toolPricing?.[tool],
  });
  if (options.redisUrl) logger.info({}, 'rate limits and budgets use shared counters in Redis');
  const outbox = new AuditOutbox({ dir: stateDir ? join(stateDir, 'audit') : null, logger });
  const recorder = createAuditRecorder(outbox, nodeId);
  // GATEHOUSE_AUDIT_LINGER_MS: how long a batch waits to fill (default 250 ms). Longer means fewer, larger
  // posts (less CPU per event on both planes) and events reaching the store later.
  const shipper = new AuditShipper({
    outbox,
    controlPlaneUrl: options.controlPlaneUrl,
    authHeaders: (method, path) => link.authHeaders(method, path),
    logger,
    ...(msSettings.auditLingerMs !== undefined ? { lingerMs: msSettings.auditLingerMs } : {}),
  });
  // OpenTelemetry only when an OTLP endpoint is configured (nothing is loaded otherwise).
  const otel = await createOtelSink(env, nodeId, logger);
  const server = createDataPlaneServer({
    holder,
    ...(otel ? { timeStages: true } : {}),
    pool,
    logger,
    allowedOrigins: options.allowedOrigins ?? [],
    metricsToken: env.GATEHOUSE_METRICS_TOKEN?.trim() || null,
    registerMetrics: (registry) => registerAuditMetrics(registry, outbox),
    // GATEHOUSE_AUDIT=off (benchmarks' baseline only): no audit events and no guardrail on this node.
    ...(auditEnabled ? { guard } : {}),
    credentials,
    limiter,
    sinks: [
      ...(otel ? [otel] : []),
      ...(!auditEnabled ? [] : [
      createAuditSink({
        recorder,
        contentLogging: (keyId, server) => auditSettings.contentLogging(keyId, server),
        redact: (value, where) => scanValue(scanner, value, where),
        alreadyRedacted: (keyId, server) => auditSettings.policy(keyId, server) === 'redact',
      }),
      ]),
    ],
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '127.0.0.1', () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}`;
  logger.info({ url, nodeId, controlPlane: options.controlPlaneUrl }, 'data-plane node listening');
  link.start();
  shipper.start();

  let closed: Promise<void> | null = null;
  const node: DataPlaneNode = {
    url,
    nodeId,
    server,
    link,
    holder,
    audit: { outbox, recorder },
    // Once: a second call (the state dir lost while closing, a repeated signal) waits for the first.
    close: () => (closed ??= closeNode()),
  };
  stateDirLost = (reason) => {
    logger.error({ stateDir, reason }, 'the state dir was removed or its lock taken over: this node stops');
    if (options.onStateDirLost) options.onStateDirLost(reason);
    else void node.close();
  };
  return node;

  async function closeNode(): Promise<void> {
    lock?.closing();
    logger.info({}, 'data-plane node draining');
    // First, while the link still serves credentials to the calls in flight: they finish (up to the drain
    // deadline) instead of failing for their callers in a rolling deploy. Idle, this takes no time.
    const drained = await server.drain(options.drainMs ?? msSettings.drainMs);
    logger.info(drained, 'data-plane node drained');
    await link.stop();
    // After the server: the last requests' events are flushed to disk before the process goes.
    await shipper.stop();
    await outbox.close();
    await otel?.shutdown().catch(() => undefined);
    await pool.close();
    await limiter.close();
    await spend.close();
    await lock?.release();
  }
}
