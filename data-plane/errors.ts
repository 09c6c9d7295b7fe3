/**
 * The data plane's error table: every failure a node reports to a caller has one stable `code`, and this
 * module is the only place that turns a code into an HTTP status, a `{type, message}` JSON body, or a
 * JSON-RPC error (STYLE #2: translate once per boundary). It also holds the texts of tool-level failures
 * (upstream timed out / unreachable / unavailable) so that handlers carry no error literals.
 *
 * It does not decide *when* an error happens, and it does no I/O.
 */
import { ErrorCode } from '@modelcontextprotocol/sdk/types.js';
import { escapedUnshowable } from './snapshot/tool-names.js';

/**
 * A name the caller sent, as an error message repeats it: bounded, and each control or format character
 * (an ANSI escape, a bidi override, decoded from an `Mcp-Name`'s Base64 or a JSON `\u001b`) as a `\u{…}`
 * escape, as audit events store it: a client prints the message, and it must not rewrite its terminal.
 */
function echoed(text: string, max: number): string {
  return escapedUnshowable(text.slice(0, max));
}

/** Failures that end an HTTP request (or a JSON-RPC request) with a typed answer. */
export type GatewayErrorCode =
  | 'virtual_key_required'
  | 'invalid_key'
  | 'key_expired'
  | 'key_revoked'
  | 'origin_not_allowed'
  | 'tool_blocked'
  | 'rate_limited'
  | 'budget_exceeded'
  | 'invalid_request'
  | 'parse_error'
  | 'header_mismatch'
  | 'invalid_message'
  | 'not_found'
  | 'method_not_allowed'
  | 'payload_too_large'
  /** node:http refused the request's header section (too large, too many lines): answered before any route. */
  | 'headers_too_large'
  /** The request did not arrive within the server's request timeout. */
  | 'request_timeout'
  /** An `Expect` the node does not meet (anything but `100-continue`): answered before any route. */
  | 'expectation_failed'
  | 'not_ready'
  /** A per-user server and a caller with no usable credential for it: `data.mcp_auth_required` says where to connect. */
  | 'metrics_token_required'
  | 'auth_required'
  /** The server's credential cannot be had right now (authorization server down, shared OAuth needs an admin). */
  | 'credentials_unavailable'
  | 'internal_error'
  | 'session_not_found'
  | 'upstream_unavailable'
  | 'upstream_error'
  | 'limits_unavailable'
  | 'model_blocked'
  | 'provider_unavailable'
  | 'provider_error'
  | 'secret_detected';

/**
 * JSON-RPC codes this gateway answers with. -32700…-32603 are JSON-RPC 2.0's own; -32000/-32001 are taken
 * by the MCP SDK (ConnectionClosed, RequestTimeout), -32002 by MCP (resource not found) and -32042 by MCP
 * (URL elicitation), so the gateway's policy denials start at -32003.
 */
export const RpcCode = {
  ParseError: ErrorCode.ParseError, // -32700
  InvalidRequest: ErrorCode.InvalidRequest, // -32600
  MethodNotFound: ErrorCode.MethodNotFound, // -32601
  InvalidParams: ErrorCode.InvalidParams, // -32602
  InternalError: ErrorCode.InternalError, // -32603
  ToolBlocked: -32003,
  RateLimited: -32004,
  BudgetExceeded: -32005,
  /** MCP 2026-07-28 basic/transports/streamable-http: header and body disagree. */
  HeaderMismatch: -32020,
  /** MCP 2025-11-25 `URLElicitationRequiredError`: the client must send its user to a URL. */
  UrlElicitationRequired: -32042,
  /** Governance refusals other than rate limit and budget (limits unavailable, model blocked); `data.type` says which. */
  Governance: -32007,
  SecretDetected: -32008,
} as const;
export type RpcCode = (typeof RpcCode)[keyof typeof RpcCode];

