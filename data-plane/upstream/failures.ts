/**
 * How upstream trouble is described: `UpstreamFailure` (a tool failure the caller sees as an `isError`
 * result), the outcome of a tool call, and short, secret-free reasons for errors (`describeError`, `scrub`).
 * Shared by the pooled SDK clients (`pool.ts`) and the direct Streamable HTTP calls (`http-calls.ts`).
 */
import { StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ErrorCode, McpError, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type { ResolvedServer } from '../config/runtime.js';
import { ToolFailure, type GatewayError } from '../errors.js';

/**
 * - `credentials_refused`: the upstream answered 401/403: it is up, the credential is the problem;
 * - `unreachable`: no connection, a connection error or an unexpected answer; `timeout`: no answer in time.
 */
export type UpstreamFailureKind = 'timeout' | 'unreachable' | 'credentials_refused' | 'unavailable' | 'reconfigured' | 'cancelled';

/** A tool failure the caller sees as an `isError` result (or, for tools/list, as a skipped server). */
export class UpstreamFailure extends Error {
  constructor(
    readonly kind: UpstreamFailureKind,
    message: string,
    /** The HTTP status the upstream answered with, when it answered (for the audit trail). */
    readonly status?: number,
  ) {
    super(message);
    this.name = 'UpstreamFailure';
  }
}

/** `upstreamStatus`: the HTTP status the upstream answered with, where there was one (for the audit trail). */
export type CallOutcome =
  | { kind: 'result'; result: CallToolResult; upstreamStatus?: number }
  /** The upstream refused the credential and renewing it gave none (e.g. the user must authorize again). */
  | { kind: 'refused'; error: GatewayError }
  /** The upstream answered with a JSON-RPC error (e.g. invalid params); relayed as such, message scrubbed. */
  | { kind: 'rpc_error'; code: number; message: string; data?: unknown; upstreamStatus?: number };


export class ConnectTimeout extends Error {
  constructor(readonly ms: number) {
    super(`no answer within ${ms} ms`);
    this.name = 'ConnectTimeout';
  }
}

/** The failure for a `describeError` reason: an upstream that answered 401/403 refused the credential, it is not down. */
export function reasonFailure(server: string, reason: string): UpstreamFailure {
  const refused = /^HTTP (401|403)$/.exec(reason);
  if (refused) return new UpstreamFailure('credentials_refused', ToolFailure.credentialsRefused(server, Number(refused[1])));
  return new UpstreamFailure('unreachable', ToolFailure.unreachable(server, reason));
}

export function failureResult(text: string, upstreamStatus?: number): CallOutcome {
  const result: CallToolResult = { content: [{ type: 'text', text }], isError: true };
  return upstreamStatus === undefined ? { kind: 'result', result } : { kind: 'result', result, upstreamStatus };
}

export function stripMcpPrefix(error: McpError): string {
  return error.message.replace(/^MCP error -?\d+: /, '');
}

const NETWORK_CODES: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed',
  ETIMEDOUT: 'connection timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  EPIPE: 'connection closed',
  ENOENT: 'command not found',
  EACCES: 'permission denied',
  UND_ERR_CONNECT_TIMEOUT: 'connection timed out',
  UND_ERR_SOCKET: 'connection closed',
  UND_ERR_HEADERS_TIMEOUT: 'no response headers in time',
};

/** The `describeError` reasons that mean no answer came in time (rather than none could come). */
const TIMEOUT_REASONS: ReadonlySet<string> = new Set(['connection timed out', 'no response headers in time']);

/** The failure for an upstream request that got no answer, from its `describeError` reason: timed out or unreachable. */
export function transportFailure(server: string, reason: string): UpstreamFailure {
  return new UpstreamFailure(TIMEOUT_REASONS.has(reason) ? 'timeout' : 'unreachable', ToolFailure.unreachable(server, reason));
}

/**
 * A short, secret-free reason for an upstream failure. Known network and HTTP failures get fixed texts;
 * anything else keeps its message only after URLs and the server's secret values are removed from it.
 */
export function describeError(error: unknown, server: ResolvedServer): string {
  if (error instanceof ConnectTimeout) return error.message;
  if (error instanceof McpError) {
    if (error.code === ErrorCode.ConnectionClosed) return 'connection closed';
    return scrub(stripMcpPrefix(error), server);
  }
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as Error & { code?: unknown }).code;
    const known = typeof code === 'string' ? NETWORK_CODES[code] : undefined;
    if (known !== undefined) return known;
    if (typeof code === 'string' && code.includes('CERT')) return `TLS certificate problem (${code})`;
  }
  if (error instanceof StreamableHTTPError) {
    const status = error.code ?? -1;
    return status > 0 ? `HTTP ${status}` : 'unexpected response from upstream';
  }
  if (error instanceof Error) {
    const status = /\(HTTP (\d{3})\)|SSE error: Non-200 status code \((\d{3})\)/.exec(error.message);
    if (status) return `HTTP ${status[1] ?? status[2]}`;
    if (error.message === 'fetch failed') return 'connection failed';
    return scrub(error.message, server).slice(0, 200) || 'connection failed';
  }
  return 'connection failed';
}

/**
 * A reason fit for operators' eyes and the control plane's storage (upstream health): `scrub`bed, then
 * anything shaped like a credential removed as well (an upstream may echo a token we never configured, e.g.
 * a refreshed OAuth token or a caller's own header), control characters flattened, and cut to `max`.
 */
export function scrubReason(text: string, server: ResolvedServer, max = 200): string {
  const out = scrub(text, server)
    .replace(/\b(bearer|basic|token)\s+[^\s,;'"]+/gi, '$1 [redacted]')
    .replace(/\b([a-z0-9_-]*(?:key|token|secret|password|authorization|cookie)[a-z0-9_-]*)(\s*[=:]\s*)[^\s,;&'"]+/gi, '$1$2[redacted]')
    .replace(/[\u0000-\u001f\u007f]+/g, ' ')
    .trim();
  return out.length > max ? `${out.slice(0, max - 1)}…` : out;
}

/** Removes URLs and the server's secret values (header values, env values, its URL) from a text. */
export function scrub(text: string, server: ResolvedServer): string {
  let out = text;
  for (const secret of server.secrets) {
    if (out.includes(secret)) out = out.split(secret).join('[redacted]');
  }
  return out.replace(/\b[a-z][a-z0-9+.-]*:\/\/[^\s'"<>]+/gi, '[url]');
}
