/**
 * MCP 2026-07-28 request metadata headers on `/mcp` (basic/transports/streamable-http §Request Metadata):
 * `Mcp-Method` mirrors the body's `method`, `Mcp-Name` its `params.name` (tools/call, prompts/get) or
 * `params.uri` (resources/read), possibly in the Base64 sentinel form `=?base64?…?=` (§Value Encoding).
 *
 * Three checks; the first two for the parse stage:
 * - `refusedByHeaders`, before the body is read: a request whose `Mcp-Method` is not one `/mcp` serves is
 *   404 Method not found (§Protocol Version Header: -32601), and a `tools/call` whose `Mcp-Name` is a tool
 *   the key may not call is refused as `tool_blocked` (the same decision `authorize` makes from the body), so
 *   neither costs reading or parsing a body.
 * - `headerMismatch`, after: headers that disagree with the body, and (on the 2026-07-28 wire, announced by
 *   `MCP-Protocol-Version`) a required header that is missing, are 400 HeaderMismatch (-32020, §Server
 *   Validation) with a message that names the header.
 *
 * - `paramHeaderMismatch`, per tools/call once the tool is known: `Mcp-Param-{Name}` headers against the
 *   arguments the tool's `x-mcp-header` declarations mirror (§Custom Headers from Tool Parameters, below).
 *
 * All answer a `GatewayError` (or null); the pipeline records the refusal like any other.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { AGGREGATED_METHODS } from '../aggregate/resources-prompts.js';
import type { Runtime, RuntimeKey } from '../config/runtime.js';
import { CONNECT_TOOL } from '../credentials/connect-tool.js';
import { GatewayError, RpcMessage } from '../errors.js';
import type { Declared } from '../pipeline/context.js';
import { checkToolCall, parseToolName } from '../policy/tool-filter.js';
import { META_PROTOCOL_VERSION, MODERN_VERSION } from '../proxy/era.js';
import { PARAM_HEADER_PREFIX } from '../proxy/headers.js';
import { escapedUnshowable } from '../snapshot/tool-names.js';

/** The requests `/mcp` answers (its dispatch in route.ts); any `notifications/…` is accepted too. */
const SERVED_METHODS: ReadonlySet<string> = new Set(['initialize', 'ping', 'server/discover', 'tools/list', 'tools/call', ...AGGREGATED_METHODS]);

/** The methods whose `Mcp-Name` is required on the 2026-07-28 wire, and the param it mirrors. */
const NAMED_PARAM: Readonly<Record<string, 'name' | 'uri'>> = { 'tools/call': 'name', 'prompts/get': 'name', 'resources/read': 'uri' };

const SENTINEL = /^=\?base64\?([A-Za-z0-9+/]*={0,2})\?=$/;

/**
 * How a value appears in an error message: quoted, bounded, and without a control or format character
 * (JSON quoting escapes C0 controls but not C1, bidi overrides or zero-width ones: `escapedUnshowable`
 * does those, as audit events store them), since a client prints the message.
 */
function shown(value: unknown): string {
  const text = typeof value === 'string' ? value : value === undefined ? 'nothing' : JSON.stringify(value);
  return escapedUnshowable(JSON.stringify(text.length > 100 ? `${text.slice(0, 100)}…` : text));
}

function mismatch(message: string, reason: string): GatewayError {
  return new GatewayError('header_mismatch', { message: `Header mismatch: ${message}`, reason });
}

function single(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}

/** `Mcp-Name` as the body would spell it: the Base64 sentinel decoded (strictly, as UTF-8); null when malformed. */
export function decodeMcpName(value: string): string | null {
  // Only a value that starts with `=?base64?` and ends with `?=` is encoded; any other is literal.
  if (!value.startsWith('=?base64?') || !value.endsWith('?=') || value.length < 11) return value;
  const encoded = SENTINEL.exec(value)?.[1];
  if (encoded === undefined || encoded.length % 4 !== 0) return null;
  const bytes = Buffer.from(encoded, 'base64');
  // Only a canonical encoding round-trips; anything else (stray padding, bits past the end) is malformed.
  if (bytes.toString('base64') !== encoded) return null;
  const text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  try {
    return text.decode(bytes);
  } catch {
    return null;
  }
}

/**
 * Before the body is read: the refusal `Mcp-Method` / `Mcp-Name` already decide, or null to go on (also
 * when the headers are absent: the body decides then).
 */