interface ErrorSpec {
  status: number;
  /** The JSON-RPC code used when the same failure is reported inside a JSON-RPC response. */
  rpc: number;
  message: string;
}

/** THE table. Messages are defaults; a caller may pass a more specific one (never containing a secret). */
export const GATEWAY_ERRORS: Readonly<Record<GatewayErrorCode, ErrorSpec>> = {
  virtual_key_required: { status: 401, rpc: RpcCode.InvalidRequest, message: 'a virtual key is required: send Authorization: Bearer <key>' },
  invalid_key: { status: 401, rpc: RpcCode.InvalidRequest, message: 'the virtual key is not valid' },
  key_expired: { status: 403, rpc: RpcCode.InvalidRequest, message: 'the virtual key has expired' },
  key_revoked: { status: 403, rpc: RpcCode.InvalidRequest, message: 'the virtual key has been revoked' },
  origin_not_allowed: { status: 403, rpc: RpcCode.InvalidRequest, message: 'requests from this Origin are not allowed' },
  tool_blocked: { status: 403, rpc: RpcCode.ToolBlocked, message: 'this virtual key may not call that tool' },
  rate_limited: { status: 429, rpc: RpcCode.RateLimited, message: 'rate limit exceeded' },
  budget_exceeded: { status: 402, rpc: RpcCode.BudgetExceeded, message: 'budget exceeded' },
  invalid_request: { status: 400, rpc: RpcCode.InvalidRequest, message: 'invalid request' },
  /** A JSON-RPC route's body is not JSON: answered as JSON-RPC -32700 (id null), HTTP 400. */
  parse_error: { status: 400, rpc: RpcCode.ParseError, message: 'request body is not valid JSON' },
  /** MCP 2026-07-28 transports: `Mcp-Method`/`Mcp-Name` disagree with the body; JSON-RPC -32020 (id null), HTTP 400. */
  header_mismatch: { status: 400, rpc: RpcCode.HeaderMismatch, message: 'the Mcp-Method or Mcp-Name header does not match the request body' },
  /** A JSON-RPC route's body is JSON but not an acceptable message: answered as JSON-RPC -32600 (id null), HTTP 400. */
  invalid_message: { status: 400, rpc: RpcCode.InvalidRequest, message: 'invalid JSON-RPC message' },
  not_found: { status: 404, rpc: RpcCode.MethodNotFound, message: 'not found' },
  method_not_allowed: { status: 405, rpc: RpcCode.InvalidRequest, message: 'method not allowed' },
  payload_too_large: { status: 413, rpc: RpcCode.InvalidRequest, message: 'request body is too large' },
  headers_too_large: { status: 431, rpc: RpcCode.InvalidRequest, message: 'request header section is too large' },
  request_timeout: { status: 408, rpc: RpcCode.InvalidRequest, message: 'the request did not arrive in time' },
  expectation_failed: { status: 417, rpc: RpcCode.InvalidRequest, message: 'the only expectation this gateway meets is Expect: 100-continue' },
  not_ready: { status: 503, rpc: RpcCode.InternalError, message: 'this node has no configuration yet' },
  metrics_token_required: {
    status: 401,
    rpc: RpcCode.InvalidRequest,
    message: 'send Authorization: Bearer <GATEHOUSE_METRICS_TOKEN> to read /metrics (set the token on the node to allow scraping)',
  },
  auth_required: { status: 401, rpc: RpcCode.UrlElicitationRequired, message: 'authentication required' },
  credentials_unavailable: { status: 503, rpc: RpcCode.InternalError, message: 'the upstream credential is unavailable' },
  internal_error: { status: 500, rpc: RpcCode.InternalError, message: 'internal error' },
  // `/mcp/{server}` (data-plane/proxy): a sealed session id that this node refuses is "session not found"
  // (404, so the client starts a new session, as 2025-11-25 transports §session management says).
  session_not_found: { status: 404, rpc: RpcCode.InvalidRequest, message: 'session not found; start a new session with initialize' },
  upstream_unavailable: { status: 503, rpc: RpcCode.InternalError, message: 'the upstream server is unavailable on this node' },
  upstream_error: { status: 502, rpc: RpcCode.InternalError, message: 'the upstream server could not be reached' },
  // Governance (issue 7). A key whose limits cannot be checked (shared counters unreachable, the key set
  // to FAIL_CLOSED) is refused rather than let through uncounted.
  limits_unavailable: { status: 503, rpc: RpcCode.Governance, message: 'limits cannot be checked right now (shared counters unreachable); retry shortly' },
  model_blocked: { status: 403, rpc: RpcCode.Governance, message: 'this model is not available through the gateway (no price configured)' },
  provider_unavailable: { status: 503, rpc: RpcCode.Governance, message: 'the LLM provider is not configured or not available on this node' },
  provider_error: { status: 502, rpc: RpcCode.Governance, message: 'the LLM provider could not be reached' },
  // The secrets guardrail (data-plane/guardrail) under a `block` policy; the message names the kind, never the value.
  secret_detected: { status: 400, rpc: RpcCode.SecretDetected, message: 'a credential was detected and this gateway blocks it' },
};

