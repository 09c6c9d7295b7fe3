/**
 * The rules both planes apply to the same things, written once (the control plane imports only
 * `data-plane/snapshot/*`): which header names a server may configure, allowlist or ask a user for, and
 * which the node may forward; the Bearer credential parser; the `env.NAME` reference syntax. What the
 * control plane refuses to store is exactly what the node would refuse to send, so a configuration that
 * saves is one that works.
 *
 * Pure: no I/O, no state.
 */

/** RFC 9110 §5.6.2 token: what an HTTP field name may contain. */
export const HEADER_NAME_PATTERN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** An environment variable name (POSIX portable), as referenced by `env.NAME`. */
export const ENV_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;

const ENV_REF_PATTERN = /^env\.([A-Za-z_][A-Za-z0-9_]*)$/;

/** `env.NAME` → `NAME`; anything else (including a malformed reference) → null. */
export function parseEnvRef(value: string): string | null {
  return ENV_REF_PATTERN.exec(value)?.[1] ?? null;
}

/** RFC 9110 §7.6.1 connection-specific fields (and the legacy proxy-connection): meaningful for one hop only. */
export const HOP_BY_HOP_HEADERS: ReadonlySet<string> = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

/**
 * Fields that frame or route the request the node builds itself: a caller's or a configured value would
 * desynchronise it (`expect: 100-continue` stalls the upstream connection; `host` re-routes it).
 */
export const FRAMING_HEADERS: ReadonlySet<string> = new Set(['host', 'content-length', 'content-type', 'content-encoding', 'expect']);

/**
 * Fields that carry a caller's credentials to the gateway. Never forwarded from a caller (MCP security best
 * practices: no token pass-through); a server may still be configured to send its own.
 */
export const CREDENTIAL_HEADERS: ReadonlySet<string> = new Set(['authorization', 'proxy-authorization', 'cookie', 'x-api-key']);

/** MCP Streamable HTTP transport fields (2025-03-26 … 2026-07-28): the node's upstream client owns them. */
export const MCP_TRANSPORT_HEADERS: ReadonlySet<string> = new Set(['accept', 'mcp-session-id', 'mcp-protocol-version', 'mcp-method', 'mcp-name', 'last-event-id']);

/**
 * What a header name is used for:
 * - `configured`: a server's own credential headers (`headers`, and the keys of per-user header sets);
 * - `forwarded`: a caller's header the server allowlists (`allowedExtraHeaders`).
 */
export type HeaderUse = 'configured' | 'forwarded';

/**
 * Why `name` cannot be used so, or null when it can. Names are compared lower-cased; the text names the
 * header and is safe to show (no value is involved).
 */
export function headerNameProblem(name: string, use: HeaderUse): string | null {
  if (!HEADER_NAME_PATTERN.test(name)) return `"${name.slice(0, 100)}" is not a valid header name`;
  const lower = name.toLowerCase();
  if (HOP_BY_HOP_HEADERS.has(lower)) return `header "${name}" is connection-specific (hop-by-hop) and is never forwarded`;
  if (FRAMING_HEADERS.has(lower)) return `header "${name}" frames the request and is set by the gateway`;
  // `Mcp-Param-{Name}` (2026-07-28) mirrors a tool argument: only one the tool declares, checked against the
  // argument, may go upstream, and that is the route's decision per call, never a configured name's.
  if (MCP_TRANSPORT_HEADERS.has(lower) || lower.startsWith('mcp-param-')) return `header "${name}" belongs to the MCP transport and is set by the gateway`;
  if (use === 'forwarded' && CREDENTIAL_HEADERS.has(lower)) return `header "${name}" carries the caller's credentials and is never forwarded`;
  return null;
}

/**
 * RFC 9110 §5.5 field-value characters: visible ASCII, space, tab and obs-text (0x80–0xFF). The node's HTTP
 * client (undici) refuses any other character in a header value, so a value with one (a control character,
 * a character beyond Latin-1) could never be sent: every call to the server would fail.
 */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/** Why `value` cannot be sent as a header value, or null when it can. The text never quotes the value. */
export function headerValueProblem(value: string): string | null {
  if (!FIELD_VALUE.test(value)) return 'a header value may hold only visible characters, spaces and tabs (no control characters, nothing beyond Latin-1)';
  return null;
}

/** Whether the node forwards a caller header of this (lower-cased) name to a server that allowlists it. */
export function isForwardableHeader(lowerName: string): boolean {
  return headerNameProblem(lowerName, 'forwarded') === null;
}

/** RFC 6750 §2.1: `Bearer` (any case), one or more spaces or tabs, the token (no spaces), optional trailing space. */
const BEARER = /^Bearer[ \t]+([^\s]+)[ \t]*$/i;

/**
 * `Authorization` value → the Bearer token, or null when it is absent, not Bearer, or malformed. Length is
 * the caller's to judge (a long token is a wrong key, not a missing one); Node bounds header size anyway.
 */
export function parseBearer(header: string | null | undefined): string | null {
  if (header === null || header === undefined || header.length === 0) return null;
  return BEARER.exec(header)?.[1] ?? null;
}
