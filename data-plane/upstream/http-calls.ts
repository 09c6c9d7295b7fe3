/**
 * Tool calls to Streamable HTTP upstreams, made directly (undici, `streamable-http.ts`) with the explicit
 * `UpstreamCall` from the pipeline's credentials stage, and upstream `Mcp-Session-Id` sessions kept per
 * (server, credential identity): one identity's session never carries another identity's call.
 *
 * The `shared` identity (the server's own configured credential) rides the session of the pool's SDK
 * client for that server (it holds the same credential, and its GET stream brings `list_changed`), so a
 * server costs one `initialize` however many callers share its credential. Every other identity (a user's
 * own credential) gets its own session, opened here with that identity's headers (initialize, then
 * `notifications/initialized`), at most `MAX_SESSIONS_PER_SERVER` per server (the oldest is forgotten).
 *
 * The message sent is the caller's `tools/call` params with only the tool name rewritten (and our own
 * request id: concurrent callers' ids would collide on a shared session). A 404 on a session (the upstream
 * restarted) opens a new one and repeats the call once: the upstream ran nothing. 401/403 is
 * `credentials_refused`. A call the caller abandons, or that runs past `toolTimeoutMs`, is cancelled
 * upstream with `notifications/cancelled`. The result is relayed as the upstream gave it after a shape check
 * (an object whose `content`, if present, is a list): the client validates it fully.
 */
import { LATEST_PROTOCOL_VERSION, type Tool } from '@modelcontextprotocol/sdk/types.js';
import type { Dispatcher } from 'undici';
import type { ResolvedServer } from '../config/runtime.js';
import { ToolFailure } from '../errors.js';
import type { Logger } from '../log.js';
import { callHeaders, type CredentialIdentity, type UpstreamCall } from '../pipeline/credentials.js';
import { SHARED_IDENTITY } from '../pipeline/credentials.js';
import type { Departure } from '../pipeline/context.js';
import { UpstreamFailure, describeError, resultWithoutSecrets, scrub, scrubRpcError, type CallOutcome } from './failures.js';
import { exchange, requestHeaders, type ExchangeResult } from './streamable-http.js';

export interface HttpSession {
  /** `Mcp-Session-Id` the upstream issued, or null for a stateless upstream. */
  readonly id: string | null;
  readonly protocolVersion: string;
}

/** Where the `shared` identity's session comes from (the pool's SDK client for the server). */
export interface SharedSessions {
  get(server: ResolvedServer): HttpSession | Promise<HttpSession>;
  /** The upstream answered 404 for this session: drop it so the next `get` opens a new one. */
  gone(server: ResolvedServer, session: HttpSession): void;
}

export const MAX_SESSIONS_PER_SERVER = 10_000;
const MAX_LIST_PAGES = 100;

/** Deadline for opening a session (initialize, initialized). */
const OPEN_TIMEOUT_MS = 10_000;

interface ServerSessions {
  readonly fingerprint: string;
  /** The session, or its opening while it opens (then replaced by the session itself). */
  readonly byIdentity: Map<CredentialIdentity, HttpSession | Promise<HttpSession>>;
}

export interface HttpCallsOptions {
  dispatcher: Dispatcher;
  shared: SharedSessions;
  logger: Logger;
  clientInfo: { name: string; version: string };
}

export class HttpCalls {
  readonly #dispatcher: Dispatcher;
  readonly #shared: SharedSessions;
  readonly #logger: Logger;
  readonly #clientInfo: { name: string; version: string };
  readonly #servers = new Map<string, ServerSessions>();
  #nextId = 1;

  constructor(options: HttpCallsOptions) {
    this.#dispatcher = options.dispatcher;
    this.#shared = options.shared;
    this.#logger = options.logger;
    this.#clientInfo = options.clientInfo;
  }

