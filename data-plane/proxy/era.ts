/**
 * Protocol eras on `/mcp/{server}`: a client on MCP 2026-07-28 (no sessions, no `initialize`; the version in
 * `MCP-Protocol-Version` and `_meta`) in front of an upstream that only speaks the 2025 versions. Such an
 * upstream answers a sessionless request 400 ("no session"), so the route bridges instead of passing the
 * bytes through: `pooled.ts` answers the request itself over the pool's 2025 connection, in the 2026 shape.
 *
 * Whether an upstream speaks 2026-07-28 is asked once per server configuration (a `server/discover` with the
 * server's own credentials; any 2xx answer means yes), remembered for a few minutes and asked again after, so
 * an upgraded upstream is passed through again without a restart.
 *
 * It does not translate anything itself.
 */
import { SUPPORTED_PROTOCOL_VERSIONS, type Tool } from '@modelcontextprotocol/sdk/types.js';
import type { IncomingHttpHeaders } from 'node:http';
import { Agent } from 'undici';
import type { ResolvedServer } from '../config/runtime.js';

export const MODERN_VERSION = '2026-07-28';
export const META_PROTOCOL_VERSION = 'io.modelcontextprotocol/protocolVersion';
export const META_SERVER_INFO = 'io.modelcontextprotocol/serverInfo';
const REMEMBER_MS = 5 * 60_000;
const PROBE_TIMEOUT_MS = 5_000;

/** Whether a sessionless request is on the 2026-07-28 wire (a non-2025 version header, or the `_meta` version). */
export function isModernRequest(headers: IncomingHttpHeaders, message: unknown): boolean {
  const version = headers['mcp-protocol-version'];
  if (typeof version === 'string') return !SUPPORTED_PROTOCOL_VERSIONS.includes(version);
  if (typeof message !== 'object' || message === null || Array.isArray(message)) return false;
  const params = (message as { params?: unknown }).params;
  const meta = typeof params === 'object' && params !== null ? (params as { _meta?: unknown })._meta : undefined;
  return typeof meta === 'object' && meta !== null && META_PROTOCOL_VERSION in meta;
}

/** List results whose 2026-07-28 form carries caching hints (per key, so never shared: `private`). */
export const CACHEABLE: ReadonlySet<string> = new Set(['server/discover', 'tools/list', 'prompts/list', 'resources/list', 'resources/templates/list', 'resources/read']);

/** Whether a result is in the 2026-07-28 shape (it carries `resultType` or a caching hint). */
function isModernResult(result: Record<string, unknown>): boolean {
  return typeof result.resultType === 'string' || 'cacheScope' in result || 'ttlMs' in result;
}

/**
 * A response (or a batch of them) whose 2026-07-28 results say `cacheScope: "private"`, or null when none
 * needed it. For answers that are the caller's own: a `public` scope lets a shared cache (a proxy, a
 * multi-user client) hand one caller's list to another caller.
 */
export function privateCacheScope(message: unknown): unknown {
  if (Array.isArray(message)) {
    const out = message.map((item) => privateCacheScope(item) ?? item);
    return out.some((item, i) => item !== message[i]) ? out : null;
  }
  if (typeof message !== 'object' || message === null) return null;
  const result = (message as { result?: unknown }).result;
  if (typeof result !== 'object' || result === null || Array.isArray(result)) return null;
  const fields = result as Record<string, unknown>;
  if (fields.cacheScope === 'private' || !isModernResult(fields)) return null;
  return { ...message, result: { ...fields, cacheScope: 'private' } };
}

/**
 * A result in the MCP 2026-07-28 shape (schema: `docs/specification/2026-07-28`, basic §results): a
 * required `resultType` (`complete` unless the result says otherwise), who answered in
 * `_meta["io.modelcontextprotocol/serverInfo"]`, and `ttlMs`/`cacheScope` on list results. Errors pass as
 * they are. Used by `/mcp` and by the `/mcp/{server}` bridge alike.
 */
export function modernize<R extends { status: number; body: unknown }>(reply: R, method: string, serverInfo: { name: string; version: string }): R {
  const body = reply.body as { result?: unknown } | null;
  if (body === null || typeof body.result !== 'object' || body.result === null) return reply;
  const result = body.result as Record<string, unknown>;
  const meta = typeof result._meta === 'object' && result._meta !== null ? (result._meta as Record<string, unknown>) : {};
  return {
    ...reply,
    body: {
      ...body,
      result: {
        ...(CACHEABLE.has(method) ? { ttlMs: 0 } : {}),
        ...result,
        // Last, over whatever the result said (an upstream's result may carry `public`): the list is per key.
        ...(CACHEABLE.has(method) ? { cacheScope: 'private' } : {}),
        resultType: typeof result.resultType === 'string' ? result.resultType : 'complete',
        _meta: { ...meta, [META_SERVER_INFO]: serverInfo },
      },
    },
  };
}

interface Known {
  fingerprint: string;
  until: number;
  modern: Promise<boolean>;
}

export class EraProbe {
  readonly #known = new Map<string, Known>();
  readonly #agent = new Agent({ keepAliveTimeout: 10_000, connect: { timeout: PROBE_TIMEOUT_MS } });

