/**
 * The pool of upstream MCP connections: one SDK `Client` per upstream server, shared by every caller.
 *
 * - Connects lazily on first use; a failed connect starts a short exponential backoff during which calls
 *   fail fast, so a dead upstream is not hammered. A connection that closes or fails is dropped and the
 *   next use reconnects.
 * - Caches each server's tool catalog (following `nextCursor`), refreshed on
 *   `notifications/tools/list_changed` and whenever the server's connection settings change.
 * - On a Runtime swap, closes connections whose server was removed, became unavailable or changed its
 *   connection settings (`ResolvedServer.fingerprint`).
 * - `callTool` never throws for an upstream's trouble and never hangs: a timeout (`toolTimeoutMs`), an
 *   unreachable upstream or a server unavailable on this node become a tool result with `isError: true`
 *   whose text names the server and holds no URL, header value or other secret.
 *
 * It does not authorize (policy/), pick caller headers (credentials.ts does) or speak to callers (mcp/).
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  ErrorCode,
  McpError,
  ToolListChangedNotificationSchema,
  type CallToolResult,
  type Tool,
} from '@modelcontextprotocol/sdk/types.js';
import type { Logger } from '../log.js';
import type { ResolvedServer, Runtime, RuntimeHolder } from '../config/runtime.js';
import { GatewayError, ToolFailure } from '../errors.js';
import { outsideCallContext, withExtraHeaders, type ExtraHeaders } from './credentials.js';
import { createUpstreamAgent, createUpstreamFetch } from './http-client.js';
import { createTransport } from './transports.js';
import { SHARED_IDENTITY, type CredentialIdentity, type UpstreamCall } from '../pipeline/credentials.js';
import { createHash } from 'node:crypto';

/** How long a per-user upstream connection may sit unused before it is closed. */
const IDLE_USER_CONNECTION_MS = 10 * 60_000;

/** The headers of a call that the pooled transport does not already send (allowlisted caller headers). */
function extraHeadersOf(call: UpstreamCall): ExtraHeaders | undefined {
  const configured = call.credentialHeaders;
  if (call.headers === configured) return undefined;
  let extra: Record<string, string> | undefined;
  for (const [name, value] of Object.entries(call.headers)) {
    if (configured[name] !== value) (extra ??= {})[name] = value;
  }
  return extra;
}

export interface UpstreamPoolOptions {
  holder: RuntimeHolder;
  logger: Logger;
  /** Sent as `clientInfo` in `initialize`. */
  clientInfo?: { name: string; version: string };
  /** Upper bound on connecting (transport start + initialize). Default 10 s. */
  connectTimeoutMs?: number;
  /** Timeout of each `tools/list` page. Default 10 s. */
  listTimeoutMs?: number;
  /** Backoff after a failed connect: starts at `initialMs`, doubles, capped at `maxMs`. Default 250 ms → 5 s. */
  backoff?: { initialMs: number; maxMs: number };
}

/** A tool failure the caller sees as an `isError` result (or, for tools/list, as a skipped server). */
export class UpstreamFailure extends Error {
  constructor(
    readonly kind: 'timeout' | 'unreachable' | 'unavailable' | 'reconfigured' | 'cancelled' | 'unauthorized',
    message: string,
  ) {
    super(message);
    this.name = 'UpstreamFailure';
  }
}

export type CallOutcome =
  | { kind: 'result'; result: CallToolResult }
  /** The upstream refused the credential and renewing it gave none (e.g. the user must authorize again). */
  | { kind: 'refused'; error: GatewayError }
  /** The upstream answered with a JSON-RPC error (e.g. invalid params); relayed as such, message scrubbed. */
  | { kind: 'rpc_error'; code: number; message: string; data?: unknown };

export interface CallToolOptions {
  /** Caller headers to forward on this call (already filtered by `pickExtraHeaders`). */
  extraHeaders?: ExtraHeaders;
  /** Aborted when the caller goes away; the SDK then sends `notifications/cancelled` upstream. */
  signal?: AbortSignal;
}

interface Entry {
  /** Map key: the server name, plus the credential identity for connections that are not the shared one. */
  readonly key: string;
  readonly name: string;
  /** The server's fingerprint plus, for credential-bound connections, a digest of the credential headers. */
  readonly fingerprint: string;
  /** The server's own fingerprint (what a Runtime swap compares). */
  readonly serverFingerprint: string;
  /** Whose credential this connection carries (`shared` or `user:<id>`): one user's session is never another's. */
  readonly identity: CredentialIdentity;
  lastUsed: number;
  server: ResolvedServer;
  client: Client | null;
  connecting: Promise<Client> | null;
  catalog: Tool[] | null;
  catalogLoading: Promise<Tool[]> | null;
  /**
   * Bumped by list_changed and by every new connection (a restarted upstream may offer other tools);
   * `catalog` is served only while `catalogFor` equals it.
   */
  catalogGeneration: number;
  catalogFor: number;
  failures: number;
  retryAt: number;
  lastError: string;
  closed: boolean;
}