  /**
   * `params` are the caller's `tools/call` params; `tool` is the upstream's own name for the tool.
   * `onNotification` receives what the upstream sends on the call's stream before its answer (progress, logs).
   */
  callTool(
    call: UpstreamCall,
    tool: string,
    params: Readonly<Record<string, unknown>>,
    signal?: Departure,
    onNotification?: (message: Record<string, unknown>) => void,
  ): Promise<CallOutcome> {
    const server = call.server;
    const url = server.url;
    if (!url) return Promise.reject(new UpstreamFailure('unavailable', ToolFailure.unavailable(server.name, 'no URL')));
    const message = { ...params, name: tool };
    const pending = this.#session(call);
    // The shared identity's session is at hand once opened: the call then goes out in this turn.
    if (pending instanceof Promise) return pending.then((session) => this.#callOn(call, url, message, session, 0, signal, onNotification));
    return this.#callOn(call, url, message, pending, 0, signal, onNotification);
  }

  /**
   * One attempt of a tools/call on `session`: the exchange's promise and one continuation that turns its
   * result into the outcome (no async frame per layer). A 404 on a session (the upstream restarted and ran
   * nothing) is repeated once on a new session.
   */
  #callOn(
    call: UpstreamCall,
    url: URL,
    message: Readonly<Record<string, unknown>>,
    session: HttpSession,
    attempt: number,
    signal: Departure | undefined,
    onNotification: ((message: Record<string, unknown>) => void) | undefined,
  ): Promise<CallOutcome> {
    const server = call.server;
    const id = this.#nextId++;
    let sending: Promise<ExchangeResult>;
    try {
      const body = `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":${JSON.stringify(message)}}`;
      sending = this.#exchange(call, session, url, body, id, server.toolTimeoutMs, signal, onNotification);
    } catch (error) {
      return Promise.reject(error);
    }
    return sending.then(
      (exchanged) => {
        const result = this.#received(call, session, url, id, server.toolTimeoutMs, signal, exchanged);
        if (result.kind === 'response') return outcomeOf(result.message, call, result.status, result.text);
        if (result.kind === 'http_error' && result.status === 404 && session.id !== null && attempt === 0) {
          // The upstream forgot the session (restarted): it ran nothing, so one repeat on a new session is safe.
          this.#forget(call, session);
          const next = this.#session(call);
          if (next instanceof Promise) return next.then((opened) => this.#callOn(call, url, message, opened, 1, signal, onNotification));
          return this.#callOn(call, url, message, next, 1, signal, onNotification);
        }
        throw failureOf(result, server);
      },
      (error: unknown) => {
        throw this.#unreached(call, session, url, id, signal, error);
      },
    );
  }

  /**
   * `tools/list` (every page) through this call's credential and session: how servers whose credential is
   * per caller (per-user, OAuth) are listed.
   */
  async listTools(call: UpstreamCall, timeoutMs: number): Promise<Tool[]> {
    const tools: Tool[] = [];
    let cursor: string | undefined;
    for (let page = 0; page < MAX_LIST_PAGES; page++) {
      const message = await this.request(call, 'tools/list', cursor === undefined ? {} : { cursor }, timeoutMs);
      const listed = message.result as { tools?: unknown; nextCursor?: unknown } | undefined;
      if (!listed || !Array.isArray(listed.tools)) throw new UpstreamFailure('unreachable', ToolFailure.invalidResult(call.server.name));
      for (const tool of listed.tools) if (typeof tool === 'object' && tool !== null && typeof (tool as Tool).name === 'string') tools.push(tool as Tool);
      cursor = typeof listed.nextCursor === 'string' ? listed.nextCursor : undefined;
      if (cursor === undefined) break;
    }
    return tools;
  }

  /**
   * One request other than tools/call through this call's credential and session (lists, reads, gets of a
   * server whose credential is per caller or an OAuth token, which the pooled SDK connection cannot carry):
   * the upstream's JSON-RPC response message, `result` or `error`. A 404 on a session (the upstream
   * restarted) is repeated once on a new session. Throws `UpstreamFailure` for anything else.
   */
  async request(call: UpstreamCall, method: string, params: Readonly<Record<string, unknown>> | undefined, timeoutMs: number, signal?: Departure): Promise<Record<string, unknown>> {
    const server = call.server;
    const url = server.url;
    if (!url) throw new UpstreamFailure('unavailable', ToolFailure.unavailable(server.name, 'no URL'));
    for (let attempt = 0; ; attempt++) {
      const session = await this.#session(call);
      const id = this.#nextId++;
      const body = JSON.stringify({ jsonrpc: '2.0', id, method, params: params ?? {} });
      let exchanged: ExchangeResult;
      try {
        exchanged = await this.#exchange(call, session, url, body, id, timeoutMs, signal, undefined);
      } catch (error) {
        throw this.#unreached(call, session, url, id, signal, error);
      }
      const result = this.#received(call, session, url, id, timeoutMs, signal, exchanged);
      if (result.kind === 'http_error' && result.status === 404 && session.id !== null && attempt === 0) {
        this.#forget(call, session);
        continue;
      }
      if (result.kind !== 'response') throw failureOf(result, server);
      return result.message;
    }
  }

  /** Forgets the sessions of a server that was removed or reconfigured. */
  retire(serverName: string): void {
    this.#servers.delete(serverName);
  }

  /** Starts an exchange bounded by `timeoutMs` and the caller's signal (refused at once if the caller has already left). */
  #exchange(
    call: UpstreamCall,
    session: HttpSession,
    url: URL,
    body: string,
    id: number,
    timeoutMs: number,
    signal: Departure | undefined,
    onNotification: ((message: Record<string, unknown>) => void) | undefined,
  ): Promise<ExchangeResult> {
    if (signal?.aborted) return Promise.reject(new UpstreamFailure('cancelled', ToolFailure.cancelled(call.server.name)));
    const target = targetOf(url);
    return exchange(this.#dispatcher, { origin: target.origin, path: target.path, headers: sessionHeaders(call, session), body, id, signal, timeoutMs, onNotification });
  }

  /** What an exchange that got no answer is (the caller left: cancelled upstream too; else unreachable). */
  #unreached(call: UpstreamCall, session: HttpSession, url: URL, id: number, signal: Departure | undefined, error: unknown): UpstreamFailure {
    const server = call.server;
    if (error instanceof UpstreamFailure) return error;
    if (signal?.aborted) {
      this.#cancel(call, session, url, id, 'the caller went away');
      return new UpstreamFailure('cancelled', ToolFailure.cancelled(server.name));
    }
    return new UpstreamFailure('unreachable', ToolFailure.unreachable(server.name, describeError(error, server)));
  }

