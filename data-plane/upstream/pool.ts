/**
 * The pool of upstream MCP connections: one SDK `Client` per upstream server, shared by every caller whose
 * call carries the server's configured headers; a legacy SSE call with other headers (a user's credential,
 * allowlisted caller headers) goes over a connection opened with exactly those headers, kept per (server,
 * credential identity, headers) in `identity-connections.ts` (bounded, idle ones closed).
 *
 * - Connects lazily on first use; a failed connect starts a short exponential backoff during which calls
 *   fail fast, so a dead upstream is not hammered. A connection that closes or fails is dropped and the
 *   next use reconnects.
 * - Caches each server's tool catalog (following `nextCursor`), refreshed on
 *   `notifications/tools/list_changed` and whenever the server's connection settings change.
 * - Keeps apart whose catalog is whose: a catalog listed through one caller's own credential (a per-user
 *   server's) or with one caller's extra headers is that caller's answer, never kept as the server's. Only
 *   a catalog listed with the server's shared credential alone (`isSharedListing`) is the server's: what
 *   `sharedCatalog` shows a caller whose own credential cannot be had and what `catalogs` reports upstream.
 * - On a Runtime swap, closes connections whose server was removed, became unavailable or changed its
 *   connection settings (`ResolvedServer.fingerprint`).
 * - `callTool` never throws for an upstream's trouble and never hangs: a timeout (`toolTimeoutMs`), an
 *   unreachable upstream or a server unavailable on this node become a tool result with `isError: true`
 *   whose text names the server and holds no URL, header value or other secret.
 *
 * It does not authorize (policy/), pick caller headers (pipeline/credentials.ts does) or speak to callers (mcp/).
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import {
  ErrorCode,
  LATEST_PROTOCOL_VERSION,
  McpError,
  ResultSchema,
  ToolListChangedNotificationSchema,
  type Progress,
  type ServerCapabilities,
  type CallToolResult,
  type Tool,
} from '@modelcontextprotocol/sdk/types.js';
import type { Logger } from '../log.js';
import { credentialIsConfiguredHeaders, type ResolvedServer, type Runtime, type RuntimeHolder } from '../config/runtime.js';
import { GatewayError, ToolFailure } from '../errors.js';
import { createUpstreamAgent, createUpstreamFetch } from './http-client.js';
import { createTransport } from './transports.js';
import { ConnectTimeout, UpstreamFailure, describeError, failureResult, reasonFailure, resultWithoutSecrets, scrub, scrubRpcError, stripMcpPrefix, type CallOutcome } from './failures.js';
import { SHARED_IDENTITY, type CredentialIdentity, type UpstreamCall } from '../pipeline/credentials.js';
import { abortSignalOf, type Departure } from '../pipeline/context.js';
import { HttpCalls, type HttpSession } from './http-calls.js';
import { isPerUserServer } from '../credentials/connect-tool.js';
import { DEFAULT_IDENTITY_CONNECTION_LIMITS, IdentityConnections, identityKey, type IdentityConnectionLimits, type Lease } from './identity-connections.js';
import { UpstreamHealthTracker } from './health.js';
import { servableServerResult, showableDescription } from '../snapshot/tool-names.js';

/**
 * A caller's params for a pooled SDK connection: the call's trace context (`UpstreamCall.trace`) as `_meta`
 * fields (MCP's convention for trace context on a message; the connection's HTTP headers are fixed when it
 * opens, and stdio has none), and no `progressToken` of the caller's. The connection is shared by every
 * caller with its credential and the SDK client routes the upstream's progress to the request whose message
 * id equals the token: a caller's own token (0, 1, 2, …) would have the upstream's progress for its call
 * delivered into another caller's stream. The SDK sets its own token when the caller is relayed progress.
 */
function pooledParams(params: Record<string, unknown> | undefined, meta: Readonly<Record<string, string>> | undefined): Record<string, unknown> | undefined {
  const own = params?._meta;
  const callerMeta = typeof own === 'object' && own !== null && !Array.isArray(own) ? (own as Record<string, unknown>) : null;
  if (!meta && (callerMeta === null || !('progressToken' in callerMeta))) return params;
  const { progressToken: _token, ...kept } = callerMeta ?? {};
  return { ...params, _meta: { ...kept, ...meta } };
}

/**
 * Whether a catalog listed for `call` is the server's own: listed with the credential every caller of the
 * server shares (the configured headers, or a shared OAuth token) and no caller's extra headers. A per-user
 * server has no such credential: what its upstream lists depends on whose credential asks (tool names and
 * descriptions can tell what that user may reach), so no catalog of it is ever the server's.
 */
function isSharedListing(call: UpstreamCall): boolean {
  if (isPerUserServer(call.server)) return false;
  // `upstreamCall` hands on the credential's own header object when it added no caller header.
  return call.headers === (call.credentialHeaders ?? call.server.headers);
}

/**
 * Whether a call (headers without trace context) is exactly what the server's shared connection sends (its
 * configured headers, the shared identity): then it may ride that connection. Stdio has no headers: always.
 */