export interface ErrorBody {
  type: GatewayErrorCode;
  message: string;
}

export interface HttpError {
  status: number;
  headers: Record<string, string>;
  body: ErrorBody;
}

/** The HTTP answer for a code: status, extra headers (WWW-Authenticate on 401, per RFC 6750 §3), JSON body. */
export function httpError(code: GatewayErrorCode, message?: string, extraHeaders?: Record<string, string>): HttpError {
  const spec = GATEWAY_ERRORS[code];
  const headers: Record<string, string> = { ...extraHeaders };
  if (spec.status === 401) {
    headers['www-authenticate'] = code === 'invalid_key' ? 'Bearer error="invalid_token"' : 'Bearer';
  }
  return { status: spec.status, headers, body: { type: code, message: message ?? spec.message } };
}

/**
 * A typed refusal or failure: the one kind of "stop" answer a pipeline stage gives (`pipeline/stage.ts`).
 * It carries a code from the table and, optionally, a more specific message (never a secret), extra
 * response headers (e.g. `Retry-After` on `rate_limited`) and machine-readable `data` (sent as the JSON-RPC
 * error's `data` next to `type`). How it is shown (HTTP `{type, message}`, a JSON-RPC error, a tool result)
 * is decided once per route when it answers, from this table.
 */
export class GatewayError extends Error {
  readonly code: GatewayErrorCode;
  readonly headers: Readonly<Record<string, string>> | undefined;
  readonly data: Readonly<Record<string, unknown>> | undefined;
  /** Why, for logs and the record (e.g. `not_granted`); never shown to the caller. */
  readonly reason: string | undefined;

  constructor(
    code: GatewayErrorCode,
    options: { message?: string; headers?: Record<string, string>; data?: Record<string, unknown>; reason?: string } = {},
  ) {
    super(options.message ?? GATEWAY_ERRORS[code].message);
    this.name = 'GatewayError';
    this.code = code;
    this.headers = options.headers;
    this.data = options.data;
    this.reason = options.reason;
  }

  /** HTTP status from the table. */
  get status(): number {
    return GATEWAY_ERRORS[this.code].status;
  }
}

/** The HTTP answer for a `GatewayError` (see `httpError`). */
export function httpErrorOf(error: GatewayError): HttpError {
  return httpError(error.code, error.message, error.headers === undefined ? undefined : { ...error.headers });
}

/** The JSON-RPC error response for a `GatewayError`: the table's code, `data.type` plus the error's own data. */
export function rpcErrorOf(id: JsonRpcId, error: GatewayError): JsonRpcErrorResponse {
  const spec = GATEWAY_ERRORS[error.code];
  return { jsonrpc: '2.0', id, error: { code: spec.rpc, message: error.message, data: { ...error.data, type: error.code } } };
}

export type JsonRpcId = string | number | null;

