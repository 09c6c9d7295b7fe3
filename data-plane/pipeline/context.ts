/**
 * The per-request context every pipeline stage reads and fills in, and the record it leaves behind.
 *
 * One `RequestContext` per HTTP request: who the caller is (once authenticated), the Runtime it was served
 * from, an abort signal that fires when the caller goes away, and the `RequestRecord`s (one per JSON-RPC
 * request, or one for a request refused before it was parsed) that the record stage hands to the sinks
 * after the answer is sent. Stages never touch the response: `res` is held only to notice the caller leaving.
 *
 * It does not decide anything and does no I/O.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Runtime, RuntimeKey } from '../config/runtime.js';
import type { GatewayError, GatewayErrorCode } from '../errors.js';
import type { UserEntry } from '../snapshot/schema.js';
import type { Usage } from './limits.js';
import { parseTraceparent, type TraceContext } from '../tracing/trace-context.js';
import type { GuardrailFinding } from '../snapshot/audit-protocol.js';

/** The data-plane routes that run the pipeline. */
export type RouteName = 'mcp' | 'mcp_server' | 'anthropic';

/** An authenticated caller: its key, the key's user, and the presented key value (kept out of upstream requests). */
export interface Caller {
  readonly key: RuntimeKey;
  readonly user: UserEntry;
  readonly token: string;
}

/**
 * - `ok`: answered; `tool_error`: the upstream's tool answered `isError`; `upstream_rpc_error`: it answered a
 *   JSON-RPC error; `upstream_error`: it could not be reached, timed out, or the call was cancelled;
 * - `denied`: a policy stage (authorize, limits, credentials) refused it; `invalid`: malformed message;
 * - `refused`: stopped before a message was read (Origin, authentication, readiness, body size).
 */
export type RecordOutcome = 'ok' | 'tool_error' | 'upstream_rpc_error' | 'upstream_error' | 'denied' | 'invalid' | 'refused';

/** What the record stage hands to every sink (audit, metrics). Sinks must treat it as read-only. */
export interface RequestRecord {
  readonly route: RouteName;
  /** Per node process; the records of one HTTP request (a JSON-RPC batch) share it. */
  readonly requestId: number;
  /** When the HTTP request arrived, epoch ms. */
  readonly at: number;
  /** From arrival to the answer being sent (fractional ms). */
  latencyMs: number;
  keyId: string | null;
  /** For a refused key: the first characters of the presented key's hash (never the value), for the audit trail. */
  keyHashPrefix: string | null;
  userId: string | null;
  /** The JSON-RPC method (`tools/call`), or for non-JSON-RPC routes the HTTP method and path. */
  method: string | null;
  server: string | null;
  /** The upstream's own tool name (unprefixed). */
  tool: string | null;
  /** `tools/call` arguments as received. Unredacted: a sink that stores them redacts them first. */
  arguments: unknown;
  outcome: RecordOutcome;
  /** The typed refusal, if the request was refused. */
  error: GatewayErrorCode | null;
  /** Why (deny reason, upstream failure kind); for operators, never shown to the caller. */
  reason: string | null;
  /** The credential identity the upstream call used (see `credentials.ts`). */
  credentialIdentity: string | null;
  /** Metered usage, when the forward stage knows it (LLM tokens, tool price). */
  usage: Usage | null;
  /** The HTTP status the upstream or provider answered with, where the route sees one. */
  upstreamStatus?: number;
  /** The result as returned to the caller (after the guardrail), for the audit trail; absent when not kept. */
  result?: unknown;
  /** Secrets the guardrail found in this message (kinds and JSON paths, never values). */
  guardrail?: GuardrailFinding[];
  /** W3C trace id (32 hex) of the request, when it had or got one. */
  traceId?: string;
  /** The trace the upstream call carried, and the span id sent upstream as its parent (this hop). */
  trace?: TraceContext;
  upstreamSpanId?: string;
  /** When stages 5–7 ran (epoch ms), when the pipeline times stages (OpenTelemetry configured). */
  stages?: { name: string; start: number; end: number }[];
}

/**
 * The caller leaving before its answer is sent, as an upstream call watches for it: the part of `AbortSignal`
 * that call uses (so an AbortSignal is one too). The pipeline's forward stage gets
 * `RequestContext.departure`, which costs a plain listener on the response rather than an AbortController:
 * the controller, and adding and removing an EventTarget listener for every upstream call, showed in the
 * hot path's profile, while almost no caller ever leaves. Code that needs a real AbortSignal (fetch, the
 * MCP SDK) uses `RequestContext.signal` or `abortSignalOf`.
 */
export interface Departure {
  readonly aborted: boolean;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

/** A caller that never leaves: for work nobody is waiting on to give up. */
export const NEVER_DEPARTS: Departure = { aborted: false, addEventListener: () => undefined, removeEventListener: () => undefined };

/** A real AbortSignal that aborts when `departure` does (itself, when it already is one). */
export function abortSignalOf(departure: Departure): AbortSignal {
  if (departure instanceof AbortSignal) return departure;
  const controller = new AbortController();
  if (departure.aborted) controller.abort();
  else departure.addEventListener('abort', () => controller.abort(), { once: true });
  return controller.signal;
}

/** `Departure` over a response: aborted when the response closes before it finished (the caller left). */
class ResponseDeparture implements Departure {
  aborted = false;
  #listeners: (() => void)[] | null = null;