  /** An exchange's result, or the failure it is: the caller left while the answer streamed in, or the deadline passed (both cancelled upstream). */
  #received(call: UpstreamCall, session: HttpSession, url: URL, id: number, timeoutMs: number, signal: Departure | undefined, result: ExchangeResult): ExchangeResult {
    const server = call.server;
    if (signal?.aborted && result.kind !== 'response') {
      // The caller left while the answer streamed in (an abort ends an SSE body as a stream failure).
      this.#cancel(call, session, url, id, 'the caller went away');
      throw new UpstreamFailure('cancelled', ToolFailure.cancelled(server.name));
    }
    if (result.kind === 'timeout') {
      this.#cancel(call, session, url, id, 'timeout');
      throw new UpstreamFailure('timeout', ToolFailure.timeout(server.name, timeoutMs));
    }
    return result;
  }

  /** MCP basic/utilities/cancellation: tell the upstream to stop; best effort, nobody waits for it. */
  #cancel(call: UpstreamCall, session: HttpSession, url: URL, requestId: number, reason: string): void {
    const body = JSON.stringify({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId, reason } });
    exchange(this.#dispatcher, { origin: url.origin, path: url.pathname + url.search, headers: sessionHeaders(call, session), body, id: null, signal: undefined, timeoutMs: 5_000 }).catch(
      (error: unknown) => this.#logger.debug({ server: call.server.name, reason: describeError(error, call.server) }, 'could not cancel an upstream call'),
    );
  }

  #sessionsOf(server: ResolvedServer): ServerSessions {
    let sessions = this.#servers.get(server.name);
    if (!sessions || sessions.fingerprint !== server.fingerprint) {
      sessions = { fingerprint: server.fingerprint, byIdentity: new Map() };
      this.#servers.set(server.name, sessions);
    }
    return sessions;
  }

  #session(call: UpstreamCall): HttpSession | Promise<HttpSession> {
    if (call.identity === SHARED_IDENTITY) return this.#shared.get(call.server);
    const sessions = this.#sessionsOf(call.server);
    let session = sessions.byIdentity.get(call.identity);
    if (!session) {
      if (sessions.byIdentity.size >= MAX_SESSIONS_PER_SERVER) {
        const oldest = sessions.byIdentity.keys().next().value;
        if (oldest !== undefined) sessions.byIdentity.delete(oldest);
      }
      const opening = this.#open(call);
      sessions.byIdentity.set(call.identity, opening);
      opening.then(
        (opened) => {
          if (sessions.byIdentity.get(call.identity) === opening) sessions.byIdentity.set(call.identity, opened);
        },
        // A failed open is not kept: the next call tries again.
        () => {
          if (sessions.byIdentity.get(call.identity) === opening) sessions.byIdentity.delete(call.identity);
        },
      );
      return opening;
    }
    return session;
  }

  #forget(call: UpstreamCall, session: HttpSession): void {
    if (call.identity === SHARED_IDENTITY) {
      this.#shared.gone(call.server, session);
      return;
    }
    this.#servers.get(call.server.name)?.byIdentity.delete(call.identity);
  }

  /** MCP lifecycle §Initialization with this identity's headers: initialize, then notifications/initialized. */
  async #open(call: UpstreamCall): Promise<HttpSession> {
    const server = call.server;
    const url = server.url as URL;
    const id = this.#nextId++;
    const body = JSON.stringify({
      jsonrpc: '2.0',
      id,
      method: 'initialize',
      params: { protocolVersion: LATEST_PROTOCOL_VERSION, capabilities: {}, clientInfo: this.#clientInfo },
    });
    let result: ExchangeResult;
    try {
      result = await exchange(this.#dispatcher, { origin: url.origin, path: url.pathname + url.search, headers: requestHeaders(callHeaders(call)), body, id, signal: undefined, timeoutMs: OPEN_TIMEOUT_MS });
    } catch (error) {
      throw new UpstreamFailure('unreachable', ToolFailure.unreachable(server.name, describeError(error, server)));
    }
    if (result.kind === 'timeout') throw new UpstreamFailure('timeout', ToolFailure.timeout(server.name, OPEN_TIMEOUT_MS));
    if (result.kind !== 'response') throw failureOf(result, server);
    const answer = result.message.result as { protocolVersion?: unknown } | undefined;
    if (typeof answer?.protocolVersion !== 'string') {
      throw new UpstreamFailure('unreachable', ToolFailure.unreachable(server.name, 'initialize failed'));
    }
    const session: HttpSession = { id: result.sessionId, protocolVersion: answer.protocolVersion };
    const initialized = await exchange(this.#dispatcher, {
      origin: url.origin,
      path: url.pathname + url.search,
      headers: sessionHeaders(call, session),
      body: '{"jsonrpc":"2.0","method":"notifications/initialized"}',
      id: null,
      signal: undefined,
      timeoutMs: OPEN_TIMEOUT_MS,
    }).catch((error: unknown) => {
      throw new UpstreamFailure('unreachable', ToolFailure.unreachable(server.name, describeError(error, server)));
    });
    if (initialized.kind === 'http_error' || initialized.kind === 'timeout') throw failureOf(initialized, server);
    this.#logger.info({ server: server.name, identity: call.identity.startsWith('user:') ? 'user' : call.identity }, 'upstream session opened');
    return session;
  }
}