function ridesSharedConnection(call: UpstreamCall, headers: Readonly<Record<string, string>>): boolean {
  const server = call.server;
  if (server.connectionType !== 'SSE') return true;
  if (call.identity !== SHARED_IDENTITY) return false;
  if (headers === server.headers) return true;
  const names = Object.keys(headers);
  return names.length === Object.keys(server.headers).length && names.every((name) => Object.hasOwn(server.headers, name) && server.headers[name] === headers[name]);
}

const noRelease = (): void => {};

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
  /** Legacy SSE connections opened per credential identity / header set (default 64 per server, 5 min idle). */
  identityConnections?: IdentityConnectionLimits;
  /**
   * Servers with a shared credential that nothing observed for this long are pinged (see `#probe`), so
   * their health is known without traffic. Default 30 s; 0 turns probing off.
   */
  probeIntervalMs?: number;
  /**
   * The call a shared OAUTH server is reached with (its token, from the control plane), or null when there is
   * none to be had now. With it, such a server's catalog is fetched as soon as it appears and its health is
   * probed when idle, like a server with configured headers; without it, traffic alone observes it.
   */
  sharedOAuthCall?: (server: ResolvedServer) => Promise<UpstreamCall | null>;
}

/** What an upstream said about itself at `initialize` (for `/mcp/{server}` over a pooled connection). */
export interface UpstreamInfo {
  capabilities: ServerCapabilities;
  serverInfo: { name: string; version: string } | null;
  instructions: string | null;
}

/** Any request's outcome over the pooled client: the upstream's result object as sent, or its JSON-RPC error. */
export type RequestOutcome =
  | { kind: 'result'; result: Record<string, unknown> }
  | { kind: 'rpc_error'; code: number; message: string; data?: unknown };

export interface RequestOptions {
  signal?: AbortSignal;
  /** Progress notifications the upstream sends for this request (the SDK matches them by progress token). */
  onprogress?: (progress: Progress) => void;
  /** Default: the server's `toolTimeoutMs`; progress resets it. */
  timeoutMs?: number;
}

export interface CallToolOptions {
  /** Aborted when the caller goes away; the SDK then sends `notifications/cancelled` upstream. */
  signal?: AbortSignal;
  /** Progress the upstream reports for this call. */
  onprogress?: (progress: Progress) => void;
}

interface Entry {
  readonly name: string;
  readonly fingerprint: string;
  server: ResolvedServer;
  /** Whose credential the connection carries. */
  readonly identity: CredentialIdentity;
  /** The headers the connection was opened with; null: the server's configured headers (the shared entry). */
  readonly headers: Readonly<Record<string, string>> | null;
  /** Its key in `#identity` (null for the shared entry in `#entries`). */
  readonly key: string | null;
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
  /** A health probe is in flight (see `#probe`). */
  probing: boolean;
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
  /** The upstream session of each pooled Streamable HTTP connection. */
  readonly #sessions = new WeakMap<Client, HttpSession>();
  readonly #http: HttpCalls;
  /**
   * Catalogs listed with a server's shared credential outside its pooled connection (a shared OAuth token
   * over `http-calls.ts` or its own legacy SSE connection), by server, with the settings they were listed under. Never a per-user catalog:
   * see `isSharedListing`.
   */
  readonly #sharedListings = new Map<string, { fingerprint: string; tools: Tool[] }>();
  /** Legacy SSE connections for calls whose headers are not the server's configured ones. */
  readonly #identity: IdentityConnections<Entry>;
  readonly #sweepTimer: NodeJS.Timeout;
  /** Per-server upstream health from calls, catalog fetches and probes (reported to the control plane). */
  readonly health = new UpstreamHealthTracker();
  readonly #probeIntervalMs: number;
  #probeTimer: NodeJS.Timeout | null = null;
  readonly #sharedOAuthCall: ((server: ResolvedServer) => Promise<UpstreamCall | null>) | null;
  #closed = false;