  constructor(res: ServerResponse) {
    // `on`, not `once`: a response closes once, and `once` wraps every listener in a bound function and
    // its state object (one more allocation per request for nothing).
    res.on('close', () => {
      if (res.writableFinished) return;
      this.aborted = true;
      const listeners = this.#listeners;
      this.#listeners = null;
      // As an AbortSignal does: each listener once, in the order they were added.
      if (listeners) for (const listener of listeners) listener();
    });
  }

  addEventListener(_type: 'abort', listener: () => void): void {
    // Like an AbortSignal, one that has aborted calls no listener added later. The usual one listener gets
    // an array of its own size (an empty array grown by push reserves room for 17).
    if (this.aborted) return;
    if (this.#listeners === null) this.#listeners = [listener];
    else this.#listeners.push(listener);
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    const listeners = this.#listeners;
    const at = listeners === null ? -1 : listeners.indexOf(listener);
    if (at !== -1) (listeners as (() => void)[]).splice(at, 1);
  }
}

/** What a request says it is before its body is read: the method and, for a tool call, the server and tool. */
export interface Declared {
  readonly method: string;
  readonly server: string | null;
  /** The upstream's own tool name; the name as sent when it names no configured server. */
  readonly tool: string | null;
}

let nextRequestId = 1;

export class RequestContext {
  readonly route: RouteName;
  readonly requestId: number;
  readonly req: IncomingMessage;
  /** Epoch ms when the request arrived (the pipeline's clock: key expiry, record time). */
  readonly startedAt: number;
  /** `performance.now()` when the request arrived, for sub-millisecond latencies. */
  readonly startedTick = performance.now();
  /** Set by the authenticate stage: the Runtime this whole request is served from (a swap mid-request does not split it). */
  runtime: Runtime | null = null;
  /** Set by the authenticate stage. */
  caller: Caller | null = null;
  /** Set by the authenticate stage when it refuses a presented key: what the record may say about it. */
  refusedKey: { keyId: string | null; hashPrefix: string | null } | null = null;
  readonly records: RequestRecord[] = [];
  /**
   * Set by a parse stage that refuses a request for what its headers say it is (MCP `Mcp-Method` /
   * `Mcp-Name`, before the body is read), so the refusal's record still says what was refused.
   */
  declared: Declared | null = null;
  readonly #res: ServerResponse;
  #signal: AbortSignal | null = null;
  #departure: ResponseDeparture | null = null;

  constructor(route: RouteName, req: IncomingMessage, res: ServerResponse, startedAt: number) {
    this.route = route;
    this.requestId = nextRequestId++;
    this.req = req;
    this.#res = res;
    this.startedAt = startedAt;
    // W3C Trace Context from the caller's headers (a message's `_meta.traceparent` may override it per call).
    this.trace = req.headers.traceparent === undefined ? null : parseTraceparent(req.headers.traceparent, req.headers.tracestate);
  }

  /** The caller's trace (or one started for the first upstream call); its id goes into every record. */
  trace: TraceContext | null;

  /**
   * Aborted when the caller goes away before its answer is sent, so upstream calls are cancelled instead of
   * running to their timeout. Created on first use: one listener per request, however many calls it makes.
   */
  get signal(): AbortSignal {
    // Over the departure, so the response carries one 'close' listener however both are used.
    return (this.#signal ??= abortSignalOf(this.departure));
  }

  /** The caller leaving, for upstream calls to give up on (see `Departure`); created on first use, one per request. */
  get departure(): Departure {
    return (this.#departure ??= new ResponseDeparture(this.#res));
  }

  /** Starts a record for one message (or for the request as a whole), filled in by later stages. */
  open(method: string | null): RequestRecord {
    const record: RequestRecord = {
      route: this.route,
      requestId: this.requestId,
      at: this.startedAt,
      latencyMs: 0,
      keyId: this.caller?.key.id ?? this.refusedKey?.keyId ?? null,
      keyHashPrefix: this.refusedKey?.hashPrefix ?? null,
      userId: this.caller?.user.id ?? null,
      method,
      server: null,
      tool: null,
      arguments: undefined,
      outcome: 'ok',
      error: null,
      reason: null,
      credentialIdentity: null,
      usage: null,
      // The optional members too, so every record has one shape from the start: stages and sinks then see
      // one hidden class rather than one per set of members added later (megamorphic property access).
      upstreamStatus: undefined,
      result: undefined,
      guardrail: undefined,
      traceId: undefined,
      trace: undefined,
      upstreamSpanId: undefined,
      stages: undefined,
    };
    if (this.trace) {
      record.traceId = this.trace.traceId;
      record.trace = this.trace;
    }
    this.records.push(record);
    return record;
  }

  /** Records a refusal of the request as a whole (before or instead of any message). */
  refuse(error: GatewayError, outcome: RecordOutcome = 'refused'): void {
    const declared = this.declared;
    const record = this.open(declared?.method ?? null);
    if (declared) {
      record.server = declared.server;
      record.tool = declared.tool;
    }
    record.outcome = outcome;
    record.error = error.code;
    record.reason = error.reason ?? null;
  }
}
