/**
 * Which headers cross the gateway on `/mcp/{server}`, in each direction. Both lists are allowlists: a
 * header not named here is dropped, so a new header a client or an upstream invents never passes by default.
 *
 * Upstream-bound: the Streamable HTTP transport's own headers (the session id is swapped by the caller,
 * `session.ts`), the `Mcp-Param-*` headers a tools/call's tool declares (checked by the route; any other is
 * dropped), W3C trace context, and last, winning over all of them, the
 * credentials stage's headers (the server's credentials and the caller headers its `allowedExtraHeaders`
 * names, minus any that carries the caller's virtual key: `pipeline/credentials.ts`). The caller's `Authorization` is never among
 * them (MCP security best practices: no token pass-through), nor is `Accept-Encoding` (bodies stay
 * identity-encoded, so the gateway can read the ones it must filter).
 *
 * Client-bound: what an MCP client needs to read the answer (content type, session id, protocol version,
 * caching and retry hints, `Allow` on 405). Upstream cookies, `WWW-Authenticate` (the upstream's
 * authorization is the gateway's business, not the caller's), `Location` and server banners are dropped.
 *
 * It does not decide whether a request may pass (the route does) or open sessions (`session.ts`).
 */
import type { IncomingHttpHeaders } from 'node:http';

/** MCP Streamable HTTP request headers (2025-03-26 … 2026-07-28) and W3C trace context, forwarded as sent. */
const TRANSPORT_REQUEST_HEADERS = [
  'content-type',
  'accept',
  'mcp-protocol-version',
  'last-event-id',
  'mcp-method',
  'mcp-name',
  'traceparent',
  'tracestate',
] as const;

/** MCP 2026-07-28 streamable-http §custom headers: tool parameters mirrored as `Mcp-Param-{Name}`. */
export const PARAM_HEADER_PREFIX = 'mcp-param-';

const RESPONSE_HEADERS = ['content-type', 'cache-control', 'mcp-protocol-version', 'retry-after', 'allow'] as const;

/**
 * The headers of the upstream request for a caller's request. `callHeaders` are the credentials stage's
 * (`UpstreamCall.headers`: the server's credentials plus the caller headers its `allowedExtraHeaders` names,
 * never the caller's key); `sessionId` is the upstream's own session id (already unsealed), or null to send
 * none; `contentLength` is the length of the body that will be sent.
 */
export function upstreamRequestHeaders(
  incoming: IncomingHttpHeaders,
  callHeaders: Readonly<Record<string, string>>,
  sessionId: string | null,
  contentLength: number | null,
  /** The call's trace headers (`UpstreamCall.trace`). */
  trace?: Readonly<Record<string, string>>,
  /** The `Mcp-Param-*` headers to send: those the tool declares, as sent and checked (`server-route.ts`). */
  paramHeaders?: Readonly<Record<string, string>>,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of TRANSPORT_REQUEST_HEADERS) {
    const value = incoming[name];
    if (typeof value === 'string') out[name] = value;
  }
  // `Mcp-Param-*`: only those the route checked against the tool's declarations (never the caller's others).
  if (paramHeaders !== undefined) for (const name in paramHeaders) out[name] = paramHeaders[name] as string;
  if (sessionId !== null) out['mcp-session-id'] = sessionId;
  if (contentLength !== null) out['content-length'] = String(contentLength);
  if (trace !== undefined) for (const name in trace) out[name] = trace[name] as string;
  // Credentials (and allowlisted extras) last: nothing else a caller sends can replace them.
  for (const [name, value] of Object.entries(callHeaders)) out[name.toLowerCase()] = value;
  return out;
}

/** The allowlisted upstream response headers; `keepLength` keeps `Content-Length` (body passed unchanged). */
export function clientResponseHeaders(upstream: IncomingHttpHeaders, keepLength: boolean): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of RESPONSE_HEADERS) {
    const value = upstream[name];
    if (value !== undefined) out[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  if (keepLength && upstream['content-length'] !== undefined) out['content-length'] = upstream['content-length'];
  return out;
}