export function refusedByHeaders(headers: IncomingHttpHeaders, runtime: Runtime | null, key: RuntimeKey | null): GatewayError | null {
  const method = single(headers, 'mcp-method');
  if (method === undefined) return null;
  if (!SERVED_METHODS.has(method) && !method.startsWith('notifications/')) {
    return new GatewayError('not_found', { message: RpcMessage.methodNotFound(method), reason: 'mcp-method' });
  }
  const raw = single(headers, 'mcp-name');
  if (method !== 'tools/call' || raw === undefined || runtime === null || key === null) return null;
  const name = decodeMcpName(raw);
  if (name === null) return mismatch('the Mcp-Name header is not a valid =?base64?…?= value', 'mcp-name');
  // The connect tool of a per-user server is the body path's to answer (route.ts), whatever the grant says.
  if (name.endsWith(`-${CONNECT_TOOL}`)) return null;
  const check = checkToolCall(runtime, key, name);
  if (check.ok) return null;
  return new GatewayError('tool_blocked', { message: RpcMessage.toolBlocked(name), reason: `mcp-name:${check.reason}` });
}

/**
 * What a refused request said it is, for its record: the method and, for a `tools/call`, the server and the
 * upstream's own tool name (the name as sent when no configured server has its prefix). From the headers
 * when they are there (a refusal before the body), else from the body. Only called on the refusal path.
 */
export function declaredBy(headers: IncomingHttpHeaders, message: unknown, runtime: Runtime | null): Declared | null {
  const body = isObject(message) ? message : {};
  const method = single(headers, 'mcp-method') ?? (typeof body.method === 'string' ? body.method : undefined);
  if (method === undefined) return null;
  if (method !== 'tools/call') return { method, server: null, tool: null };
  const raw = single(headers, 'mcp-name');
  const params = isObject(body.params) ? body.params : {};
  const name = raw === undefined ? (typeof params.name === 'string' ? params.name : null) : decodeMcpName(raw);
  if (name === null) return { method, server: null, tool: null };
  const parsed = runtime === null ? null : parseToolName(runtime, name);
  return parsed ? { method, server: parsed.server.name, tool: parsed.tool } : { method, server: null, tool: name };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * After the body is read: headers that disagree with the one message in it. On the 2026-07-28 wire
 * (`MCP-Protocol-Version: 2026-07-28`) `Mcp-Method`, and `Mcp-Name` for named methods, are required, and
 * the version header must equal the body's `_meta` version when it has one; on older versions the headers
 * are optional and only checked when sent.
 */
export function headerMismatch(headers: IncomingHttpHeaders, message: unknown): GatewayError | null {
  const method = single(headers, 'mcp-method');
  const rawName = single(headers, 'mcp-name');
  const version = single(headers, 'mcp-protocol-version');
  const modern = version === MODERN_VERSION;
  if (method === undefined && rawName === undefined && !modern) return null;
  const body = isObject(message) ? message : {};
  const isRequest = typeof body.method === 'string' && 'id' in body;
  const params = isObject(body.params) ? body.params : {};
  if (modern && isRequest) {
    const meta = isObject(params._meta) ? params._meta : {};
    const declared = meta[META_PROTOCOL_VERSION];
    if (declared !== undefined && declared !== version) {
      return mismatch(`MCP-Protocol-Version header value ${shown(version)} does not match the body's _meta value ${shown(declared)}`, 'mcp-protocol-version');
    }
    if (method === undefined) return mismatch('the Mcp-Method header is required', 'mcp-method');
  }
  if (method !== undefined && method !== body.method) {
    return mismatch(`Mcp-Method header value ${shown(method)} does not match body value ${shown(body.method)}`, 'mcp-method');
  }
  const param = typeof body.method === 'string' ? NAMED_PARAM[body.method] : undefined;
  if (rawName === undefined) {
    return modern && isRequest && param !== undefined && params[param] !== undefined ? mismatch('the Mcp-Name header is required', 'mcp-name') : null;
  }
  const name = decodeMcpName(rawName);
  if (name === null) return mismatch('the Mcp-Name header is not a valid =?base64?…?= value', 'mcp-name');
  const named = param === undefined ? undefined : params[param];
  if (name !== named) return mismatch(`Mcp-Name header value ${shown(name)} does not match body value ${shown(named)}`, 'mcp-name');
  return null;
}

/*
 * Custom headers from tool parameters (2026-07-28 basic/transports/streamable-http §Custom Headers from
 * Tool Parameters, SEP-2243): a tool's `inputSchema` may mark a property with `x-mcp-header: "Region"`,
 * and a client then mirrors that argument into `Mcp-Param-Region` (Base64 sentinel for values that are not
 * plain ASCII). A server that acts on the body checks they agree, since an intermediary may have routed on
 * the header: a header whose value differs from the argument, or that is sent for an argument that is null
 * or absent, is 400 HeaderMismatch; a missing header for an argument in the body is one on the 2026-07-28
 * wire (the server MUST NOT expect it for a null or absent one). Only declarations the spec allows count
 * (a token name, unique case-insensitively, on a primitive property reached through `properties`); a
 * header the tool does not declare is not this check's business.
 */

/** RFC 9110 token: what an `x-mcp-header` value must be to name a header. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** The JSON Schema types the spec lets a mirrored parameter have (`number` too, as published tools use it). */
const PRIMITIVE_TYPES: ReadonlySet<unknown> = new Set(['string', 'integer', 'number', 'boolean']);
/** How deep `properties` are followed looking for declarations. */
const MAX_SCHEMA_DEPTH = 8;

/** One `x-mcp-header` declaration of a tool: the header (lower-cased), how to name it, and the argument's path. */
export interface ParamBinding {
  readonly header: string;
  /** `Mcp-Param-{Name}` as the tool declared it, for messages. */
  readonly label: string;
  readonly path: readonly string[];
}

const NO_BINDINGS: readonly ParamBinding[] = [];
/** Per `inputSchema` object (catalog entries are reused across requests): computed once. */
const bindingCache = new WeakMap<object, readonly ParamBinding[]>();

/** The `Mcp-Param-*` declarations of a tool's `inputSchema` (none when it has no valid one). */
export function paramBindings(inputSchema: unknown): readonly ParamBinding[] {
  if (!isObject(inputSchema)) return NO_BINDINGS;
  let bindings = bindingCache.get(inputSchema);
  if (bindings === undefined) {
    const found: ParamBinding[] = [];
    collectBindings(inputSchema, [], found, 0);
    // Names must be unique case-insensitively: a tool that repeats one declares nothing this check can trust.
    const names = new Set(found.map((b) => b.header));
    bindings = found.length === 0 || names.size !== found.length ? NO_BINDINGS : found;
    bindingCache.set(inputSchema, bindings);
  }
  return bindings;
}

function collectBindings(schema: Record<string, unknown>, path: readonly string[], out: ParamBinding[], depth: number): void {
  const properties = schema.properties;
  if (depth >= MAX_SCHEMA_DEPTH || !isObject(properties)) return;
  for (const [name, property] of Object.entries(properties)) {
    if (!isObject(property)) continue;
    const declared = property['x-mcp-header'];
    if (typeof declared === 'string' && TOKEN.test(declared) && PRIMITIVE_TYPES.has(property.type)) {
      out.push({ header: `${PARAM_HEADER_PREFIX}${declared.toLowerCase()}`, label: `Mcp-Param-${declared}`, path: [...path, name] });
    }
    collectBindings(property, [...path, name], out, depth + 1);
  }
}

/** Whether the request has any `Mcp-Param-*` header: a scan of the raw header names, allocating nothing. */
export function hasParamHeaders(rawHeaders: readonly string[]): boolean {
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string;
    if (name.length <= PARAM_HEADER_PREFIX.length) continue;
    let prefixed = true;
    // ASCII case folding (| 0x20) is exact for the letters and the hyphen of the prefix.
    for (let c = 0; c < PARAM_HEADER_PREFIX.length && prefixed; c++) prefixed = (name.charCodeAt(c) | 0x20) === PARAM_HEADER_PREFIX.charCodeAt(c);
    if (prefixed) return true;
  }
  return false;
}

