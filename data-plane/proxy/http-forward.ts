/**
 * The byte path of `/mcp/{server}` to a Streamable HTTP upstream: one `http-proxy-3` ProxyServer per node,
 * keep-alive agents, and per request the exact header set the route computed (`headers.ts`), the body the
 * route already read (or none, for GET and DELETE), and a callback that receives the upstream's response
 * to answer with (the route must swap the session id and may filter a `tools/list`; everything else it
 * pipes through unchanged, SSE event by event as the upstream flushes them).
 *
 * The caller going away aborts the upstream request (http-proxy-3 destroys it when the response closes
 * early), which is also how a 2026-07-28 client cancels a request. There is no idle timeout on the
 * upstream socket: a GET stream or a long tool call may stay quiet for minutes; connecting is bounded.
 *
 * It does not authenticate, authorize, or look at bodies.
 */
import { Agent as HttpAgent, type IncomingMessage, type ServerResponse } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { Readable } from 'node:stream';
import { ProxyServer } from 'http-proxy-3';

export interface ForwardRequest {
  /** The upstream's full URL (path and query are the upstream's, not the caller's). */
  target: URL;
  /** Every header the upstream request carries; the caller's own headers are not used. */
  headers: Record<string, string>;
  /** The request body, already read; null for none (GET, DELETE). */
  body: Buffer | null;
  /** Receives the upstream response; must answer `res` (the proxy writes nothing itself). */
  onResponse(upstream: IncomingMessage): void;
  /** The upstream could not be reached (or the connection broke before a response). */
  onError(error: Error): void;
}

const CONNECT_TIMEOUT_MS = 10_000;

export class HttpForwarder {
  readonly #proxy: ProxyServer;
  readonly #http = new HttpAgent({ keepAlive: true, maxSockets: 256 });
  readonly #https = new HttpsAgent({ keepAlive: true, maxSockets: 256 });
  /** The pending response callback of each request in flight (the proxy reports responses as events). */
  readonly #waiting = new WeakMap<IncomingMessage, (upstream: IncomingMessage) => void>();

  constructor() {
    this.#proxy = new ProxyServer({ selfHandleResponse: true, ignorePath: true, changeOrigin: true, xfwd: false });
    this.#proxy.on('proxyRes', (upstream, req) => {
      const respond = this.#waiting.get(req);
      this.#waiting.delete(req);
      if (respond) respond(upstream);
      else upstream.resume();
    });
    // Errors are reported per request through the web() callback; this keeps the emitter from throwing.
    this.#proxy.on('error', () => undefined);
  }

  forward(req: IncomingMessage, res: ServerResponse, request: ForwardRequest): void {
    // http-proxy-3 copies `req.headers` into the upstream request (synchronously, inside `web`): give it
    // exactly the computed set, then put the caller's back, so nothing that reads the request later sees
    // the upstream's credential headers.
    const callerHeaders = req.headers;
    req.headers = { ...request.headers };
    this.#waiting.set(req, request.onResponse);
    const https = request.target.protocol === 'https:';
    this.#proxy.web(
      req,
      res,
      {
        target: request.target,
        agent: https ? this.#https : this.#http,
        connectTimeout: CONNECT_TIMEOUT_MS,
        ...(request.body !== null ? { buffer: new OneChunk(request.body) } : {}),
      },
      (error) => {
        this.#waiting.delete(req);
        request.onError(error);
      },
    );
    req.headers = callerHeaders;
  }

  close(): void {
    this.#http.destroy();
    this.#https.destroy();
  }
}

/** A body already in memory as the stream http-proxy-3 pipes upstream (cheaper than `Readable.from`). */
class OneChunk extends Readable {
  #chunk: Buffer | null;
  constructor(chunk: Buffer) {
    super();
    this.#chunk = chunk;
  }
  override _read(): void {
    const chunk = this.#chunk;
    this.#chunk = null;
    if (chunk !== null && chunk.length > 0) this.push(chunk);
    this.push(null);
  }
}