const sessionHeaderCache = new WeakMap<HttpSession, WeakMap<Readonly<Record<string, string>>, string[]>>();

/**
 * The call's headers plus the session's, as undici's flat list; cached per (session, header object), as
 * both live as long as the session and the server's configuration (a call with caller headers has its own).
 * The call's trace headers, new on every call, are appended to a copy.
 */
function sessionHeaders(call: UpstreamCall, session: HttpSession): string[] {
  const headers = sessionCredentialHeaders(call, session);
  const trace = call.trace;
  if (trace === undefined) return headers;
  const out = headers.slice();
  for (const name in trace) out.push(name, trace[name] as string);
  return out;
}

const targets = new WeakMap<URL, { origin: string; path: string }>();

/**
 * The origin and path (+ query) of an upstream URL, computed once per URL object (a server's, which lives as
 * long as its configuration): URL's getters build new strings on every read.
 */
function targetOf(url: URL): { origin: string; path: string } {
  let target = targets.get(url);
  if (target === undefined) {
    target = { origin: url.origin, path: url.pathname + url.search };
    targets.set(url, target);
  }
  return target;
}

function sessionCredentialHeaders(call: UpstreamCall, session: HttpSession): string[] {
  let byHeaders = sessionHeaderCache.get(session);
  if (!byHeaders) {
    byHeaders = new WeakMap();
    sessionHeaderCache.set(session, byHeaders);
  }
  let headers = byHeaders.get(call.headers);
  if (!headers) {
    const all: Record<string, string> = { ...call.headers, 'mcp-protocol-version': session.protocolVersion };
    if (session.id !== null) all['mcp-session-id'] = session.id;
    headers = requestHeaders(all);
    byHeaders.set(call.headers, headers);
  }
  return headers;
}

