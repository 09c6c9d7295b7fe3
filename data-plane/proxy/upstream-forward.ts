/**
 * The byte path of `/mcp/{server}` to a Streamable HTTP upstream, and of `/anthropic` to the LLM provider
 * (`anthropic/route.ts`, which meters and guards the answer it streams): one undici `Agent` per route (keep-alive
 * connections per upstream origin, the client `/mcp` uses too, `upstream/http-client.ts`), and per request
 * the exact header set the route computed (`headers.ts`), the body the route already read (or none, for GET
 * and DELETE). The answer is the upstream's status, headers and body stream, which the route swaps the
 * session id in and may filter; everything else goes through unchanged, SSE event by event as the
 * upstream flushes them.
 *
 * Why undici and not `http-proxy-3` over `node:http` (what both routes used before): per request the
 * node:http client costs far more CPU (ClientRequest, header validation, socket parsing), which kept
 * `/mcp/{server}` well below `/mcp` in `npm run bench` (issue 9 acceptance) and `/anthropic` far below its
 * provider.
 *
 * The caller going away aborts the upstream request (`signal`, before the answer; the respond stage
 * destroys the body after), which is also how a 2026-07-28 client cancels a request. There is no idle
 * timeout on the upstream (headers or body): a GET stream or a long tool call may stay quiet for minutes;
 * connecting is bounded. Redirects are never followed (the route refuses a 3xx).
 *
 * It does not authenticate, authorize, or look at bodies.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { Agent, type Dispatcher } from 'undici';
import { scrubBytes, scrubCutBytes } from '../secrets/scrubber.js';

export interface UpstreamAnswer {
  statusCode: number;
  headers: IncomingHttpHeaders;
  /** The body as it arrives (or whole, `arrayBuffer()`); destroying it aborts the upstream request. */
  body: Dispatcher.ResponseData['body'];
}

export interface UpstreamRequest {
  method: Dispatcher.HttpMethod;
  /** The upstream's full URL (path and query are the upstream's, not the caller's). */
  target: URL;
  /** Every header the upstream request carries; the caller's own headers are not used. */
  headers: Record<string, string>;
  /** The request body, already read; null for none (GET, DELETE). */
  body: Buffer | null;
  /** Aborted when the caller goes away. */
  signal: AbortSignal;
}

const CONNECT_TIMEOUT_MS = 10_000;

export class UpstreamForwarder {
  readonly #agent = new Agent({
    keepAliveTimeout: 30_000,
    keepAliveMaxTimeout: 120_000,
    connect: { timeout: CONNECT_TIMEOUT_MS },
    // No idle timeouts: an MCP GET stream or a long tool call may stay quiet for minutes (see above).
    headersTimeout: 0,
    bodyTimeout: 0,
  });

  /** Resolves with the upstream's answer, rejects when it could not be reached (or broke before answering). */
  async forward(request: UpstreamRequest): Promise<UpstreamAnswer> {
    const response = await this.#agent.request({
      origin: request.target.origin,
      path: request.target.pathname + request.target.search,
      method: request.method,
      headers: request.headers,
      body: request.body,
      signal: request.signal,
    });
    return { statusCode: response.statusCode, headers: response.headers as IncomingHttpHeaders, body: response.body };
  }

  close(): void {
    void this.#agent.destroy().catch(() => undefined);
  }
}

/** How much of an upstream's HTTP error body is relayed (read whole to remove secrets from it). */
const MAX_ERROR_BODY_BYTES = 64 * 1024;

/**
 * An upstream's HTTP error body, bounded, with the call's secrets removed; a body that breaks off ends where
 * it broke. A body cut at the bound (or broken off) that ends in what may be a secret's beginning ends with
 * `[redacted]` instead: the part of a secret before the cut is not the caller's either.
 */
export function scrubbedErrorBody(upstream: Readable, secrets: readonly string[]): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const done = (cut: boolean): void => {
      if (settled) return;
      settled = true;
      const body = Buffer.concat(chunks);
      resolve(cut ? scrubCutBytes(body, secrets) : scrubBytes(body, secrets));
    };
    upstream.on('data', (chunk: Buffer) => {
      if (size >= MAX_ERROR_BODY_BYTES) return;
      chunks.push(chunk.subarray(0, MAX_ERROR_BODY_BYTES - size));
      size += chunk.length;
      if (size >= MAX_ERROR_BODY_BYTES) {
        upstream.destroy();
        done(true);
      }
    });
    upstream.on('end', () => done(false));
    upstream.on('error', () => done(true));
  });
}