/**
 * The tools/call's `Mcp-Param-*` headers against its arguments, for the tool's declarations: a
 * HeaderMismatch naming the header (never echoing a value), or null. `modern`: the request is on the
 * 2026-07-28 wire, where a declared argument present in the body requires its header.
 */
export function paramHeaderMismatch(headers: IncomingHttpHeaders, bindings: readonly ParamBinding[], args: unknown, modern: boolean): GatewayError | null {
  for (const binding of bindings) {
    const sent = single(headers, binding.header);
    const value = valueAt(args, binding.path);
    const argument = binding.path.join('.');
    if (value === undefined || value === null) {
      if (sent !== undefined) return paramMismatch(`${binding.label} header is sent but the argument ${argument} is not in the body`);
      continue;
    }
    if (sent === undefined) {
      if (modern) return paramMismatch(`the ${binding.label} header is required when the argument ${argument} is in the body`);
      continue;
    }
    const decoded = decodeMcpName(sent);
    if (decoded === null) return paramMismatch(`the ${binding.label} header is not a valid =?base64?…?= value`);
    if (!sameValue(decoded, value)) return paramMismatch(`${binding.label} header value does not match the body's argument ${argument}`);
  }
  return null;
}

function paramMismatch(message: string): GatewayError {
  return mismatch(message, 'mcp-param');
}

function valueAt(args: unknown, path: readonly string[]): unknown {
  let value = args;
  for (const key of path) {
    if (!isObject(value) || !Object.hasOwn(value, key)) return undefined;
    value = value[key];
  }
  return value;
}

/** Header text against the argument: strings exactly, numbers numerically (`42.0` is `42`), booleans as `true`/`false`. */
function sameValue(text: string, value: unknown): boolean {
  if (typeof value === 'string') return text === value;
  if (typeof value === 'number') return text.trim() !== '' && Number(text) === value;
  if (typeof value === 'boolean') return text === String(value);
  return false;
}