  constructor(options: UpstreamPoolOptions) {
    this.#holder = options.holder;
    this.#logger = options.logger;
    this.#clientInfo = options.clientInfo ?? { name: 'gatehouse', version: '0.1.0' };
    this.#connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
    this.#listTimeoutMs = options.listTimeoutMs ?? 10_000;
    this.#backoff = options.backoff ?? { initialMs: 250, maxMs: 5_000 };
    const limits = options.identityConnections ?? DEFAULT_IDENTITY_CONNECTION_LIMITS;
    this.#identity = new IdentityConnections<Entry>(limits, (entry) => void this.#retire(entry));
    this.#sweepTimer = setInterval(() => this.#identity.sweep(), Math.max(10, Math.min(limits.idleMs, 60_000)));
    this.#sweepTimer.unref();
    this.#probeIntervalMs = options.probeIntervalMs ?? 30_000;
    this.#sharedOAuthCall = options.sharedOAuthCall ?? null;
    if (this.#probeIntervalMs > 0) {
      this.#probeTimer = setInterval(() => this.#probeIdle(), this.#probeIntervalMs);
      this.#probeTimer.unref();
    }
    this.#unsubscribe = this.#holder.onChange((runtime) => this.reconcile(runtime));
    this.#http = new HttpCalls({
      dispatcher: this.#agent,
      logger: this.#logger,
      clientInfo: this.#clientInfo,
      shared: { get: (server) => this.#sharedSession(server), gone: (server, session) => this.#sharedSessionGone(server, session) },
    });
  }

  /**
   * Tool catalog of one server (its own tool names). Throws `UpstreamFailure` if it cannot be had. With a
   * `call` whose credential is not the server's shared one (a user's own, an OAuth token), the catalog is
   * listed through that credential's own upstream session (Streamable HTTP servers).
   */
  async listTools(server: ResolvedServer, call?: UpstreamCall): Promise<Tool[]> {
    if (server.unavailable !== null) throw new UpstreamFailure('unavailable', server.unavailable);
    if (call && call.identity !== SHARED_IDENTITY && server.connectionType === 'HTTP') {
      if (this.#closed) throw new UpstreamFailure('unreachable', ToolFailure.unreachable(server.name, 'the node is shutting down'));
      let tools: Tool[];
      try {
        tools = await this.#http.listTools(call, this.#listTimeoutMs);
      } catch (error) {
        if (error instanceof UpstreamFailure) this.health.failed(server, call.identity, error);
        throw error;
      }
      this.health.reachable(server.name);
      if (isSharedListing(call)) this.#sharedListings.set(server.name, { fingerprint: server.fingerprint, tools });
      return tools;
    }
    if (call && !ridesSharedConnection(call, call.headers)) {
      const lease = this.#lease(call);
      try {
        const own = lease.value;
        // Cached on this identity's own connection, so served to this identity (and headers) only; kept as
        // the server's too when that identity is the server's shared one (an OAuth token over legacy SSE).
        const tools = own.catalog !== null && own.catalogFor === own.catalogGeneration ? own.catalog : await (own.catalogLoading ?? this.#loadCatalog(own));
        if (isSharedListing(call)) this.#sharedListings.set(server.name, { fingerprint: server.fingerprint, tools });
        return tools;
      } finally {
        lease.release();
      }
    }
    const entry = this.#entryFor(server);
    if (entry.catalog !== null && entry.catalogFor === entry.catalogGeneration) return entry.catalog;
    return entry.catalogLoading ?? this.#loadCatalog(entry);
  }

  /**
   * Calls one tool for one explicit upstream call (server, headers, credential identity: from the pipeline's
   * credentials stage). `params` are the caller's `tools/call` params; `tool` is the upstream's own tool
   * name. Streamable HTTP upstreams are called directly (`http-calls.ts`); stdio and legacy SSE through the
   * pooled SDK client. Upstream trouble becomes an `isError` result, never an exception.
   */
  callTool(
    call: UpstreamCall,
    tool: string,
    params: Readonly<Record<string, unknown>>,
    signal?: Departure,
    /** Notifications the upstream sends during this call (HTTP: progress and log messages; stdio/SSE: progress). */
    onNotification?: (message: Record<string, unknown>) => void,
  ): Promise<CallOutcome> {
    const server = call.server;
    if (server.unavailable !== null) return Promise.resolve(failureResult(server.unavailable));
    if (server.connectionType !== 'HTTP') return this.#callPooled(call, tool, params, signal, onNotification);
    if (this.#closed) return Promise.resolve(this.#callFailed(call, tool, params, signal, new UpstreamFailure('unreachable', ToolFailure.unreachable(server.name, 'the node is shutting down'))));
    // The hot path: the direct call's promise and one continuation (no async frame of its own per call).
    return this.#http.callTool(call, tool, params, signal, onNotification).then(
      (outcome) => {
        this.health.reachable(server.name);
        return outcome;
      },
      (error: unknown) => this.#callFailed(call, tool, params, signal, error),
    );
  }

  /** `callTool` over the pooled SDK client (stdio, legacy SSE). */
  async #callPooled(
    call: UpstreamCall,
    tool: string,
    params: Readonly<Record<string, unknown>>,
    signal: Departure | undefined,
    onNotification: ((message: Record<string, unknown>) => void) | undefined,
  ): Promise<CallOutcome> {
    try {
      const options: CallToolOptions = signal ? { signal: abortSignalOf(signal) } : {};
      const meta = params._meta;
      const token = typeof meta === 'object' && meta !== null ? (meta as { progressToken?: unknown }).progressToken : undefined;
      if (onNotification && (typeof token === 'string' || typeof token === 'number')) {
        // The SDK puts its own progress token on the request; the caller gets its own back.
        options.onprogress = (progress) => onNotification({ jsonrpc: '2.0', method: 'notifications/progress', params: { ...progress, progressToken: token } });
      }
      const args = params.arguments as Record<string, unknown> | undefined;
      const outcome = await this.#callOnce(call, tool, args, options, true);
      this.health.reachable(call.server.name);
      return outcome;
    } catch (error) {
      return this.#callFailed(call, tool, params, signal, error);
    }
  }

  /** A call that failed: the upstream's trouble becomes an `isError` result (after one renewal of a refused credential); anything else is rethrown. */
  #callFailed(call: UpstreamCall, tool: string, params: Readonly<Record<string, unknown>>, signal: Departure | undefined, error: unknown): CallOutcome | Promise<CallOutcome> {
    if (!(error instanceof UpstreamFailure)) throw error;
    const server = call.server;
    // A refused credential that can be renewed (an OAuth token): renewed on the control plane, tried once more.
    if (error.kind === 'credentials_refused' && call.renew && server.connectionType === 'HTTP') return this.#callRenewed(call, tool, params, signal);
    this.health.failed(server, call.identity, error);
    return failureResult(error.message, error.status);
  }

  async #callRenewed(call: UpstreamCall, tool: string, params: Readonly<Record<string, unknown>>, signal?: Departure): Promise<CallOutcome> {
    const renewed = await call.renew?.();
    if (!renewed || renewed instanceof GatewayError) {
      // Refused, and no fresh credential to try: for the shared OAuth token that is the server's status.
      this.health.failed(call.server, call.identity, new UpstreamFailure('credentials_refused', ToolFailure.credentialsRefused(call.server.name, 401)));
      if (!renewed) return failureResult(ToolFailure.credentialsRefused(call.server.name, 401));
      return { kind: 'refused', error: renewed };
    }
    // The caller headers of the first attempt stay; the credential's own are replaced.
    const next: UpstreamCall = { server: call.server, headers: { ...call.headers, ...renewed.headers }, identity: renewed.identity, credentialHeaders: renewed.headers, ...(call.trace ? { trace: call.trace } : {}) };
    try {
      const outcome = await this.#http.callTool(next, tool, params, signal);
      this.health.reachable(call.server.name);
      return outcome;
    } catch (error) {
      if (error instanceof UpstreamFailure) {
        this.health.failed(next.server, next.identity, error);
        return failureResult(error.message, error.status);
      }
      throw error;
    }
  }

  /**
   * The server's own catalog as last listed on this node with its shared credential, if any: for a caller
   * whose credential cannot be had right now (a shared OAuth token needing re-authorization), every caller
   * would be listed the same. Always null for a per-user server: its catalogs are each user's own, and a
   * caller who has not connected must never see what another user's credential lists (they get the
   * connect tool instead, `credentials/connect-tool.ts`).
   */
  sharedCatalog(server: ResolvedServer): Tool[] | null {
    if (isPerUserServer(server)) return null;
    // The pooled connection's own catalog is the server's only when its configured headers are all of the
    // server's credential: an OAUTH server's pooled connection has no token.
    const entry = credentialIsConfiguredHeaders(server) ? this.#entries.get(server.name) : undefined;
    if (entry && entry.fingerprint === server.fingerprint && entry.catalog !== null && entry.catalogFor === entry.catalogGeneration) return entry.catalog;
    const listed = this.#sharedListings.get(server.name);
    return listed && listed.fingerprint === server.fingerprint ? listed.tools : null;
  }

  /**
   * The upstream's `initialize` answer (connecting if needed). Throws `UpstreamFailure` if it cannot be had.
   * With a `call` that does not ride the shared connection (a user's own credential over legacy SSE), the
   * answer that caller's own connection got: an upstream may refuse, or answer otherwise, the configured
   * headers alone.
   */
  async upstreamInfo(server: ResolvedServer, call?: UpstreamCall): Promise<UpstreamInfo> {
    if (server.unavailable !== null) throw new UpstreamFailure('unavailable', server.unavailable);
    if (call && !ridesSharedConnection(call, call.headers)) {
      const lease = this.#lease(call);
      try {
        return infoOf(await this.#getClient(lease.value));
      } finally {
        lease.release();
      }
    }
    return infoOf(await this.#getClient(this.#entryFor(server)));
  }

  /**
   * Any MCP request over the pooled client, for `/mcp/{server}` in front of a stdio or legacy SSE upstream:
   * the result as the upstream sent it (checked only to be a result object), or its JSON-RPC error, message
   * scrubbed. Throws `UpstreamFailure` for the upstream's trouble (timeout, unreachable, caller gone).
   */
  async request(call: UpstreamCall, method: string, params: Record<string, unknown> | undefined, options: RequestOptions = {}): Promise<RequestOutcome> {
    const server = call.server;
    if (server.unavailable !== null) throw new UpstreamFailure('unavailable', server.unavailable);
    // A credential that is not the configured headers (a user's own, an OAuth token) goes with the request,
    // over that identity's own upstream session, as tools/call does: the pooled connection carries only the
    // configured headers, and the upstream would refuse it (or answer for nobody in particular).
    if (call.identity !== SHARED_IDENTITY && server.connectionType === 'HTTP') return this.#requestOverHttp(call, method, params, options);
    const lease = this.#lease(call);
    try {
      return await this.#requestOn(lease.value, call, method, params, options);
    } finally {
      lease.release();
    }
  }

  async #requestOverHttp(call: UpstreamCall, method: string, params: Record<string, unknown> | undefined, options: RequestOptions): Promise<RequestOutcome> {
    const server = call.server;
    if (this.#closed) throw new UpstreamFailure('unreachable', ToolFailure.unreachable(server.name, 'the node is shutting down'));
    let message: Record<string, unknown>;
    try {
      message = await this.#http.request(call, method, params, options.timeoutMs ?? server.toolTimeoutMs, options.signal);
    } catch (error) {
      if (error instanceof UpstreamFailure) this.health.failed(server, call.identity, error);
      throw error;
    }
    this.health.reachable(server.name);
    const error = message.error;
    if (typeof error === 'object' && error !== null) {
      const { code, message: text, data } = error as { code?: unknown; message?: unknown; data?: unknown };
      return scrubRpcError(call, { code: typeof code === 'number' ? code : ErrorCode.InternalError, message: typeof text === 'string' ? text : '', ...(data === undefined ? {} : { data }) });
    }
    const result = message.result;
    if (typeof result !== 'object' || result === null || Array.isArray(result)) return { kind: 'rpc_error', code: ErrorCode.InternalError, message: ToolFailure.invalidResult(server.name) };
    return { kind: 'result', result: resultWithoutSecrets(call, result as Record<string, unknown>) };
  }

  async #requestOn(entry: Entry, call: UpstreamCall, method: string, params: Record<string, unknown> | undefined, options: RequestOptions): Promise<RequestOutcome> {
    const server = call.server;
    const client = await this.#getClient(entry).catch((error: unknown) => {
      throw error instanceof UpstreamFailure ? this.#failed(server, call, error) : error;
    });
    const timeout = options.timeoutMs ?? server.toolTimeoutMs;
    const requestOptions = {
      timeout,
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.onprogress ? { onprogress: options.onprogress, resetTimeoutOnProgress: true } : {}),
    };
    try {
      const sent = pooledParams(params, call.trace);
      const result = await client.request(sent === undefined ? { method } : { method, params: sent }, ResultSchema, requestOptions);
      this.health.reachable(server.name);
      return { kind: 'result', result: resultWithoutSecrets(call, result) };
    } catch (error) {
      if (options.signal?.aborted) throw new UpstreamFailure('cancelled', ToolFailure.cancelled(server.name));
      if (error instanceof McpError) {
        if (error.code === ErrorCode.RequestTimeout) throw this.#failed(server, call, new UpstreamFailure('timeout', ToolFailure.timeout(server.name, timeout)));
        if (error.code !== ErrorCode.ConnectionClosed) return scrubRpcError(call, { code: error.code, message: scrub(stripMcpPrefix(error), entry.server), data: error.data });
      }
      if (isInvalidResult(error)) return { kind: 'rpc_error', code: ErrorCode.InternalError, message: ToolFailure.invalidResult(server.name) };
      this.#drop(entry, client, error);
      throw this.#failed(server, call, new UpstreamFailure('unreachable', ToolFailure.unreachable(server.name, describeError(error, entry.server))));
    }
  }

  /** Records a failure of `call` in the health tracker and returns it, for `throw`. */
  #failed(server: ResolvedServer, call: UpstreamCall, failure: UpstreamFailure): UpstreamFailure {
    this.health.failed(server, call.identity, failure);
    return failure;
  }

  /**
   * The session of the server's pooled SDK connection (connecting it if needed): the shared identity's.
   * Synchronous while connected, so the common call waits on nothing here.
   */
  #sharedSession(server: ResolvedServer): HttpSession | Promise<HttpSession> {
    const entry = this.#entryFor(server);
    const connected = entry.client === null ? undefined : this.#sessions.get(entry.client);
    if (connected) return connected;
    return this.#getClient(entry).then((client) => {
      const session = this.#sessions.get(client);
      if (!session) throw new UpstreamFailure('unreachable', ToolFailure.unreachable(server.name, 'no session'));
      return session;
    });
  }

  #sharedSessionGone(server: ResolvedServer, session: HttpSession): void {
    const entry = this.#entries.get(server.name);
    const client = entry?.client;
    if (entry && client && this.#sessions.get(client) === session) this.#drop(entry, client, new Error('session not found (HTTP 404)'));
  }

  /** Applies a new Runtime: closes connections whose server is gone or changed; keeps the rest. */
  reconcile(runtime: Runtime): void {
    // Health of servers removed or unavailable here (disabled, env missing) would only be stale news.
    const usable = new Set<string>();
    for (const server of runtime.servers.values()) if (server.unavailable === null) usable.add(server.name);
    this.health.retain(usable);
    for (const entry of [...this.#entries.values()]) {
      const server = runtime.servers.get(entry.name);
      if (!server || server.unavailable !== null || server.fingerprint !== entry.fingerprint) {
        this.#logger.info({ server: entry.name }, 'upstream configuration changed or removed; closing its connection');
        void this.#retire(entry);
      } else {
        entry.server = server;
      }
    }
    for (const name of this.#identity.servers()) {
      const server = runtime.servers.get(name);
      for (const entry of this.#identity.values(name)) {
        if (!server || server.unavailable !== null || server.fingerprint !== entry.fingerprint) void this.#retire(entry);
        else entry.server = server;
      }
    }
    // Listed under other settings (another URL, credential or auth type): no longer the server's catalog.
    for (const [name, listed] of [...this.#sharedListings]) {
      const server = runtime.servers.get(name);
      if (!server || server.unavailable !== null || server.fingerprint !== listed.fingerprint || isPerUserServer(server)) this.#sharedListings.delete(name);
    }
    // A server's catalog is fetched as soon as it appears in a snapshot (issue 5), not when a client first
    // lists tools, so operators see `McpServer.tools` within a report interval. After the swap, so the new
    // Runtime is the current one; servers whose credential is per user are left to their callers.
    setImmediate(() => {
      if (this.#closed || this.#holder.current !== runtime) return;
      for (const server of runtime.servers.values()) {
        if (server.unavailable !== null || this.#entries.has(server.name)) continue;
        if (server.authType === 'OAUTH') {
          if (!this.#sharedListings.has(server.name)) this.#withSharedOAuth(server, (call) => this.listTools(server, call));
          continue;
        }
        if (!credentialIsConfiguredHeaders(server)) continue;
        this.listTools(server).catch(() => undefined);
      }
    }).unref();
  }

  /**
   * Pings servers the pool reaches with their shared credential (NONE, HEADERS, and OAUTH with its token
   * when `sharedOAuthCall` is given: the ones fetched eagerly) that no call, catalog fetch or probe observed
   * for a probe interval, so a server that went down or came back with no traffic shows so within about one
   * interval. A busy server costs nothing extra: its calls are its observations. Per-user servers are
   * observed by their callers' traffic only (no user's credential is used for the gateway's own purposes).
   */
  #probeIdle(): void {
    const runtime = this.#holder.current;
    if (this.#closed || !runtime) return;
    const idleSince = Date.now() - this.#probeIntervalMs;
    for (const server of runtime.servers.values()) {
      if (server.unavailable !== null) continue;
      if (this.health.observedAt(server.name) > idleSince) continue;
      if (server.authType === 'OAUTH') {
        // Not listed yet (its token came after it appeared): the listing is the probe, and fills its catalog.
        if (!this.#sharedListings.has(server.name)) this.#withSharedOAuth(server, (call) => this.listTools(server, call));
        else this.#withSharedOAuth(server, (call) => this.request(call, 'ping', undefined, { timeoutMs: this.#listTimeoutMs }));
        continue;
      }
      if (!credentialIsConfiguredHeaders(server)) continue;
      void this.#probe(server);
    }
  }

  /**
   * Runs `work` with a shared OAUTH server's token, in the background. No token to be had (not authorized
   * yet, the control plane away) means nothing to observe; what `work` meets is recorded by the call itself
   * (`listTools`, `request` record health), so its outcome is dropped here.
   */
  #withSharedOAuth(server: ResolvedServer, work: (call: UpstreamCall) => Promise<unknown>): void {
    const resolve = this.#sharedOAuthCall;
    if (resolve === null) return;
    resolve(server)
      .then((call) => (call === null || this.#closed ? undefined : work(call)))
      .catch(() => undefined);
  }

  /** One MCP `ping` over the server's pooled connection (connecting it if needed), recorded as health. */
  async #probe(server: ResolvedServer): Promise<void> {
    let entry: Entry;
    try {
      entry = this.#entryFor(server);
    } catch {
      return; // reconfigured or shutting down: nothing to observe
    }
    if (entry.probing) return;
    entry.probing = true;
    try {
      for (let attempt = 0; ; attempt++) {
        const client = await this.#getClient(entry);
        try {
          await client.ping({ timeout: this.#listTimeoutMs });
          break;
        } catch (error) {
          if (error instanceof McpError && error.code === ErrorCode.RequestTimeout) throw new UpstreamFailure('timeout', ToolFailure.timeout(server.name, this.#listTimeoutMs));
          // Any JSON-RPC answer (even "method not found") means the upstream is up and took the credential.
          if (error instanceof McpError && error.code !== ErrorCode.ConnectionClosed) break;
          this.#drop(entry, client, error);
          // A restarted upstream forgot the session: one more try on a fresh connection says how it is now.
          if (attempt === 0 && isSessionGone(error)) continue;
          throw reasonFailure(server.name, describeError(error, entry.server));
        }
      }
      if (!entry.closed) this.health.reachable(server.name);
    } catch (error) {
      if (!entry.closed && error instanceof UpstreamFailure) this.health.failed(entry.server, SHARED_IDENTITY, error);
    } finally {
      entry.probing = false;
    }
  }

  /**
   * The servers' own catalogs cached here (name and description only): what nodes report upstream as
   * `McpServer.tools`. Only catalogs listed with a server's shared credential (`sharedCatalog`): a per-user
   * server's pooled connection carries only its configured headers, which no caller's calls use alone, so
   * what it lists is nobody's catalog and is not reported either.
   */
  catalogs(): { server: string; tools: { name: string; description: string | null }[] }[] {
    const runtime = this.#holder.current;
    if (!runtime) return [];
    const out: { server: string; tools: { name: string; description: string | null }[] }[] = [];
    for (const server of runtime.servers.values()) {
      const tools = server.unavailable === null ? this.sharedCatalog(server) : null;
      if (tools !== null) out.push({ server: server.name, tools: tools.map((t) => ({ name: t.name, description: t.description ?? null })) });
    }
    return out;
  }

  /** Whether a connection to `name` is currently open (for health reporting and tests). */
  isConnected(name: string): boolean {
    return this.#entries.get(name)?.client != null;
  }

  /** How many legacy SSE connections `name` has open for callers' own identities or headers (for tests). */
  identityConnectionCount(name: string): number {
    return this.#identity.size(name);
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#unsubscribe();
    clearInterval(this.#sweepTimer);
    if (this.#probeTimer) clearInterval(this.#probeTimer);
    const closing: Promise<void>[] = [];
    for (const entry of [...this.#entries.values()]) closing.push(this.#retire(entry));
    for (const name of this.#identity.servers()) for (const entry of this.#identity.values(name)) closing.push(this.#retire(entry));
    await Promise.all(closing);
    await this.#agent.close().catch(() => undefined);
  }

  async #callOnce(call: UpstreamCall, tool: string, args: Record<string, unknown> | undefined, options: CallToolOptions, mayRetry: boolean): Promise<CallOutcome> {
    const lease = this.#lease(call);
    try {
      return await this.#callOn(lease.value, call, tool, args, options, mayRetry);
    } finally {
      lease.release();
    }
  }

  async #callOn(entry: Entry, call: UpstreamCall, tool: string, args: Record<string, unknown> | undefined, options: CallToolOptions, mayRetry: boolean): Promise<CallOutcome> {
    const server = call.server;
    const client = await this.#getClient(entry);
    const meta = call.trace;
    const params = { name: tool, ...(args === undefined ? {} : { arguments: args }), ...(meta ? { _meta: meta } : {}) };
    const requestOptions = {
      timeout: server.toolTimeoutMs,
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.onprogress ? { onprogress: options.onprogress, resetTimeoutOnProgress: true } : {}),
    };
    try {
      const result = await client.callTool(params, undefined, requestOptions);
      // Without any credential this call sent, should the upstream have echoed it.
      return { kind: 'result', result: resultWithoutSecrets(call, result as CallToolResult) };
    } catch (error) {
      // The caller left: nothing is wrong with the connection, and nobody reads this answer.
      if (options.signal?.aborted) throw new UpstreamFailure('cancelled', ToolFailure.cancelled(server.name));
      if (error instanceof McpError) {
        if (error.code === ErrorCode.RequestTimeout) {
          // The connection is fine; the tool is slow. The SDK has already sent notifications/cancelled.
          throw new UpstreamFailure('timeout', ToolFailure.timeout(server.name, server.toolTimeoutMs));
        }
        if (error.code !== ErrorCode.ConnectionClosed) {
          // Message and data without any credential this call sent (an upstream may echo it back).
          return scrubRpcError(call, { code: error.code, message: scrub(stripMcpPrefix(error), entry.server), data: error.data });
        }
      }
      if (isInvalidResult(error)) {
        return { kind: 'rpc_error', code: ErrorCode.InternalError, message: ToolFailure.invalidResult(server.name) };
      }
      this.#drop(entry, client, error);
      // An upstream that restarted forgets our session and answers 404 before running anything, so the
      // call is safe to repeat once on a fresh connection.
      if (mayRetry && isSessionGone(error)) return this.#callOn(entry, call, tool, args, options, false);
      throw new UpstreamFailure('unreachable', ToolFailure.unreachable(server.name, describeError(error, entry.server)));
    }
  }

  #entryFor(server: ResolvedServer): Entry {
    if (this.#closed) throw new UpstreamFailure('unreachable', ToolFailure.unreachable(server.name, 'the node is shutting down'));
    const existing = this.#entries.get(server.name);
    if (existing && existing.fingerprint === server.fingerprint) return existing;
    // Only the current Runtime's settings may open a connection: a request still holding an older Runtime
    // must not resurrect a connection the swap just closed.
    const current = this.#holder.current?.servers.get(server.name);
    if (!current || current.fingerprint !== server.fingerprint) {
      throw new UpstreamFailure('reconfigured', ToolFailure.reconfigured(server.name));
    }
    if (existing) void this.#retire(existing);
    const entry = newEntry(server, SHARED_IDENTITY, null, null);
    this.#entries.set(server.name, entry);
    return entry;
  }

  /**
   * The connection a call goes over: the server's shared one, or (legacy SSE whose headers are not the
   * configured ones) the connection opened with this call's own identity and headers. Release it when done.
   */
  #lease(call: UpstreamCall): Lease<Entry> {
    const server = call.server;
    const headers = call.headers;
    if (ridesSharedConnection(call, headers)) return { value: this.#entryFor(server), release: noRelease };
    if (this.#closed) throw new UpstreamFailure('unreachable', ToolFailure.unreachable(server.name, 'the node is shutting down'));
    // As in #entryFor: only the current Runtime's settings may open a connection.
    const current = this.#holder.current?.servers.get(server.name);
    if (!current || current.fingerprint !== server.fingerprint) throw new UpstreamFailure('reconfigured', ToolFailure.reconfigured(server.name));
    const key = identityKey(call.identity, headers);
    const lease = this.#identity.acquire(
      server.name,
      key,
      () => newEntry(server, call.identity, headers, key),
      (entry) => entry.fingerprint === server.fingerprint && !entry.closed,
    );
    if (!lease) throw new UpstreamFailure('unreachable', ToolFailure.unreachable(server.name, 'too many concurrent connections for different credentials; try again shortly'));
    return lease;
  }

  #getClient(entry: Entry): Promise<Client> {
    if (entry.client) return Promise.resolve(entry.client);
    if (entry.connecting) return entry.connecting;
    if (Date.now() < entry.retryAt) {
      return Promise.reject(reasonFailure(entry.name, entry.lastError));
    }
    // With the entry's own headers: a shared connection never carries the extras of the call that opened it.
    const connecting = this.#connect(entry);
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
    let transport: Transport;
    try {
      transport = createTransport(server, {
        fetch: this.#fetch,
        headers: entry.headers ?? server.headers,
        // Without its control and format characters (but tab and newline): a log viewer would print them.
        onStderr: (chunk) => this.#logger.info({ server: entry.name, stderr: showableDescription(scrub(chunk.slice(0, 2_000), server)) }, 'stdio upstream stderr'),
      });
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new ConnectTimeout(this.#connectTimeoutMs)), this.#connectTimeoutMs);
      });
      await Promise.race([client.connect(transport, { timeout: this.#connectTimeoutMs }), timeout]);
    } catch (error) {
      void client.close().catch(() => undefined);
      entry.failures += 1;
      const delay = Math.min(this.#backoff.maxMs, this.#backoff.initialMs * 2 ** (entry.failures - 1));
      entry.retryAt = Date.now() + delay;
      entry.lastError = describeError(error, server);
      this.#logger.warn({ server: entry.name, reason: entry.lastError, retryInMs: delay }, 'upstream connect failed');
      throw reasonFailure(entry.name, entry.lastError);
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
    if (transport instanceof StreamableHTTPClientTransport) {
      // The shared identity's session for direct calls (`http-calls.ts`): this connection's own.
      this.#sessions.set(client, { id: transport.sessionId ?? null, protocolVersion: transport.protocolVersion ?? LATEST_PROTOCOL_VERSION });
    }
    this.#logger.info({ server: entry.name, connectionType: server.connectionType }, 'upstream connected');
    return client;
  }

  #loadCatalog(entry: Entry): Promise<Tool[]> {
    let generation = -1;
    const loading = (async () => {
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
    })();
    entry.catalogLoading = loading;
    loading.then(
      (tools) => {
        if (entry.catalogLoading === loading) entry.catalogLoading = null;
        if (entry.closed) return;
        this.health.reachable(entry.name);
        entry.catalog = tools;
        entry.catalogFor = generation;
        // A list_changed that arrived mid-load means these tools may already be old: load again.
        if (generation !== entry.catalogGeneration) this.#loadCatalog(entry).catch(() => undefined);
      },
      (error: unknown) => {
        if (entry.catalogLoading === loading) entry.catalogLoading = null;
        // Attributed to the connection's own identity: a user's refused credential is not the server's status.
        if (!entry.closed && error instanceof UpstreamFailure) this.health.failed(entry.server, entry.identity, error);
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
    if (entry.key === null) this.#http.retire(entry.name);
    else this.#identity.forget(entry.name, entry.key, entry);
    if (this.#entries.get(entry.name) === entry) this.#entries.delete(entry.name);
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

function newEntry(server: ResolvedServer, identity: CredentialIdentity, headers: Readonly<Record<string, string>> | null, key: string | null): Entry {
  return {
    name: server.name,
    fingerprint: server.fingerprint,
    server,
    identity,
    headers,
    key,
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
    probing: false,
  };
}

/** What the upstream said at `initialize`, its instructions and info as they may be shown (tool-names.ts `servableServerResult`). */
function infoOf(client: Client): UpstreamInfo {
  const info = client.getServerVersion();
  return servableServerResult({ capabilities: client.getServerCapabilities() ?? {}, serverInfo: info ? { name: info.name, version: info.version } : null, instructions: client.getInstructions() ?? null });
}

function isInvalidResult(error: unknown): boolean {
  return error instanceof Error && (error.name === 'ZodError' || error.name === '$ZodError');
}

function isSessionGone(error: unknown): boolean {
  if (error instanceof StreamableHTTPError) return error.code === 404;
  return error instanceof Error && /\(HTTP 404\)/.test(error.message);
}
