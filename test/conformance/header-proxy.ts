/**
 * A small forwarding proxy that adds request headers, for pointing the MCP conformance suite at an endpoint
 * that needs them: the suite's CLI has no option to send headers, while a node's `/mcp` and `/mcp/{server}`
 * rightly answer 401 without a virtual key (`Authorization: Bearer gk_…`).
 *
 * Everything else passes through unchanged and streams both ways (SSE event by event, long-lived GET and
 * `subscriptions/listen` streams included), so the target's own transport behaviour is what the suite sees.
 * Two exceptions: `Host` is set to the target's (the target checks it, the suite sent the proxy's), and an
 * optional `rewrite` may change JSON request bodies and `application/json` response bodies (which are then
 * buffered): the aggregated `/mcp` harness uses it to map tool names.
 */
import { createServer, request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface BodyRewrite {
  /** A JSON request body (parsed); return the body to send instead. */
  request?(body: unknown): unknown;
  /** An `application/json` response body (parsed); return the body to send instead. */
  response?(body: unknown): unknown;
}

export interface HeaderProxyOptions {
  /**
   * Where to forward, e.g. `http://127.0.0.1:8080/mcp/conformance`. The proxy serves the same path. Several
   * targets (same path, other nodes) are used in turn, one request each, like a round-robin load balancer.
   */
  target: string | readonly string[];
  /** Header name → value, added to (and replacing any of the same name in) every request. */
  headers: Readonly<Record<string, string>>;
  rewrite?: BodyRewrite;
}

export interface HeaderProxy {
  /** The proxy's URL for the target's path: what to give the suite. */
  url: string;
  close(): Promise<void>;
}

const HOP_BY_HOP = ['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection', 'te', 'trailer'];

/** A whole message body. */
export function readAll(stream: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.on('error', reject);
  });
}

/** Applies `fn` to a JSON body; a body that is not JSON passes unchanged. */
function rewriteJson(body: Buffer, fn: ((value: unknown) => unknown) | undefined): Buffer {
  if (!fn || body.length === 0) return body;
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    return body;
  }
  return Buffer.from(JSON.stringify(fn(value)));
}

function withoutHopByHop(headers: IncomingMessage['headers']): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = { ...headers };
  for (const name of HOP_BY_HOP) delete out[name];
  return out;
}

export async function startHeaderProxy(options: HeaderProxyOptions): Promise<HeaderProxy> {
  const targets = (typeof options.target === 'string' ? [options.target] : options.target).map((t) => new URL(t));
  let turn = 0;
  const added = Object.fromEntries(Object.entries(options.headers).map(([name, value]) => [name.toLowerCase(), value]));

  const forward = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const target = targets[turn++ % targets.length] as URL;
    const headers = { ...withoutHopByHop(req.headers), ...added, host: target.host };
    let body: Buffer | null = null;
    if (options.rewrite?.request && req.method === 'POST') {
      body = rewriteJson(await readAll(req), options.rewrite.request);
      headers['content-length'] = String(body.length);
    }
    const upstream = httpRequest({ hostname: target.hostname, port: target.port, path: req.url, method: req.method, headers }, (answer) => {
      const outHeaders = withoutHopByHop(answer.headers);
      const rewriteResponse = options.rewrite?.response;
      if (rewriteResponse && answer.headers['content-type']?.startsWith('application/json')) {
        void readAll(answer).then((raw) => {
          const out = rewriteJson(raw, rewriteResponse);
          res.writeHead(answer.statusCode ?? 502, { ...outHeaders, 'content-length': String(out.length) }).end(out);
        });
        return;
      }
      res.writeHead(answer.statusCode ?? 502, outHeaders);
      // flushHeaders so an SSE stream that has not sent an event yet still reaches the client now.
      res.flushHeaders();
      answer.pipe(res);
    });
    upstream.on('error', (error) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' }).end(`proxy: ${error.message}`);
      else res.destroy();
    });
    // The client going away (a closed SSE stream is how 2026-07-28 cancels) goes upstream too.
    res.on('close', () => upstream.destroy());
    if (body !== null) upstream.end(body);
    else req.pipe(upstream);
  };

  const server: Server = createServer((req, res) => {
    forward(req, res).catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' }).end(`proxy: ${String(error)}`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}${(targets[0] as URL).pathname}`,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
