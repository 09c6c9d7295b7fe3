/**
 * The node's HTTP server (node:http, no framework): `/healthz`, `/readyz`, `/metrics`, and the pipeline
 * routes it is given (exact paths such as `/mcp`, prefixes such as `/mcp/` or `/anthropic/`); anything else
 * is a 404 `{type, message}`. Routing is a string comparison on the path, so the hot path stays lean.
 *
 * It does not know what a route does (the routes and the pipeline run them, `node/data-plane-server.ts`
 * wires them), own the Runtime (the node swaps it into the `RuntimeHolder`) or the process lifecycle: the
 * caller listens and closes. Closing gracefully is `drain` (what a stopping node does first): no new
 * connection, idle ones closed, in-flight answers let finish up to a deadline, long-lived streams ended.
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

/** What a drain did, for the closing node's log. */
export interface DrainResult {
  /** In-flight requests that finished within the deadline. */
  finished: number;
  /** Requests read during the drain, answered 503 `not_ready` (their clients retry elsewhere). */
  refused: number;
  /** Long-lived streams (GET event streams) ended at once: their clients reconnect to another node. */
  streamsEnded: number;
  /** In-flight requests still running at the deadline, cut. */
  cut: number;
}

/** The node's HTTP server, which can also be drained before it closes. */
export interface HttpServer extends Server {
  /**
   * Stops taking connections (new ones are refused; a request arriving on an open one gets 503 not_ready
   * with `Retry-After`), closes idle keep-alive connections and ends long-lived streams at once, lets
   * requests in flight finish for up to `deadlineMs`, then cuts what is left. Every request a connection
   * has delivered is answered (pipelined ones too, in order) and the last answer carries `Connection:
   * close`. Resolves once every connection is gone and every cut request was answered (its record
   * delivered), that last wait bounded too. Once only; later calls wait for the first.
   */
  drain(deadlineMs: number): Promise<DrainResult>;
}

/**
 * A GET asking for an event stream (`/mcp`'s or `/mcp/{server}`'s standalone SSE stream): open for as long
 * as the client stays, carrying no answer to a request, so a drain ends it instead of waiting for it. A
 * POST answered with an event stream is an answer in flight and is waited for.
 */
function longLived(req: IncomingMessage): boolean {
  return req.method === 'GET' && (req.headers.accept ?? '').includes('text/event-stream');
}

/** How long cut requests get to write their (failed) answer and record after their connection went. */
const CUT_SETTLE_MS = 2_000;

/**
 * `Retry-After` of a request refused by a draining node, in seconds: the balancer sends the retry to
 * another node (or this one's successor) at once, so the shortest the header can say.
 */
const DRAINING_RETRY_AFTER = '1';

