/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/) for the node: parse a caller's `traceparent`
 * (from the HTTP header, or from a JSON-RPC message's `params._meta.traceparent`, the convention MCP
 * clients use over transports without headers), start a trace when there is none, and make the
 * `traceparent` each upstream call carries: same trace id, a fresh parent id (this hop), the caller's
 * flags and `tracestate` passed on unchanged.
 *
 * Pure, no I/O; spans and exporting are otel.ts.
 */
import { randomBytes } from 'node:crypto';

export interface TraceContext {
  /** 32 lower-case hex, not all zero. */
  traceId: string;
  /** 16 lower-case hex: the caller's span (or ours, for a trace started here). */
  parentId: string;
  /** 2 hex: trace flags (01 = sampled). */
  flags: string;
  tracestate?: string;
  /** Started on this node (the caller sent none): `parentId` is then our own root span's id. */
  local?: true;
}

// §3.2.2: version "00" has exactly four fields; a higher version may add more after a dash.
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/** A valid `traceparent` → its context; anything else (wrong shape, version ff, all-zero ids) → null (§3.2.2.x). */
export function parseTraceparent(value: unknown, tracestate?: unknown): TraceContext | null {
  if (typeof value !== 'string' || value.length > 512) return null;
  const m = TRACEPARENT.exec(value.trim());
  if (!m) return null;
  const [, version, traceId, parentId, flags, rest] = m as unknown as [string, string, string, string, string, string | undefined];
  if (version === 'ff' || (version === '00' && rest !== undefined)) return null;
  if (/^0+$/.test(traceId) || /^0+$/.test(parentId)) return null;
  const context: TraceContext = { traceId, parentId, flags };
  if (typeof tracestate === 'string' && validTracestate(tracestate)) context.tracestate = tracestate;
  return context;
}

// §3.3.1.3: list members `key=value`; key `[a-z][_0-9a-z-*/]{0,255}` or `tenant@system`; value up to 256
// printable ASCII characters other than `,` and `=`, not ending in a space. Optional whitespace around members.
const TRACESTATE_MEMBER = /^[ \t]*(?:[a-z][_0-9a-z\-*/]{0,255}|[a-z0-9][_0-9a-z\-*/]{0,240}@[a-z][_0-9a-z\-*/]{0,13})=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e][ \t]*$/;

/**
 * Whether a caller's `tracestate` may go upstream: at most 512 characters (what we keep) and 32 members,
 * each well formed (§3.3.1.3). It is the caller's text in a header the node sends on the gateway's
 * credential; anything else (a control character, a line break, a non-ASCII byte) is dropped, as §3.3.1.1
 * lets a vendor do with an invalid one, rather than relayed.
 */
export function validTracestate(value: string): boolean {
  if (value.length === 0 || value.length > 512) return false;
  const members = value.split(',');
  if (members.length > 32) return false;
  for (const member of members) if (member.trim() !== '' && !TRACESTATE_MEMBER.test(member)) return false;
  return true;
}

/** From a JSON-RPC message's params (`_meta.traceparent` / `_meta.tracestate`), if it carries one. */
export function traceFromMeta(params: unknown): TraceContext | null {
  if (typeof params !== 'object' || params === null) return null;
  const meta = (params as { _meta?: unknown })._meta;
  if (typeof meta !== 'object' || meta === null) return null;
  const m = meta as { traceparent?: unknown; tracestate?: unknown };
  return m.traceparent === undefined ? null : parseTraceparent(m.traceparent, m.tracestate);
}

// Random ids come from a pooled buffer: one randomBytes call per 256 ids, not one per request.
let pool = Buffer.alloc(0);
let at = 0;
function randomHex(bytes: number): string {
  if (at + bytes > pool.length) {
    pool = randomBytes(4096);
    at = 0;
  }
  const hex = pool.toString('hex', at, at + bytes);
  at += bytes;
  return hex;
}

export function newSpanId(): string {
  return randomHex(8);
}

/** A trace started here (the caller sent none), sampled. */
export function newTrace(): TraceContext {
  // Both ids from one slice of the pool: one native hex encoding per trace rather than two.
  const hex = randomHex(24);
  return { traceId: hex.slice(0, 32), parentId: hex.slice(32), flags: '01', local: true };
}

/**
 * The `traceparent` (and `tracestate`) headers for one upstream call of this trace, with `spanId` as this
 * hop. `callerToken`: the caller's virtual key; a `tracestate` that carries it is not sent (the rule for
 * every header a caller's text rides upstream in: `upstreamCall` drops an allowlisted header that does).
 */
export function upstreamTraceHeaders(trace: TraceContext, spanId: string = newSpanId(), callerToken = ''): Record<string, string> {
  const headers: Record<string, string> = { traceparent: `00-${trace.traceId}-${spanId}-${trace.flags}` };
  const state = trace.tracestate;
  if (state && (callerToken === '' || !state.includes(callerToken))) headers.tracestate = state;
  return headers;
}
