/**
 * The node's data-plane server, wired: the pipeline with its hooks (limits, credentials, record sinks),
 * and the routes that run through it. This is the one place a new route or a new hook implementation is
 * plugged in (`/mcp/{server}` → passthrough, `/anthropic/...` → governance, a `Limiter`, a per-user
 * `CredentialSource`, the audit `RecordSink`).
 */
import type { Registry } from 'prom-client';
import type { ContentGuard } from '../guardrail/policy.js';
import type { RuntimeHolder } from '../config/runtime.js';
import { createNodeMetrics } from '../http/metrics.js';
import { createHttpServer, type HttpServer, type RouteHandler } from '../http/server.js';
import type { Logger } from '../log.js';
import { createMcpRoute } from '../mcp/route.js';
import type { RequestRecord } from '../pipeline/context.js';
import { staticCredentials, type CredentialSource } from '../pipeline/credentials.js';
import { NO_LIMITS, type Limiter } from '../pipeline/limits.js';
import { createPipeline } from '../pipeline/pipeline.js';
import { createPooledForward } from '../proxy/pooled.js';
import { createServerRoute, SERVER_ROUTE_PREFIX } from '../proxy/server-route.js';
import { ANTHROPIC_ROUTE_PREFIX, createAnthropicRoute } from '../anthropic/route.js';
import type { RecordSink } from '../pipeline/record.js';
import type { UpstreamPool } from '../upstream/pool.js';
import { registerUpstreamHealthMetrics } from '../upstream/health.js';

export interface DataPlaneServerOptions {
  holder: RuntimeHolder;
  pool: UpstreamPool;
  logger: Logger;
  /** `serverInfo.version` in `initialize`. */
  version?: string;
  maxBodyBytes?: number;
  /** Clock for key expiry and latencies (tests). */
  now?: () => number;
  /** The bearer token that may read `/metrics` (GATEHOUSE_METRICS_TOKEN); none: `/metrics` answers 401. */
  metricsToken?: string | null;
  /**
   * Browser origins allowed to call the pipeline routes (e.g. `https://app.example.com`). A request that
   * carries an `Origin` header not in this list gets 403 (MCP transports, "Security Warning": servers MUST
   * validate Origin, against DNS rebinding). Requests without `Origin` (CLI agents such as Claude Code) pass.
   */
  allowedOrigins?: readonly string[];
  /** The limits stage (default: admit everything). */
  limiter?: Limiter;
  /** The credentials stage's source (default: each server's configured headers, shared by all callers). */
  credentials?: CredentialSource;
  /** Record sinks besides the node's metrics (audit); called after each answer is sent, must not block. */
  sinks?: readonly RecordSink[];
  /** The secrets guardrail on tool arguments and results (none: content passes as is). */
  guard?: ContentGuard;
  /** Time stages 5–7 into records (for OpenTelemetry spans); off unless an OTLP endpoint is configured. */
  timeStages?: boolean;
  /** Registers more metrics (the audit outbox's) on this server's registry. */
  registerMetrics?: (registry: Registry) => void;
  /** Convenience sink (tests): every record. */
  onRecord?: (record: RequestRecord) => void;
}

export function createDataPlaneServer(options: DataPlaneServerOptions): HttpServer {
  const { holder, pool, logger } = options;
  const metrics = createNodeMetrics(holder);
  registerUpstreamHealthMetrics(metrics.registry, pool.health);
  options.registerMetrics?.(metrics.registry);
  const sinks: RecordSink[] = [metrics, ...(options.sinks ?? [])];
  if (options.onRecord) sinks.push({ record: options.onRecord });
  const run = createPipeline({
    holder,
    logger,
    allowedOrigins: options.allowedOrigins ?? [],
    limiter: options.limiter ?? NO_LIMITS,
    credentials: options.credentials ?? staticCredentials,
    sinks,
    ...(options.now !== undefined ? { now: options.now } : {}),
    ...(options.timeStages ? { timeStages: true } : {}),
  });
  const mcp = createMcpRoute({
    pool,
    logger,
    credentials: options.credentials ?? staticCredentials,
    ...(options.version !== undefined ? { version: options.version } : {}),
    ...(options.maxBodyBytes !== undefined ? { maxBodyBytes: options.maxBodyBytes } : {}),
    ...(options.guard !== undefined ? { guard: options.guard } : {}),
  });
  const serverRoute = createServerRoute({
    logger,
    pooled: createPooledForward(pool, logger),
    catalog: (server, call) => pool.listTools(server, call),
    health: pool.health,
    ...(options.maxBodyBytes !== undefined ? { maxBodyBytes: options.maxBodyBytes } : {}),
    ...(options.guard !== undefined ? { guard: options.guard } : {}),
  });
  const routes = new Map<string, RouteHandler>([['/mcp', (req, res) => run(mcp, req, res)]]);
  const anthropic = createAnthropicRoute({ logger, ...(options.guard !== undefined ? { guard: options.guard } : {}) });
  const prefixes: [string, RouteHandler][] = [
    [SERVER_ROUTE_PREFIX, (req, res) => run(serverRoute, req, res)],
    [ANTHROPIC_ROUTE_PREFIX, (req, res) => run(anthropic, req, res)],
  ];
  const server = createHttpServer({ holder, logger, metrics, routes, prefixes, metricsToken: options.metricsToken ?? null });
  server.on('close', () => {
    serverRoute.close();
    anthropic.close();
  });
  return server;
}