/** The response node:http is writing on `socket` now (its first unanswered one), as node:http tracks it. */
function headOf(socket: Duplex): ServerResponse | null {
  return (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage ?? null;
}

export function createHttpServer(options: HttpServerOptions): HttpServer {
  const { holder, logger, metrics, routes } = options;
  const prefixes = options.prefixes ?? [];
  // Connections, not requests, are tracked (per request would cost on the hot path): a drain finds each
  // one's request in flight, if any, as node:http does (`_httpMessage`, see clientError below).
  const sockets = new Set<Duplex>();
  // Pipelined requests (HTTP/1.1: sent before the previous one was answered) get their handler at once and
  // their answer queued behind, in node:http's own queue, which a drain cannot see: kept here, in order,
  // until each one's turn on the connection comes. Only such requests land here (clients rarely pipeline).
  const queuedOn = new WeakMap<Duplex, ServerResponse[]>();
  const queueBehind = (socket: Duplex, res: ServerResponse): void => {
    let queue = queuedOn.get(socket);
    if (queue === undefined) queuedOn.set(socket, (queue = []));
    queue.push(res);
    // node:http answers them in order: its turn has come when it is given the connection.
    res.once('socket', () => void queue.shift());
  };
  /** The last answer known on `socket` (the one that closes it during a drain), or null if none is due. */
  const lastOn = (socket: Duplex): ServerResponse | null => {
    const queue = queuedOn.get(socket);
    return queue !== undefined && queue.length > 0 ? (queue[queue.length - 1] as ServerResponse) : headOf(socket);
  };
  let draining = false;
  // During a drain: every answer the drain waits for, and the answers it made close their connection.
  const inFlight = new Set<ServerResponse>();
  const closers = new WeakSet<ServerResponse>();
  let settled: (() => void) | null = null;
  let awaited = 0;
  let refused = 0;
  const awaitAnswer = (res: ServerResponse, socket: Duplex): void => {
    if (inFlight.has(res) || res.writableFinished) return;
    inFlight.add(res);
    awaited++;
    // A connection whose last answer still said keep-alive (written before the drain) stays open until the
    // drain ends: a request on it meanwhile gets the 503. Not closeIdleConnections(): it takes a connection
    // whose current answer is ended but not yet flushed (pipelined answers waiting their turn) for idle.
    const done = (): void => {
      if (inFlight.delete(res) && inFlight.size === 0) settled?.();
    };
    res.once('close', done);
    // A queued answer whose connection goes before its turn never closes by itself.
    socket.once('close', done);
  };
  /**
   * During a drain, the connection closes after its last known answer: that one says `Connection: close`,
   * and the one that said so before (answered later, a request arrived behind it) keeps the connection
   * open for it, as long as its headers are not written yet. So no request the node read goes unanswered.
   */
  const closeAfter = (socket: Duplex, res: ServerResponse): void => {
    // The answer due just before this one on the connection, if any is still due.
    const queue = queuedOn.get(socket) ?? [];
    const at = queue.indexOf(res);
    const previous = res.socket !== null ? null : at > 0 ? (queue[at - 1] as ServerResponse) : headOf(socket);
    if (previous !== null && closers.has(previous) && !previous.headersSent) {
      previous.shouldKeepAlive = true;
      closers.delete(previous);
    }
    markCloser(res);
  };
  const markCloser = (res: ServerResponse): void => {
    // One whose client asked for the close itself (`Connection: close`) keeps it: never handed back.
    if (res.headersSent || !res.shouldKeepAlive) return;
    res.shouldKeepAlive = false;
    closers.add(res);
  };
  /**
   * A request read while draining: it still gets its answer (a 503 for anything but /healthz, whose
   * client retries elsewhere), waited for by the drain, and its connection closes after it unless another
   * request is already queued behind it.
   */
  const admitWhileDraining = (req: IncomingMessage, res: ServerResponse, path: string): boolean => {
    const socket = req.socket;
    closeAfter(socket, res);
    awaitAnswer(res, socket);
    if (path === '/healthz') return false;
    refused++;
    logger.debug({}, 'request read while draining: refused with 503 not_ready');
    // Written once it is this answer's turn on the connection and node:http has read the rest of what
    // arrived with it: a request pipelined behind it then keeps the connection open for its own answer.
    const refuse = (): void => {
      if (res.destroyed) return;
      sendAnswer(res, errorAnswer(new GatewayError('not_ready', { message: 'this node is shutting down', headers: { 'retry-after': DRAINING_RETRY_AFTER } })));
    };
    if (res.socket !== null) setImmediate(refuse);
    else res.once('socket', () => setImmediate(refuse));
    return true;
  };

  // node:http's own Host check answers a bare 400; `headerLinesProblem` makes it (and more) a typed one.
  const server = createServer({ requireHostHeader: false }, (req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    // Queued behind an answer still due on its connection (pipelined): one property read on the hot path.
    if (res.socket === null) queueBehind(req.socket, res);
    // Not served here any more (but /healthz): the client retries on another node, or this one's successor.
    if (draining && admitWhileDraining(req, res, path)) return;
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
  server.on('connection', (socket: Duplex) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  // `Expect` other than 100-continue (which node answers itself, then the route runs as usual): node's bare
  // 417 becomes the table's. The body was not invited, so the connection is closed rather than drained.
  server.on('checkExpectation', (_req: IncomingMessage, res: ServerResponse) => {
    sendAnswer(res, errorAnswer(new GatewayError('expectation_failed', { headers: { connection: 'close' } })));
  });
  // Slow-loris protection; upstream calls are bounded by their own tool timeouts.
  server.headersTimeout = 30_000;
  server.requestTimeout = 5 * 60_000;

  let drained: Promise<DrainResult> | null = null;
  const drain = async (deadlineMs: number): Promise<DrainResult> => {
    draining = true;
    // Stops listening (new connections are refused) and closes the connections with no request on them.
    // node:http (closeIdleConnections) takes one whose answer is ended but still being written (a large
    // answer to a slow reader, pipelined answers going out) for idle and destroys it, cutting the answer:
    // such answers are shown to it as unfinished for that call. The drain waits for them below.
    const flushing = [...sockets].map(headOf).filter((res): res is ServerResponse => res !== null && res.finished && !res.writableFinished);
    for (const res of flushing) res.finished = false;
    let closed: Promise<void>;
    try {
      closed = new Promise<void>((resolve) => server.close(() => resolve()));
    } finally {
      for (const res of flushing) res.finished = true;
    }
    let streamsEnded = 0;
    for (const socket of sockets) {
      const res = headOf(socket);
      if (!res || res.writableFinished) continue;
      if (longLived(res.req)) {
        streamsEnded++;
        res.destroy();
        continue;
      }
      awaitAnswer(res, socket);
      for (const queued of queuedOn.get(socket) ?? []) awaitAnswer(queued, socket);
      // Its connection closes once its last answer is out (no keep-alive into a node that is going).
      const last = lastOn(socket);
      if (last !== null) markCloser(last);
    }
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      settled = resolve;
      if (inFlight.size === 0) resolve();
      timer = setTimeout(resolve, deadlineMs);
    });
    clearTimeout(timer);
    const cut = [...inFlight];
    if (cut.length > 0) logger.warn({ cut: cut.length, deadlineMs }, 'drain deadline passed: cutting the requests still in flight');
    server.closeAllConnections();
    for (const socket of sockets) socket.destroy();
    await closed;
    // A cut request's handler notices its caller went (its upstream call aborted) and answers into the
    // closed connection, recording the call then: waited for (bounded), so its audit event is flushed too.
    await answered(cut, CUT_SETTLE_MS);
    return { finished: awaited - refused - cut.length, refused, streamsEnded, cut: cut.length };
  };
  return Object.assign(server, { drain: (deadlineMs: number) => (drained ??= drain(deadlineMs)) });
}

/**
 * Resolves once each of `responses` has been ended by its handler (even into a connection already gone)
 * or `ms` passed. Nothing is emitted when a response whose connection is gone is ended ('finish' needs a
 * connection to flush to, 'close' came with the connection), so each one's `end` reports it, once.
 */
function answered(responses: readonly ServerResponse[], ms: number): Promise<void> {
  const pending = responses.filter((res) => !res.writableEnded);
  if (pending.length === 0) return Promise.resolve();
  return new Promise<void>((resolve) => {
    let left = pending.length;
    const timer = setTimeout(resolve, ms);
    for (const res of pending) {
      const end = res.end;
      res.end = function (this: ServerResponse, ...args: unknown[]): ServerResponse {
        res.end = end;
        const ended = Reflect.apply(end, this, args) as ServerResponse;
        if (--left === 0) {
          clearTimeout(timer);
          resolve();
        }
        return ended;
      } as ServerResponse['end'];
    }
  });
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
