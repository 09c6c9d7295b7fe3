/**
 * The node's HTTP server (node:http, no framework): `/healthz`, `/readyz`, `/metrics`, and the pipeline
 * routes it is given (exact paths such as `/mcp`, prefixes such as `/mcp/` or `/anthropic/`); anything else
 * is a 404 `{type, message}`. Routing is a string comparison on the path, so the hot path stays lean.
 *
 * It does not know what a route does (the routes and the pipeline run them, `node/data-plane-server.ts`
 * wires them), own the Runtime (the node swaps it into the `RuntimeHolder`) or the process lifecycle: the
 * caller listens and closes.
 */
import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { GatewayError, HttpMessage, httpErrorOf } from '../errors.js';
import type { RuntimeHolder } from '../config/runtime.js';
import type { Logger } from '../log.js';
import { constantTimeEqual } from '../snapshot/key-hash.js';
import { parseBearer } from '../snapshot/rules.js';
import { headerLinesProblem } from './header-lines.js';
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
  /**
   * The bearer token that may read `/metrics` (GATEHOUSE_METRICS_TOKEN); without one, `/metrics` is refused.
   * The metrics name every MCP server and say which are down or refuse their credentials: an attacker's
   * map, and the node's port is the one every developer's laptop reaches.
   */
  metricsToken?: string | null;
}

/** Whether `authorization` carries `token` (compared in constant time). */
function presentsToken(authorization: string | undefined, token: string): boolean {
  const presented = parseBearer(authorization);
  return presented !== null && constantTimeEqual(presented, token);
}

export function createHttpServer(options: HttpServerOptions): Server {
  const { holder, logger, metrics, routes } = options;
  const prefixes = options.prefixes ?? [];

  // node:http's own Host check answers a bare 400; `headerLinesProblem` makes it (and more) a typed one.
  const server = createServer({ requireHostHeader: false }, (req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    try {
      const problem = headerLinesProblem(req);
      if (problem !== null) {
        // The connection is closed after the answer: a front proxy may have framed what follows differently.
        sendAnswer(res, errorAnswer(new GatewayError('invalid_request', { message: problem, headers: { connection: 'close' } })));
        return;
      }
      const route = routes.get(path);
      if (route) {
        route(req, res, path);
        return;
      }
      switch (path) {
        case '/metrics':
          if (!options.metricsToken || !presentsToken(req.headers.authorization, options.metricsToken)) {
            sendAnswer(res, errorAnswer(new GatewayError('metrics_token_required')));
            return;
          }
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
  // A request node:http cannot parse (conflicting Content-Length / Transfer-Encoding, obs-fold, bad chunk
  // sizes, a header section past the limit, bytes not allowed in a path) gets the table's `{type, message}`
  // like every other refusal, instead of node's bare status line. As node does by default, the answer is
  // written only when no answer on this connection has started (anything else would corrupt it), and the
  // connection is then closed: what follows bytes that could not be framed cannot be trusted to be a request.
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
    logger.debug({ code: error.code ?? 'unknown' }, 'malformed HTTP request refused');
    const inFlight = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage;
    if (!socket.writable || inFlight?.headersSent === true) {
      socket.destroy();
      return;
    }
    const answer = httpErrorOf(clientErrorOf(error));
    const text = JSON.stringify(answer.body);
    const head = [`HTTP/1.1 ${answer.status} ${STATUS_CODES[answer.status] ?? ''}`, 'content-type: application/json', `content-length: ${Buffer.byteLength(text)}`, 'connection: close'];
    // Closed once the answer is flushed (a peer that never reads or closes does not keep the socket).
    socket.once('finish', () => socket.destroy());
    socket.end(`${head.join('\r\n')}\r\n\r\n${text}`);
  });
  // `Expect` other than 100-continue (which node answers itself, then the route runs as usual): node's bare
  // 417 becomes the table's. The body was not invited, so the connection is closed rather than drained.
  server.on('checkExpectation', (_req: IncomingMessage, res: ServerResponse) => {
    sendAnswer(res, errorAnswer(new GatewayError('expectation_failed', { headers: { connection: 'close' } })));
  });
  // Slow-loris protection; upstream calls are bounded by their own tool timeouts.
  server.headersTimeout = 30_000;
  server.requestTimeout = 5 * 60_000;
  return server;
}

/** The table's error for a request node:http refused before any route saw it (node's own status choices). */
function clientErrorOf(error: NodeJS.ErrnoException): GatewayError {
  switch (error.code) {
    case 'HPE_HEADER_OVERFLOW':
      return new GatewayError('headers_too_large');
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return new GatewayError('payload_too_large', { message: 'chunk extensions are too large' });
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return new GatewayError('request_timeout');
    default:
      return new GatewayError('invalid_request', { message: HttpMessage.malformedRequest(error.code ?? 'unknown') });
  }
}