const MAX_CATALOG_PAGES = 100;

export class UpstreamPool {
  readonly #entries = new Map<string, Entry>();
  readonly #holder: RuntimeHolder;
  readonly #logger: Logger;
  readonly #clientInfo: { name: string; version: string };
  readonly #connectTimeoutMs: number;
  readonly #listTimeoutMs: number;
  readonly #backoff: { initialMs: number; maxMs: number };
  readonly #agent = createUpstreamAgent();
  readonly #fetch = createUpstreamFetch(this.#agent);
  readonly #unsubscribe: () => void;
  #closed = false;

  constructor(options: UpstreamPoolOptions) {
    this.#holder = options.holder;
    this.#logger = options.logger;
    this.#clientInfo = options.clientInfo ?? { name: 'gatehouse', version: '0.1.0' };
    this.#connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
    this.#listTimeoutMs = options.listTimeoutMs ?? 10_000;
    this.#backoff = options.backoff ?? { initialMs: 250, maxMs: 5_000 };
    this.#unsubscribe = this.#holder.onChange((runtime) => this.reconcile(runtime));
  }

  /** Tool catalog of one server (its own tool names). Throws `UpstreamFailure` if it cannot be had. */
  async listTools(server: ResolvedServer, call?: UpstreamCall): Promise<Tool[]> {
    if (server.unavailable !== null) throw new UpstreamFailure('unavailable', server.unavailable);
    const entry = this.#entryFor(server, call);
    if (entry.catalog !== null && entry.catalogFor === entry.catalogGeneration) return entry.catalog;
    return entry.catalogLoading ?? this.#loadCatalog(entry);
  }

  /**
   * Calls one tool for one explicit upstream call (server, headers, credential identity: from the pipeline's
   * credentials stage). Upstream trouble becomes an `isError` result, never an exception.
   */
  async callTool(call: UpstreamCall, tool: string, args: Record<string, unknown> | undefined, signal?: AbortSignal): Promise<CallOutcome> {
    const server = call.server;
    if (server.unavailable !== null) return failureResult(server.unavailable);
    const extraHeaders = extraHeadersOf(call);
    const options: CallToolOptions = signal ? (extraHeaders ? { extraHeaders, signal } : { signal }) : extraHeaders ? { extraHeaders } : {};
    try {
      return await this.#callOnce(server, tool, args, options, true, call);
    } catch (error) {
      if (error instanceof UpstreamFailure) {
        // A refused credential that can be renewed (an OAuth token): renew on the control plane, retry once.
        if (error.kind === 'unauthorized' && call.renew) return this.#callRenewed(call, tool, args, signal);
        return failureResult(error.message);
      }
      throw error;
    }
  }