function failureOf(result: ExchangeResult, server: ResolvedServer): UpstreamFailure {
  if (result.kind === 'timeout') return new UpstreamFailure('timeout', ToolFailure.timeout(server.name, OPEN_TIMEOUT_MS));
  if (result.kind === 'http_error' && (result.status === 401 || result.status === 403)) {
    return new UpstreamFailure('credentials_refused', ToolFailure.credentialsRefused(server.name, result.status), result.status);
  }
  const detail = result.kind === 'http_error' ? result.detail : 'unexpected answer from upstream';
  return new UpstreamFailure('unreachable', ToolFailure.unreachable(server.name, detail), result.kind === 'http_error' && result.status > 0 ? result.status : undefined);
}

function outcomeOf(message: Record<string, unknown>, call: UpstreamCall, upstreamStatus: number, text: string): CallOutcome {
  const server = call.server;
  const error = message.error;
  if (error !== undefined) {
    const e = (typeof error === 'object' && error !== null ? error : {}) as { code?: unknown; message?: unknown; data?: unknown };
    const code = typeof e.code === 'number' && Number.isInteger(e.code) ? e.code : -32603;
    const text = typeof e.message === 'string' ? scrub(e.message, server).slice(0, 1_000) : 'upstream error';
    // The message and data without any credential this call sent (an upstream may echo it back).
    return scrubRpcError(call, e.data === undefined ? { code, message: text, upstreamStatus } : { code, message: text, data: e.data, upstreamStatus });
  }
  const result = message.result;
  if (typeof result !== 'object' || result === null || Array.isArray(result) || ('content' in result && !Array.isArray((result as { content: unknown }).content))) {
    return { kind: 'rpc_error', code: -32603, message: ToolFailure.invalidResult(server.name), upstreamStatus };
  }
  // Without any credential this call sent, should the upstream have echoed it (decided on the raw text).
  return { kind: 'result', upstreamStatus, result: resultWithoutSecrets(call, result, text) as CallOutcome extends { kind: 'result'; result: infer R } ? R : never };
}