export interface JsonRpcErrorObject {
  code: number;
  message: string;
  data?: unknown;
}

export interface JsonRpcErrorResponse {
  jsonrpc: '2.0';
  id: JsonRpcId;
  error: JsonRpcErrorObject;
}

/** A JSON-RPC error response for a gateway code; `data.type` carries the stable code for machines. */
export function rpcGatewayError(id: JsonRpcId, code: GatewayErrorCode, message?: string): JsonRpcErrorResponse {
  const spec = GATEWAY_ERRORS[code];
  return { jsonrpc: '2.0', id, error: { code: spec.rpc, message: message ?? spec.message, data: { type: code } } };
}

/** A JSON-RPC protocol error (parse error, invalid request, unknown method, bad params). */
export function rpcError(id: JsonRpcId, code: number, message: string, data?: unknown): JsonRpcErrorResponse {
  return data === undefined ? { jsonrpc: '2.0', id, error: { code, message } } : { jsonrpc: '2.0', id, error: { code, message, data } };
}

/** Texts of JSON-RPC protocol errors on `/mcp` (code chosen by the caller from `RpcCode`). */
export const RpcMessage = {
  parseError: () => 'request body is not valid JSON',
  batch: () => 'JSON-RPC batches were removed in MCP protocol 2025-06-18; send one message per POST',
  emptyBatch: () => 'empty JSON-RPC batch',
  batchTooLarge: (limit: number) => `a JSON-RPC batch may hold at most ${limit} messages`,
  initializeInBatch: () => 'initialize must not be part of a JSON-RPC batch',
  notAnObject: () => 'expected a JSON-RPC message object',
  notAMessage: () => 'not a JSON-RPC message',
  invalidNotification: () => 'invalid JSON-RPC notification',
  invalidRequest: () => 'invalid JSON-RPC request',
  idOutOfRange: () => 'a JSON-RPC id must be a string or an integer within ±(2^53 − 1): a larger or fractional number cannot be echoed back exactly',
  invalidParams: (method: string) => `invalid ${method} params`,
  tooDeep: (max: number) => `params nest deeper than ${max} levels`,
  methodNotFound: (method: string) => `method '${echoed(method, 100)}' is not supported on /mcp`,
  toolBlocked: (tool: string) => `tool '${echoed(tool, 200)}' is not available to this virtual key`,
} as const;

/** Texts of guardrail refusals: the kinds of secret and where, never a value. */
export const GuardrailMessage = {
  blocked: (direction: 'request' | 'response', kinds: readonly string[], where: string) =>
    `blocked: the ${direction} contains what looks like a credential (${kinds.slice(0, 5).join(', ')}) in ${where.slice(0, 200)}; remove it or ask an admin to change the guardrail policy`,
} as const;

