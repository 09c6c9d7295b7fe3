/**
 * The `fetch` the pooled MCP SDK transports use for HTTP and SSE upstreams: undici's `Agent.request`
 * (keep-alive connection pool, no fetch machinery) adapted to the `FetchLike` signature the SDK accepts,
 * plus the per-call caller headers from `credentials.ts`.
 *
 * Why not the global `fetch`: on the `/mcp` hot path every tool call is one upstream POST, and Node's
 * fetch costs several times more CPU per request than `Agent.request` (measured here: ~4× fewer requests
 * per second, sequential). JSON answers are read whole (bounded) into the `Response`; anything else (SSE
 * streams) is handed over as a stream, as it arrives. Redirects are never followed here: the SDK asks for
 * `redirect: 'manual'` and follows same-origin redirects itself.
 *
 * It does not retry, time out (the SDK's request timeout does) or add credentials (the transport's
 * `requestInit.headers` carry those).
 */
import { setMaxListeners } from 'node:events';
import { Readable } from 'node:stream';
import { Agent, type Dispatcher } from 'undici';
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';
import { currentExtraHeaders } from './credentials.js';

/** A JSON answer larger than this is refused instead of being buffered (an MCP tool result is far smaller). */
export const MAX_JSON_RESPONSE_BYTES = 32 * 1024 * 1024;

export function createUpstreamAgent(): Agent {
  // One Agent per pool: keep-alive connections per upstream origin, reused by every call.
  return new Agent({ keepAliveTimeout: 30_000, keepAliveMaxTimeout: 120_000, connect: { timeout: 10_000 } });
}

type HttpMethod = Dispatcher.HttpMethod;
const widened = new WeakSet<AbortSignal>();
const METHODS: ReadonlySet<string> = new Set(['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS']);

export function createUpstreamFetch(agent: Dispatcher): FetchLike {
  return async (input, init) => {
    const url = typeof input === 'string' ? new URL(input) : input;
    const method = (init?.method ?? 'GET').toUpperCase();
    const body = init?.body;
    if (!METHODS.has(method) || (body !== undefined && body !== null && typeof body !== 'string' && !(body instanceof Uint8Array))) {
      // Not a shape the SDK sends today; keep working rather than guess.
      return fetch(url, withExtraHeaders(init));
    }
    const headers = headerRecord(init?.headers);
    const extra = currentExtraHeaders();
    if (extra) {
      // The transport's own headers (credentials, session, protocol version) win over a caller's.
      for (const [name, value] of Object.entries(extra)) if (!(name in headers)) headers[name] = value;
    }
    const signal = init?.signal ?? null;
    if (signal && !widened.has(signal)) {
      // The SDK passes one transport-wide signal to every request; with many calls in flight on one pooled
      // connection that is many listeners on one signal, which is expected here, not a leak.
      setMaxListeners(0, signal);
      widened.add(signal);
    }
    const response = await agent.request({
      origin: url.origin,
      path: url.pathname + url.search,
      method: method as HttpMethod,
      headers,
      body: body ?? null,
      signal,
    });
    const status = response.statusCode;
    const type = headerValue(response.headers, 'content-type') ?? '';
    if (status >= 200 && status < 300 && status !== 204 && status !== 205 && method !== 'HEAD' && type.includes('application/json')) {
      // The hot path (every tools/call answered with JSON). A web `Response` built around a buffered string
      // still runs its body through a ReadableStream, which cost about a third of a call's CPU here, so
      // the SDK gets a minimal response with the members its transports read (ok, status, headers.get/has,
      // text, json, body.cancel). Every other answer is a real `Response`.
      const text = await readBounded(response.body, MAX_JSON_RESPONSE_BYTES);
      return new BufferedJsonResponse(status, response.headers, text) as unknown as Response;
    }
    const responseHeaders = new Headers();
    for (const [name, value] of Object.entries(response.headers)) {
      if (Array.isArray(value)) for (const v of value) responseHeaders.append(name, v);
      else if (value !== undefined) responseHeaders.set(name, value);
    }
    if (status === 204 || status === 205 || status === 304 || method === 'HEAD' || status < 200) {
      response.body.resume();
      return new Response(null, { status: status < 200 ? 502 : status, headers: responseHeaders });
    }
    if (!type.includes('text/event-stream')) {
      const text = await readBounded(response.body, MAX_JSON_RESPONSE_BYTES);
      return new Response(text, { status, headers: responseHeaders });
    }
    // SSE: handed over as it arrives.
    return new Response(Readable.toWeb(response.body) as ReadableStream<Uint8Array>, { status, headers: responseHeaders });
  };
}