  async #callRenewed(call: UpstreamCall, tool: string, args: Record<string, unknown> | undefined, signal?: AbortSignal): Promise<CallOutcome> {
    const renewed = await call.renew?.();
    if (!renewed) return failureResult(ToolFailure.unauthorized(call.server.name));
    if (renewed instanceof GatewayError) return { kind: 'refused', error: renewed };
    const headers = { ...call.headers, ...renewed.headers };
    const next: UpstreamCall = { server: call.server, headers, identity: renewed.identity, credentialHeaders: renewed.headers };
    const extraHeaders = extraHeadersOf(next);
    const options: CallToolOptions = signal ? (extraHeaders ? { extraHeaders, signal } : { signal }) : extraHeaders ? { extraHeaders } : {};
    try {
      return await this.#callOnce(call.server, tool, args, options, true, next);
    } catch (error) {
      if (error instanceof UpstreamFailure) return failureResult(error.message);
      throw error;
    }
  }

  /** Applies a new Runtime: closes connections whose server is gone or changed; keeps the rest. */
  reconcile(runtime: Runtime): void {
    for (const entry of [...this.#entries.values()]) {
      const server = runtime.servers.get(entry.name);
      if (!server || server.unavailable !== null || server.fingerprint !== entry.serverFingerprint) {
        this.#logger.info({ server: entry.name }, 'upstream configuration changed or removed; closing its connection');
        void this.#retire(entry);
      } else if (entry.identity === SHARED_IDENTITY && entry.fingerprint === entry.serverFingerprint) {
        entry.server = server;
      }
    }
  }

  /** The catalogs currently cached, by server (name and description only): what nodes report upstream. */
  catalogs(): { server: string; tools: { name: string; description: string | null }[] }[] {
    const out: { server: string; tools: { name: string; description: string | null }[] }[] = [];
    const seen = new Set<string>();
    for (const entry of this.#entries.values()) {
      if (entry.catalog === null || entry.catalogFor !== entry.catalogGeneration || seen.has(entry.name)) continue;
      seen.add(entry.name);
      out.push({ server: entry.name, tools: entry.catalog.map((t) => ({ name: t.name, description: t.description ?? null })) });
    }
    return out;
  }

  /** Whether a connection to `name` is currently open (for health reporting and tests). */
  isConnected(name: string): boolean {
    return this.#entries.get(name)?.client != null;
  }

  /**
   * A catalog of `name` fetched through any credential on this node, if one is cached: per-user servers list
   * their tools this way to a caller who has not connected yet (so the call that asks them to can be made).
   */
  cachedCatalog(name: string): Tool[] | null {
    for (const entry of this.#entries.values()) {
      if (entry.name === name && entry.catalog !== null) return entry.catalog;
    }
    return null;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#unsubscribe();
    const closing: Promise<void>[] = [];
    for (const entry of [...this.#entries.values()]) closing.push(this.#retire(entry));
    await Promise.all(closing);
    await this.#agent.close().catch(() => undefined);
  }

  async #callOnce(
    server: ResolvedServer,
    tool: string,
    args: Record<string, unknown> | undefined,
    options: CallToolOptions,
    mayRetry: boolean,
    call?: UpstreamCall,
  ): Promise<CallOutcome> {
    const entry = this.#entryFor(server, call);
    const client = await this.#getClient(entry);
    const params = args === undefined ? { name: tool } : { name: tool, arguments: args };
    const requestOptions = options.signal ? { timeout: server.toolTimeoutMs, signal: options.signal } : { timeout: server.toolTimeoutMs };
    try {
      const result = options.extraHeaders
        ? await withExtraHeaders(options.extraHeaders, () => client.callTool(params, undefined, requestOptions))
        : await client.callTool(params, undefined, requestOptions);
      return { kind: 'result', result: result as CallToolResult };
    } catch (error) {
      // The caller left: nothing is wrong with the connection, and nobody reads this answer.
      if (options.signal?.aborted) throw new UpstreamFailure('cancelled', ToolFailure.cancelled(server.name));
      if (error instanceof McpError) {
        if (error.code === ErrorCode.RequestTimeout) {
          // The connection is fine; the tool is slow. The SDK has already sent notifications/cancelled.
          throw new UpstreamFailure('timeout', ToolFailure.timeout(server.name, server.toolTimeoutMs));
        }
        if (error.code !== ErrorCode.ConnectionClosed) {
          return { kind: 'rpc_error', code: error.code, message: scrub(stripMcpPrefix(error), entry.server), data: error.data };
        }
      }
      if (isInvalidResult(error)) {
        return { kind: 'rpc_error', code: ErrorCode.InternalError, message: ToolFailure.invalidResult(server.name) };
      }
      this.#drop(entry, client, error);
      // An upstream that restarted forgets our session and answers 404 before running anything, so the
      // call is safe to repeat once on a fresh connection.
      if (mayRetry && isSessionGone(error)) return this.#callOnce(server, tool, args, options, false, call);
      if (isUnauthorized(error)) throw new UpstreamFailure('unauthorized', ToolFailure.unauthorized(server.name));
      throw new UpstreamFailure('unreachable', ToolFailure.unreachable(server.name, describeError(error, entry.server)));
    }
  }

  #entryFor(base: ResolvedServer, call?: UpstreamCall): Entry {
    if (this.#closed) throw new UpstreamFailure('unreachable', ToolFailure.unreachable(base.name, 'the node is shutting down'));
    const identity = call?.identity ?? SHARED_IDENTITY;
    const key = identity === SHARED_IDENTITY ? base.name : `${base.name}\n${identity}`;
    // A connection bound to a credential sends that credential's headers from initialize on; a new
    // credential (a refreshed token) gets a new connection, and the old one is retired.
    const bound = call !== undefined && call.credentialHeaders !== base.headers;
    const server: ResolvedServer = bound ? { ...base, headers: call.credentialHeaders } : base;
    const fingerprint = bound ? `${base.fingerprint}#${headersDigest(call.credentialHeaders)}` : base.fingerprint;
    const existing = this.#entries.get(key);
    if (existing && existing.fingerprint === fingerprint) {
      existing.lastUsed = Date.now();
      return existing;
    }
    // Only the current Runtime's settings may open a connection: a request still holding an older Runtime
    // must not resurrect a connection the swap just closed.
    const current = this.#holder.current?.servers.get(server.name);
    if (!current || current.fingerprint !== server.fingerprint) {
      throw new UpstreamFailure('reconfigured', ToolFailure.reconfigured(server.name));
    }
    if (existing) void this.#retire(existing);
    if (identity !== SHARED_IDENTITY) this.#retireIdle();
    const entry: Entry = {
      key,
      name: server.name,
      fingerprint,
      serverFingerprint: base.fingerprint,
      identity,
      lastUsed: Date.now(),
      server,
      client: null,
      connecting: null,
      catalog: null,
      catalogLoading: null,
      catalogGeneration: 0,
      catalogFor: -1,
      failures: 0,
      retryAt: 0,
      lastError: '',
      closed: false,
    };
    this.#entries.set(key, entry);
    return entry;
  }

  /** Per-user connections idle for a while are closed, so a node does not hold one per user forever. */
  #retireIdle(): void {
    const horizon = Date.now() - IDLE_USER_CONNECTION_MS;
    for (const entry of [...this.#entries.values()]) {
      if (entry.identity !== SHARED_IDENTITY && entry.lastUsed < horizon) void this.#retire(entry);
    }
  }

  #getClient(entry: Entry): Promise<Client> {
    if (entry.client) return Promise.resolve(entry.client);
    if (entry.connecting) return entry.connecting;
    if (Date.now() < entry.retryAt) {
      return Promise.reject(new UpstreamFailure('unreachable', ToolFailure.unreachable(entry.name, entry.lastError)));
    }
    // Connecting is the pool's own work: it must not carry the headers of the caller that triggered it.
    const connecting = outsideCallContext(() => this.#connect(entry));
    entry.connecting = connecting;
    const clear = (): void => {
      if (entry.connecting === connecting) entry.connecting = null;
    };
    connecting.then(clear, clear);
    return connecting;
  }

  async #connect(entry: Entry): Promise<Client> {
    const server = entry.server;
    const client = new Client(this.#clientInfo, { capabilities: {} });
    client.onclose = () => {
      if (entry.client === client) {
        entry.client = null;
        this.#logger.info({ server: entry.name }, 'upstream connection closed');
      }
    };
    client.onerror = (error) => {
      // Transport-level noise (e.g. a GET stream that could not reopen); calls report their own failures.
      this.#logger.debug({ server: entry.name, reason: describeError(error, entry.server) }, 'upstream transport error');
    };
    client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
      if (entry.client !== client || entry.closed) return;
      entry.catalogGeneration += 1;
      this.#logger.info({ server: entry.name }, 'upstream tool list changed; refreshing catalog');
      if (entry.catalogLoading === null) this.#loadCatalog(entry).catch(() => undefined);
    });

    let timer: NodeJS.Timeout | undefined;
    try {
      const transport = createTransport(server, {
        fetch: this.#fetch,
        onStderr: (chunk) => this.#logger.info({ server: entry.name, stderr: scrub(chunk.slice(0, 2_000), server) }, 'stdio upstream stderr'),
      });
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new ConnectTimeout(this.#connectTimeoutMs)), this.#connectTimeoutMs);
      });
      await Promise.race([client.connect(transport, { timeout: this.#connectTimeoutMs }), timeout]);
    } catch (error) {
      void client.close().catch(() => undefined);
      // A refused credential is not an unreachable upstream: no backoff (a renewed credential opens another connection).
      if (isUnauthorized(error)) throw new UpstreamFailure('unauthorized', ToolFailure.unauthorized(entry.name));
      entry.failures += 1;
      const delay = Math.min(this.#backoff.maxMs, this.#backoff.initialMs * 2 ** (entry.failures - 1));
      entry.retryAt = Date.now() + delay;
      entry.lastError = describeError(error, server);
      this.#logger.warn({ server: entry.name, reason: entry.lastError, retryInMs: delay }, 'upstream connect failed');
      throw new UpstreamFailure('unreachable', ToolFailure.unreachable(entry.name, entry.lastError));
    } finally {
      clearTimeout(timer);
    }
    if (entry.closed) {
      // The server was reconfigured or removed while we were connecting.
      void client.close().catch(() => undefined);
      throw new UpstreamFailure('reconfigured', ToolFailure.reconfigured(entry.name));
    }
    entry.failures = 0;
    entry.retryAt = 0;
    entry.catalogGeneration += 1;
    entry.client = client;
    this.#logger.info({ server: entry.name, connectionType: server.connectionType }, 'upstream connected');
    return client;
  }

  #loadCatalog(entry: Entry): Promise<Tool[]> {
    let generation = -1;
    const loading = outsideCallContext(async () => {
      const client = await this.#getClient(entry);
      // Read after connecting: a new connection bumps the generation itself.
      generation = entry.catalogGeneration;
      try {
        const tools: Tool[] = [];
        let cursor: string | undefined;
        let pages = 0;
        do {
          const page = await client.listTools(cursor === undefined ? undefined : { cursor }, { timeout: this.#listTimeoutMs });
          tools.push(...page.tools);
          cursor = page.nextCursor;
          pages += 1;
        } while (cursor !== undefined && pages < MAX_CATALOG_PAGES);
        return tools;
      } catch (error) {
        if (error instanceof McpError && error.code === ErrorCode.RequestTimeout) {
          throw new UpstreamFailure('timeout', ToolFailure.timeout(entry.name, this.#listTimeoutMs));
        }
        if (!(error instanceof McpError) || error.code === ErrorCode.ConnectionClosed) this.#drop(entry, client, error);
        throw new UpstreamFailure('unreachable', ToolFailure.unreachable(entry.name, describeError(error, entry.server)));
      }
    });
    entry.catalogLoading = loading;
    loading.then(
      (tools) => {
        if (entry.catalogLoading === loading) entry.catalogLoading = null;
        if (entry.closed) return;
        entry.catalog = tools;
        entry.catalogFor = generation;
        // A list_changed that arrived mid-load means these tools may already be old: load again.
        if (generation !== entry.catalogGeneration) this.#loadCatalog(entry).catch(() => undefined);
      },
      () => {
        if (entry.catalogLoading === loading) entry.catalogLoading = null;
      },
    );
    return loading;
  }

  /** Forgets a failed connection (if it is still the current one) so the next use reconnects. */
  #drop(entry: Entry, client: Client, error: unknown): void {
    if (entry.client !== client) return;
    entry.client = null;
    this.#logger.warn({ server: entry.name, reason: describeError(error, entry.server) }, 'upstream connection failed; will reconnect on next use');
    void client.close().catch(() => undefined);
  }

  #retire(entry: Entry): Promise<void> {
    entry.closed = true;
    if (this.#entries.get(entry.key) === entry) this.#entries.delete(entry.key);
    const client = entry.client;
    entry.client = null;
    entry.catalog = null;
    const closing: Promise<void>[] = [];
    if (client) closing.push(client.close().catch(() => undefined));
    // A connect in flight finishes into a closed entry and closes its own client (see #connect).
    if (entry.connecting) closing.push(entry.connecting.then(() => undefined, () => undefined));
    return Promise.all(closing).then(() => undefined);
  }
}

class ConnectTimeout extends Error {
  constructor(readonly ms: number) {
    super(`no answer within ${ms} ms`);
    this.name = 'ConnectTimeout';
  }
}

function failureResult(text: string): CallOutcome {
  return { kind: 'result', result: { content: [{ type: 'text', text }], isError: true } };
}

function stripMcpPrefix(error: McpError): string {
  return error.message.replace(/^MCP error -?\d+: /, '');
}

function isInvalidResult(error: unknown): boolean {
  return error instanceof Error && (error.name === 'ZodError' || error.name === '$ZodError');
}

/** The upstream refused the credential (HTTP 401): worth renewing an OAuth token once. */
function isUnauthorized(error: unknown): boolean {
  if (error instanceof StreamableHTTPError) return error.code === 401;
  return error instanceof Error && (error.name === 'UnauthorizedError' || /\b401\b/.test(error.message));
}

function headersDigest(headers: Readonly<Record<string, string>>): string {
  return createHash('sha256').update(JSON.stringify(Object.entries(headers).sort())).digest('base64url').slice(0, 22);
}

function isSessionGone(error: unknown): boolean {
  if (error instanceof StreamableHTTPError) return error.code === 404;
  return error instanceof Error && /\(HTTP 404\)/.test(error.message);
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

/** Removes URLs and the server's secret values (header values, env values, its URL) from a text. */
export function scrub(text: string, server: ResolvedServer): string {
  let out = text;
  for (const secret of server.secrets) {
    if (out.includes(secret)) out = out.split(secret).join('[redacted]');
  }
  return out.replace(/\b[a-z][a-z0-9+.-]*:\/\/[^\s'"<>]+/gi, '[url]');
}
