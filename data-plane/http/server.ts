/**
 * The node's HTTP server (node:http, no framework): routes `/mcp`, `/healthz`, `/readyz`, `/metrics`; anything else is
 * a 404 `{type, message}`. Routing is a string comparison on the path, so the hot path stays lean.
 *
 * It does not own the Runtime (the node swaps it into the `RuntimeHolder`), the upstream connections
 * (`UpstreamPool`), or the process lifecycle: the caller listens and closes. `/mcp/{server}` and
 * `/anthropic/...` are not served here yet.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import { HttpMessage } from '../errors.js';
import { createNodeMetrics } from './metrics.js';
import { createMcpHandler, sendError, sendJson, type McpCallEvent, type McpHandlerOptions } from '../mcp/handler.js';

export interface DataPlaneServerOptions extends Omit<McpHandlerOptions, 'onEvent'> {
  /**
   * Browser origins allowed to call `/mcp` (e.g. `https://app.example.com`). A request that carries an
   * `Origin` header not in this list gets 403 (MCP transports, "Security Warning": servers MUST validate
   * Origin, against DNS rebinding). Requests without `Origin` (CLI agents such as Claude Code) pass.
   */
  allowedOrigins?: readonly string[];
  /** One record per `/mcp` call that reached policy (for audit/metrics); must not throw or block. */
  onMcpEvent?: (event: McpCallEvent) => void;
  /** Registers more metrics (e.g. the audit outbox's) on this server's registry. */
  registerMetrics?: (registry: Registry) => void;
}

export function createDataPlaneServer(options: DataPlaneServerOptions): Server {
  const { holder, logger } = options;
  const metrics = createNodeMetrics(holder);
  options.registerMetrics?.(metrics.registry);
  const onEvent = (event: McpCallEvent): void => {
    metrics.record(event);
    options.onMcpEvent?.(event);
  };
  const mcp = createMcpHandler({
    holder,
    pool: options.pool,
    logger,
    ...(options.version !== undefined ? { version: options.version } : {}),
    ...(options.maxBodyBytes !== undefined ? { maxBodyBytes: options.maxBodyBytes } : {}),
    ...(options.now !== undefined ? { now: options.now } : {}),
    onEvent,
  });

  const allowedOrigins = new Set((options.allowedOrigins ?? []).map((o) => o.toLowerCase()));

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    try {
      switch (path) {
        case '/mcp': {
          const origin = req.headers.origin;
          if (origin !== undefined && !allowedOrigins.has(origin.toLowerCase())) {
            sendError(res, 'origin_not_allowed');
            return;
          }
          mcp(req, res);
          return;
        }
        case '/metrics':
          metrics.registry.metrics().then(
            (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
            (error: unknown) => {
              logger.error({ err: error }, 'metrics collection failed');
              sendError(res, 'internal_error');
            },
          );
          return;
        case '/healthz':
          // Up means the process answers; whether it can serve is /readyz.
          sendJson(res, 200, { status: 'ok' });
          return;
        case '/readyz': {
          const runtime = holder.current;
          if (runtime) sendJson(res, 200, { status: 'ready', version: runtime.version });
          else sendError(res, 'not_ready');
          return;
        }
        default:
          sendError(res, 'not_found', HttpMessage.noRoute(req.method ?? 'GET', path));
      }
    } catch (error) {
      logger.error({ err: error, path }, 'request handler threw');
      if (!res.headersSent) sendError(res, 'internal_error');
      else res.destroy();
    }
  });
  // Slow-loris protection; upstream calls are bounded by their own tool timeouts.
  server.headersTimeout = 30_000;
  server.requestTimeout = 5 * 60_000;
  return server;
}
