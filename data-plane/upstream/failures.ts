/**
 * How upstream trouble is described: `UpstreamFailure` (a tool failure the caller sees as an `isError`
 * result), the outcome of a tool call, and short, secret-free reasons for errors (`describeError`, `scrub`).
 * Shared by the pooled SDK clients (`pool.ts`) and the direct Streamable HTTP calls (`http-calls.ts`).
 */
import { StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ErrorCode, McpError, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { secretForms, type ResolvedServer } from '../config/runtime.js';
import { ToolFailure, type GatewayError } from '../errors.js';
import { echoForms, holdsAny, scrubText } from '../secrets/scrubber.js';
import { showableLine } from '../snapshot/tool-names.js';
import type { UpstreamCall } from '../pipeline/credentials.js';

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
 * anything else keeps its message only after URLs and the server's secret values are removed from it, as
 * one line of display text (the upstream wrote it, and the caller's client prints it inside a tool error:
 * an ANSI escape or a bidi override there must not reach a terminal).
 */
export function describeError(error: unknown, server: ResolvedServer): string {
  if (error instanceof ConnectTimeout) return error.message;
  if (error instanceof McpError) {
    if (error.code === ErrorCode.ConnectionClosed) return 'connection closed';
    return showableLine(scrub(stripMcpPrefix(error), server));
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
    return showableLine(scrub(error.message, server).slice(0, 200)) || 'connection failed';
  }
  return 'connection failed';
}

/**
 * A reason fit for operators' eyes and the control plane's storage (upstream health): `scrub`bed, then
 * anything shaped like a credential removed as well (an upstream may echo a token we never configured, e.g.
 * a refreshed OAuth token or a caller's own header), control characters flattened, and cut to `max`.
 */
export function scrubReason(text: string, server: ResolvedServer, max = 200): string {
  let out = scrub(text, server)
    .replace(/\b(bearer|basic|token)\s+[^\s,;'"]+/gi, '$1 [redacted]')
    .replace(/\b([a-z0-9_-]*(?:key|token|secret|password|authorization|cookie)[a-z0-9_-]*)(\s*[=:]\s*)[^\s,;&'"]+/gi, '$1$2[redacted]')
    .replace(/[\u0000-\u001f\u007f]+/g, ' ')
    .trim();
  // Format characters (a bidi override, zero-width ones) as well: an admin reads this in GraphQL and the CLI.
  out = showableLine(out);
  return out.length > max ? `${out.slice(0, max - 1)}…` : out;
}

/** Removes URLs and the server's secret values (header values, env values, its URL) from a text. */
export function scrub(text: string, server: ResolvedServer): string {
  return scrubText(text, server.secrets).replace(/\b[a-z][a-z0-9+.-]*:\/\/[^\s'"<>]+/gi, '[url]');
}


const callSecretsCache = new WeakMap<ResolvedServer, WeakMap<object, readonly string[]>>();

/**
 * Everything an upstream could echo of what one call sent: the server's own secrets (its sealed and env
 * values, never a plain configured header) and the values the call's credential brought (a per-user or
 * OAuth credential is not among the server's), each also without its auth scheme. Longest first, so a value is removed before a part of it. Cached per credential object.
 */
export function callSecrets(call: UpstreamCall): readonly string[] {
  const credentials = call.credentialHeaders ?? call.server.headers;
  let byCredentials = callSecretsCache.get(call.server);
  if (!byCredentials) callSecretsCache.set(call.server, (byCredentials = new WeakMap()));
  let secrets = byCredentials.get(credentials);
  if (!secrets) {
    const all = new Set(call.server.secrets);
    const configured = call.server.headers;
    for (const name in credentials) {
      const value = credentials[name] as string;
      // A configured header's value is a secret only when it was configured as one (sealed or env: then it
      // is in `server.secrets` already); a plain one (`X-Tenant: production`) is ordinary text that answers
      // may well contain. Values the credential itself brought (a user's token, an OAuth token) are secrets.
      if (Object.hasOwn(configured, name) && configured[name] === value) continue;
      for (const form of secretForms(value)) all.add(form);
    }
    secrets = [...all].sort((a, b) => b.length - a.length);
    byCredentials.set(credentials, secrets);
  }
  return secrets;
}

/**
 * A tool or request result without any credential the call sent: an upstream that echoes the gateway's
 * credential (a debug tool, an error text inside a result) must not hand it to the caller, who is never to
 * hold it. `text`, the JSON the result was parsed from, when at hand: the common result holds no secret,
 * and a search of its text decides that without walking (or copying) the parsed value.
 */
export function resultWithoutSecrets<T>(call: UpstreamCall, result: T, text?: string): T {
  const secrets = callSecrets(call);
  if (secrets.length === 0) return result;
  if (text !== undefined && !holdsAny(text, echoForms(secrets))) return result;
  return scrubValue(result, secrets) as T;
}

/** A JSON value with the secrets removed from every string in it (keys included); the value itself when none occurs. */
export function scrubValue(value: unknown, secrets: readonly string[], depth = 0): unknown {
  if (typeof value === 'string') return scrubText(value, secrets);
  if (typeof value !== 'object' || value === null || depth > 64) return value;
  if (Array.isArray(value)) {
    let out: unknown[] | null = null;
    value.forEach((item, i) => {
      const scrubbed = scrubValue(item, secrets, depth + 1);
      if (scrubbed !== item) (out ??= [...value])[i] = scrubbed;
    });
    return out ?? value;
  }
  let changed = false;
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    const scrubbedKey = scrubText(key, secrets);
    const scrubbed = scrubValue(item, secrets, depth + 1);
    if (scrubbedKey !== key || scrubbed !== item) changed = true;
    // defineProperty: a key such as `__proto__` stays an own property, as JSON.parse made it.
    Object.defineProperty(out, scrubbedKey, { value: scrubbed, enumerable: true, writable: true, configurable: true });
  }
  return changed ? out : value;
}

/** An upstream's JSON-RPC error relayed to a caller: message and data without anything the call sent as a credential. */
export function scrubRpcError(call: UpstreamCall, outcome: { code: number; message: string; data?: unknown; upstreamStatus?: number }): Extract<CallOutcome, { kind: 'rpc_error' }> {
  const secrets = callSecrets(call);
  const message = scrubText(outcome.message, secrets);
  const base = { kind: 'rpc_error' as const, code: outcome.code, message, ...(outcome.upstreamStatus !== undefined ? { upstreamStatus: outcome.upstreamStatus } : {}) };
  return outcome.data === undefined ? base : { ...base, data: scrubValue(outcome.data, secrets) };
}