type RawHeaders = Dispatcher.ResponseData['headers'];

function headerValue(headers: RawHeaders, name: string): string | null {
  const value = headers[name.toLowerCase()];
  if (value === undefined) return null;
  return Array.isArray(value) ? value.join(', ') : value;
}

/** The read-only part of `Headers` over undici's lower-cased header record. */
class RecordHeaders {
  constructor(private readonly raw: RawHeaders) {}
  get(name: string): string | null {
    return headerValue(this.raw, name);
  }
  has(name: string): boolean {
    return this.raw[name.toLowerCase()] !== undefined;
  }
  forEach(callback: (value: string, name: string) => void): void {
    for (const name of Object.keys(this.raw)) {
      const value = headerValue(this.raw, name);
      if (value !== null) callback(value, name);
    }
  }
  *entries(): IterableIterator<[string, string]> {
    for (const name of Object.keys(this.raw)) {
      const value = headerValue(this.raw, name);
      if (value !== null) yield [name, value];
    }
  }
  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.entries();
  }
}

/** A fully read 2xx JSON answer; see the hot-path comment in `createUpstreamFetch`. */
class BufferedJsonResponse {
  readonly ok = true;
  readonly statusText = '';
  readonly url = '';
  readonly type = 'basic';
  readonly redirected = false;
  readonly headers: RecordHeaders;
  bodyUsed = false;
  readonly body = {
    cancel: async (): Promise<void> => {
      this.bodyUsed = true;
    },
  };

  constructor(
    readonly status: number,
    headers: RawHeaders,
    private readonly content: string,
  ) {
    this.headers = new RecordHeaders(headers);
  }

  async text(): Promise<string> {
    this.bodyUsed = true;
    return this.content;
  }

  async json(): Promise<unknown> {
    this.bodyUsed = true;
    return JSON.parse(this.content) as unknown;
  }
}

function withExtraHeaders(init: RequestInit | undefined): RequestInit | undefined {
  const extra = currentExtraHeaders();
  if (!extra) return init;
  const headers = new Headers(init?.headers);
  for (const [name, value] of Object.entries(extra)) if (!headers.has(name)) headers.set(name, value);
  return { ...init, headers };
}

/** Lower-cased header record from any `HeadersInit`. */
function headerRecord(input: RequestInit['headers']): Record<string, string> {
  const out: Record<string, string> = {};
  if (!input) return out;
  if (input instanceof Headers) {
    input.forEach((value, name) => {
      out[name] = value;
    });
  } else if (Array.isArray(input)) {
    for (const [name, value] of input) if (name !== undefined && value !== undefined) out[name.toLowerCase()] = value;
  } else {
    for (const [name, value] of Object.entries(input)) out[name.toLowerCase()] = value;
  }
  return out;
}

async function readBounded(body: Dispatcher.ResponseData['body'], limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const buffer = chunk as Buffer;
    size += buffer.length;
    if (size > limit) {
      body.destroy();
      throw new Error(`upstream response exceeds ${limit} bytes`);
    }
    chunks.push(buffer);
  }
  return chunks.length === 1 ? (chunks[0] as Buffer).toString('utf8') : Buffer.concat(chunks).toString('utf8');
}