  /** Whether the server's upstream answers 2026-07-28 requests (asked at most once per few minutes). */
  speaksModern(server: ResolvedServer, now = Date.now()): Promise<boolean> {
    const known = this.#known.get(server.name);
    if (known && known.fingerprint === server.fingerprint && known.until > now) return known.modern;
    const modern = this.#probe(server);
    this.#known.set(server.name, { fingerprint: server.fingerprint, until: now + REMEMBER_MS, modern });
    return modern;
  }

  async #probe(server: ResolvedServer): Promise<boolean> {
    const url = server.url;
    if (!url) return false;
    const meta = { [META_PROTOCOL_VERSION]: MODERN_VERSION, 'io.modelcontextprotocol/clientCapabilities': {}, 'io.modelcontextprotocol/clientInfo': { name: 'gatehouse', version: '0.1.0' } };
    try {
      const response = await this.#agent.request({
        origin: url.origin,
        path: url.pathname + url.search,
        method: 'POST',
        headers: {
          ...lowerCased(server.headers),
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-protocol-version': MODERN_VERSION,
          'mcp-method': 'server/discover',
        },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'server/discover', params: { _meta: meta } }),
        signal: AbortSignal.timeout(PROBE_TIMEOUT_MS),
      });
      response.body.resume();
      return response.statusCode >= 200 && response.statusCode < 300;
    } catch {
      return false;
    }
  }

  readonly #tools = new Map<string, { fingerprint: string; until: number; tools: Promise<readonly Tool[]> }>();

  /**
   * The upstream's tools as a 2026-07-28 client sees them (a tool may exist only on that wire, so the pool's
   * 2025 catalog lacks it), listed with `headers` (the call's credential), remembered per server and
   * credential identity for a minute. Where `Mcp-Param-*` declarations of such a tool are read. A page
   * cap bounds it; a failure is an empty list.
   */
  modernTools(server: ResolvedServer, identity: string, headers: Readonly<Record<string, string>>, now = Date.now()): Promise<readonly Tool[]> {
    const key = `${server.name}\n${identity}`;
    const known = this.#tools.get(key);
    if (known && known.fingerprint === server.fingerprint && known.until > now) return known.tools;
    if (this.#tools.size >= MAX_TOOL_LISTINGS) this.#tools.clear();
    const tools = this.#listModern(server, headers).catch(() => [] as Tool[]);
    this.#tools.set(key, { fingerprint: server.fingerprint, until: now + TOOLS_REMEMBER_MS, tools });
    return tools;
  }

  async #listModern(server: ResolvedServer, headers: Readonly<Record<string, string>>): Promise<Tool[]> {
    const url = server.url;
    if (!url) return [];
    const tools: Tool[] = [];
    let cursor: string | undefined;
    for (let page = 0; page < MAX_TOOL_PAGES; page++) {
      const params = { ...(cursor === undefined ? {} : { cursor }), _meta: { [META_PROTOCOL_VERSION]: MODERN_VERSION, 'io.modelcontextprotocol/clientCapabilities': {} } };
      const response = await this.#agent.request({
        origin: url.origin,
        path: url.pathname + url.search,
        method: 'POST',
        headers: {
          ...lowerCased(headers),
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-protocol-version': MODERN_VERSION,
          'mcp-method': 'tools/list',
        },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params }),
        signal: AbortSignal.timeout(PROBE_TIMEOUT_MS),
      });
      if (response.statusCode < 200 || response.statusCode >= 300) {
        response.body.resume();
        break;
      }
      const result = listResult(await response.body.text());
      if (result === null) break;
      tools.push(...result.tools);
      if (result.nextCursor === undefined) break;
      cursor = result.nextCursor;
    }
    return tools;
  }

  close(): void {
    void this.#agent.close().catch(() => undefined);
  }
}

const TOOLS_REMEMBER_MS = 60_000;
const MAX_TOOL_PAGES = 10;
/** Listings remembered at most (server × identity); past it the memory starts over. */
const MAX_TOOL_LISTINGS = 1024;

/** A tools/list result from a JSON body or the response event of an SSE body; null when neither holds one. */
function listResult(text: string): { tools: Tool[]; nextCursor?: string } | null {
  const candidates = text.trimStart().startsWith('{') ? [text] : text.split(/\r\n|\r|\n/).filter((line) => line.startsWith('data:')).map((line) => line.slice(5));
  for (const candidate of candidates) {
    let message: unknown;
    try {
      message = JSON.parse(candidate);
    } catch {
      continue;
    }
    const result = typeof message === 'object' && message !== null ? (message as { result?: unknown }).result : undefined;
    if (typeof result !== 'object' || result === null) continue;
    const { tools, nextCursor } = result as { tools?: unknown; nextCursor?: unknown };
    if (!Array.isArray(tools)) continue;
    const valid = tools.filter((tool): tool is Tool => typeof tool === 'object' && tool !== null && typeof (tool as { name?: unknown }).name === 'string');
    return typeof nextCursor === 'string' ? { tools: valid, nextCursor } : { tools: valid };
  }
  return null;
}

function lowerCased(headers: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) out[name.toLowerCase()] = value;
  return out;
}
