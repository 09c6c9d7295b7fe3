/**
 * The `fetch` the pooled MCP SDK transports use for HTTP and SSE upstreams: undici's `Agent.request`
 * (keep-alive connection pool, no fetch machinery) adapted to the `FetchLike` signature the SDK accepts.
 *
 * Only the pool's own SDK connections use it now (catalog, list_changed, stdio/legacy SSE calls): tool calls
 * to Streamable HTTP upstreams go through `http-calls.ts` without the SDK. JSON answers are read whole
 * (bounded) into a real `Response`; SSE streams are handed over as they arrive. Redirects are never
 * followed here: the SDK asks for `redirect: 'manual'` and follows same-origin redirects itself.
 *
 * It does not retry, time out (the SDK's request timeout does) or add headers: the transport's
 * `requestInit.headers` carry every header a connection sends (credentials, and for a legacy SSE connection
 * opened for one caller's headers, those: see `pool.ts`).
 */
import { setMaxListeners } from 'node:events';
import { Readable } from 'node:stream';
import { Agent, type Dispatcher } from 'undici';
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';
import { readBounded } from './streamable-http.js';


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
      return fetch(url, init);
    }
    const headers = headerRecord(init?.headers);
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
    const responseHeaders = new Headers();
    for (const [name, value] of Object.entries(response.headers)) {
      if (Array.isArray(value)) for (const v of value) responseHeaders.append(name, v);
      else if (value !== undefined) responseHeaders.set(name, value);
    }
    if (status === 204 || status === 205 || status === 304 || method === 'HEAD' || status < 200) {
      response.body.resume();
      return new Response(null, { status: status < 200 ? 502 : status, headers: responseHeaders });
    }
    const type = responseHeaders.get('content-type') ?? '';
    if (!type.includes('text/event-stream')) {
      const text = await readBounded(response.body);
      return new Response(text, { status, headers: responseHeaders });
    }
    // SSE: handed over as it arrives.
    return new Response(Readable.toWeb(response.body) as ReadableStream<Uint8Array>, { status, headers: responseHeaders });
  };
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