/** Texts of HTTP errors that say more than the table's default. */
export const HttpMessage = {
  onlyPost: () => 'only POST is supported on /mcp (stateless Streamable HTTP)',
  unsupportedProtocolVersion: (version: string) => `unsupported MCP-Protocol-Version: ${echoed(version, 40)}`,
  bodyTooLarge: (limit: number) => `request body exceeds ${limit} bytes`,
  repeatedAuthorization: () => 'send one Authorization header: this request carries several',
  /** A field sent more than once that must be sent once (`http/header-lines.ts`); names the field, never a value. */
  repeatedHeader: (name: string) => `send one ${name.slice(0, 60)} header: this request carries several`,
  missingHost: () => 'an HTTP/1.1 request must carry a Host header',
  invalidHost: () => 'the Host header is not a valid host[:port]',
  /** node:http could not parse the request (framing, header syntax): its parser's code, never the bytes. */
  malformedRequest: (code: string) => `malformed HTTP request (${code.slice(0, 40)}); the connection is closed`,
  noRoute: (method: string, path: string) => `no route for ${echoed(method, 40)} ${echoed(path, 200)}`,
  /** `/mcp/{server}`: the same answer whether the server does not exist or the key may not use it (no enumeration). */
  noServerForKey: (server: string) => `no MCP server '${echoed(server, 100)}' is available to this virtual key`,
  serverRouteMethods: () => 'only POST, GET and DELETE are supported on /mcp/{server} (Streamable HTTP)',
  perUserOverPool: (server: string) => `server '${server}' needs each caller's own credential, which a stdio process shared by every caller cannot carry`,
  streamNeedsSession: () => 'a GET stream on /mcp/{server} belongs to an MCP session: send the Mcp-Session-Id the initialize answer gave (without one there is no stream here)',
  deleteNeedsSession: () => 'DELETE ends an MCP session: send its Mcp-Session-Id',
  pooledRouteMethods: () => "this server is reached through the node's pooled connection: POST only (stateless; no GET stream, no session)",
  upstreamRefused: (server: string, status: number) => `upstream server '${server}' refused the gateway's request (HTTP ${status})`,
  upstreamUnreachable: (server: string, reason: string) => `upstream server '${server}' is unreachable: ${reason}`,
  noSessionSecret: () => 'this node cannot issue MCP sessions yet (its snapshot carries no session secret)',
  batchNeedsGateway: () => 'this JSON-RPC batch holds a message the gateway must answer itself (a denied tools/call or a filtered tools/list); send those one per POST',
} as const;

/**
 * Texts of tool-level failures. These become `CallToolResult`s with `isError: true` (MCP: a tool that ran
 * into trouble answers with a result the model can read, not a protocol error). Each names the server and
 * never includes a URL, a header value or an upstream error text that could echo one.
 */
export const ToolFailure = {
  timeout: (server: string, ms: number) => `upstream server '${server}' timed out after ${ms} ms`,
  unreachable: (server: string, reason: string) => `upstream server '${server}' is unreachable: ${reason}`,
  credentialsRefused: (server: string, status: number) => `upstream server '${server}' refused the gateway's credentials (HTTP ${status}); an administrator must update them`,
  unavailable: (server: string, reason: string) => `server '${server}' unavailable on this node: ${reason}`,
  invalidResult: (server: string) => `upstream server '${server}' returned a result that is not a valid MCP tool result`,
  cancelled: (server: string) => `call to upstream server '${server}' was cancelled because the caller went away`,
  reconfigured: (server: string) => `server '${server}' was reconfigured while this call was in flight; retry the call`,
} as const;

/** The reasons that make a server unavailable on a node (`ToolFailure.unavailable`'s second argument). */
export const UnavailableReason = {
  missingEnv: (names: readonly string[]) =>
    names.length === 1 ? `environment variable ${names[0]} is not set` : `environment variables ${names.join(', ')} are not set`,
  disabled: () => 'the server is disabled',
  badUrl: () => 'its URL is not a valid http(s) URL',
  noUrl: () => 'it has no URL configured',
  noStdio: () => 'it has no stdio command configured',
  perUser: (authType: string) => `${authType} servers need an HTTP or SSE connection (their credentials are HTTP headers)`,
} as const;

/** Texts of credential answers a person acts on (`mcp_auth_required`, unavailable credentials). */
export const CredentialMessage = {
  oauthRequired: (server: string, url: string, reauth: boolean) =>
    reauth
      ? `Authentication required for ${server}: your authorization was refused and must be renewed. Open this URL to connect your account again: ${url}`
      : `Authentication required for ${server}. Open this URL to connect your account: ${url}`,
  headersRequired: (server: string, url: string, keys: readonly string[], update: boolean) =>
    `${update ? `Your saved values for ${server} need updating` : `Credentials required for ${server}`} (${keys.join(', ')}). Open this URL to enter them: ${url}`,
  elicitation: (server: string) => `Connect your ${server} account to continue`,
  controlPlaneUnreachable: (server: string) => `the credential for ${server} cannot be fetched right now (control plane unreachable); try again shortly`,
} as const;
