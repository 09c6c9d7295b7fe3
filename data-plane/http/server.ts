/**
 * The node's HTTP server (node:http, no framework): `/healthz`, `/readyz`, `/metrics`, and the pipeline
 * routes it is given (exact paths such as `/mcp`, prefixes such as `/mcp/` or `/anthropic/`); anything else
 * is a 404 `{type, message}`. Routing is a string comparison on the path, so the hot path stays lean.
 *
 * It does not know what a route does (the routes and the pipeline run them, `node/data-plane-server.ts`
 * wires them), own the Runtime (the node swaps it into the `RuntimeHolder`) or the process lifecycle: the
 * caller listens and closes.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { GatewayError, HttpMessage } from '../errors.js';
import type { RuntimeHolder } from '../config/runtime.js';
import type { Logger } from '../log.js';
import type { NodeMetrics } from './metrics.js';
import { errorAnswer, sendAnswer, sendJson } from './respond.js';

export type RouteHandler = (req: IncomingMessage, res: ServerResponse, path: string) => void;

export interface HttpServerOptions {
  holder: RuntimeHolder;
  logger: Logger;
  metrics: NodeMetrics;
  /** Exact path → handler. */
  routes: ReadonlyMap<string, RouteHandler>;
  /** Path prefix (ending in `/`) → handler, tried in order after the exact paths. */
  prefixes?: readonly (readonly [string, RouteHandler])[];
}

export function createHttpServer(options: HttpServerOptions): Server {
  const { holder, logger, metrics, routes } = options;
  const prefixes = options.prefixes ?? [];

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    try {
      const route = routes.get(path);
      if (route) {
        route(req, res, path);
        return;
      }
      switch (path) {
        case '/metrics':
          metrics.registry.metrics().then(
            (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
            (error: unknown) => {
              logger.error({ err: error }, 'metrics collection failed');
              sendAnswer(res, errorAnswer(new GatewayError('internal_error')));
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
          else sendAnswer(res, errorAnswer(new GatewayError('not_ready')));
          return;
        }
      }
      for (const [prefix, handler] of prefixes) {
        if (path.startsWith(prefix)) {
          handler(req, res, path);
          return;
        }
      }
      sendAnswer(res, errorAnswer(new GatewayError('not_found', { message: HttpMessage.noRoute(req.method ?? 'GET', path) })));
    } catch (error) {
      logger.error({ err: error, path }, 'request handler threw');
      if (!res.headersSent) sendAnswer(res, errorAnswer(new GatewayError('internal_error')));
      else res.destroy();
    }
  });
  // Slow-loris protection; upstream calls are bounded by their own tool timeouts.
  server.headersTimeout = 30_000;
  server.requestTimeout = 5 * 60_000;
  return server;
}
