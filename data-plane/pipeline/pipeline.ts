/**
 * THE request pipeline of the data plane: every route (`/mcp`; `/mcp/{server}` and `/anthropic/...` as they
 * land) runs the same ordered stages, read top to bottom here (STYLE #1):
 *
 *   1. origin        browser Origin on the allowlist (MCP transports: servers MUST validate Origin)
 *   2. authenticate  virtual key → caller (and the Runtime the whole request is served from)
 *   3. parse         route: method, headers, bounded body, message shape
 *   4. authorize     route: which server/tool each message may reach (tool filter)
 *   5. limits        `Limiter.admit` (rate limits, budgets; `NO_LIMITS` until governance plugs one in)
 *   6. credentials   `CredentialSource.resolve` + allowlisted caller headers → one `UpstreamCall`
 *   7. forward       route: the upstream client, given the `UpstreamCall` explicitly; then `settle(usage)`
 *   8. respond       `http/respond.ts` sends the route's `Answer`
 *   9. record        every `RequestRecord` to every `RecordSink`, after the answer is sent (never blocks it)
 *
 * The stage contract: a stage returns either its value (continue) or a `GatewayError` from the one table in
 * `errors.ts` (stop). No stage writes to the response or builds a `{status, body}` by hand; the route turns
 * a refusal into its own wire shape once (`Route.refusal` for whole-request refusals, JSON-RPC errors per
 * message), and `http/respond.ts` sends it. Every refusal, including Origin and authentication, leaves a
 * record. Stages 1, 2, 3, 8, 9 run once per HTTP request; 4–7 once per message that goes upstream (a
 * JSON-RPC batch runs them per element), through `CallStages.call`.
 *
 * Hooks (interfaces beside this module): `Limiter` (limits.ts), `CredentialSource` (credentials.ts),
 * `RecordSink` (record.ts). It does not know MCP (mcp/ does) or own any upstream connection (upstream/ does).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { authenticate, repeatsAuthorization } from '../auth/authenticate.js';
import { GatewayError, HttpMessage } from '../errors.js';
import type { ResolvedServer, RuntimeHolder } from '../config/runtime.js';
import { errorAnswer, sendAnswer, type Answer } from '../http/respond.js';
import type { Logger } from '../log.js';
import { RequestContext, type Caller, type Departure, type RequestRecord, type RouteName } from './context.js';
import { upstreamCall, type CredentialSource, type Credentials, type UpstreamCall } from './credentials.js';
import type { Admission, LimitSubject, Limiter, Usage } from './limits.js';
import { deliverRecords, type RecordSink } from './record.js';
import { KeyStreams } from './key-streams.js';
import { newSpanId, newTrace, upstreamTraceHeaders, type TraceContext } from '../tracing/trace-context.js';

/** What a route supplies: its own parse, authorize/forward/answer (`serve`) and refusal shape. */
export interface Route<Parsed> {
  readonly name: RouteName;
  /** Also take the key from `x-api-key` when there is no Authorization (Anthropic clients send it). */
  readonly apiKeyHeader?: boolean;
  /** 3. parse. */
  parse(ctx: RequestContext): Parsed | GatewayError | Promise<Parsed | GatewayError>;
  /**
   * 4–7 per message (authorize here, then `stages.call`), returning the answer stage 8 sends: the answer
   * itself when every stage answered synchronously (a refusal, `ping`), else its promise. Must not throw
   * for bad input.
   */
  serve(ctx: RequestContext, parsed: Parsed, stages: CallStages): Answer | Promise<Answer>;
  /** How a refusal of the whole request looks on this route; default `{type, message}` with the table's status. */
  refusal?(error: GatewayError): Answer;
}

/** One upstream-bound message, once authorized. */
export interface CallTarget {
  readonly server: ResolvedServer;
  /** The upstream's own tool name, if the message names one. */
  readonly tool: string | null;
  /** JSON-RPC method (or HTTP method and path), for limits and records. */
  readonly method: string;
  /** The message's own trace context (`params._meta.traceparent`), which wins over the request's header. */
  readonly trace?: TraceContext | null;
  /** An upper bound of the call's cost in nano-USD, if the route knows one before it runs (`LimitSubject.maxCostNanos`). */
  readonly maxCostNanos?: number;
}

/**
 * What the forward stage returns: its result and, if it knows, what the call cost. A streamed answer (an
 * LLM's SSE) knows its usage only when the stream ends: it gives a promise, and the admission is settled
 * when it resolves (the answer is not held back for it).
 */
export interface Forwarded<T> {
  readonly result: T;
  readonly usage?: Usage | null | Promise<Usage | null>;
}

export interface CallStages {
  /**
   * Stages 5 → 6 → 7 for one authorized message: admit, resolve credentials into the `UpstreamCall`, run
   * `forward` with it, then settle. Returns the forward's result, or the refusal of stage 5 or 6 (also
   * written to `record`): the refusal itself when stages 5 and 6 answered synchronously (so a caller
   * `await`s it, or tests for a promise), else a promise. `forward` must not throw for upstream trouble (it
   * answers with a result saying so); if it throws anyway the admission is still settled and the error propagates.
   */
  call<T>(ctx: RequestContext, record: RequestRecord, target: CallTarget, forward: (call: UpstreamCall, departure: Departure) => Promise<Forwarded<T>>): GatewayError | Promise<T | GatewayError>;
}

export interface PipelineOptions {
  holder: RuntimeHolder;
  logger: Logger;
  /** Browser origins allowed (lower-cased compare); requests without `Origin` (CLI agents) always pass. */
  allowedOrigins?: readonly string[];
  limiter: Limiter;
  credentials: CredentialSource;
  sinks: readonly RecordSink[];
  /** Clock (epoch ms) for key expiry and record times; tests pass their own. */
  now?: () => number;
  /** Record when each of stages 5–7 ran (`record.stages`), for OpenTelemetry spans; off: no clock reads. */
  timeStages?: boolean;
}

export type RunRoute = <P>(route: Route<P>, req: IncomingMessage, res: ServerResponse) => void;

export function createPipeline(options: PipelineOptions): RunRoute {
  const { holder, logger, limiter, credentials, sinks } = options;
  const now = options.now ?? Date.now;
  const allowedOrigins = new Set((options.allowedOrigins ?? []).map((o) => o.toLowerCase()));
  // Streams of a key that is revoked, expires or loses the server are cut (key-streams.ts).
  const keyStreams = new KeyStreams(holder, now);

  const timed = options.timeStages === true;

  // Stages 5–7 without an async function per stage: when the hooks answer synchronously (an in-process
  // limiter, configured credentials) the call reaches the upstream in the turn it was authorized, and the
  // forward's promise is the one thing it waits on. Each `await` of a stage was a promise, a suspended
  // frame and a microtask turn more per tools/call.
  const stages: CallStages = {
    call(ctx, record, target, forward) {
      record.server = target.server.name;
      record.tool = target.tool;
      // 5. limits (stage times only when asked, for OpenTelemetry: otherwise no clock read)
      const mark = timed ? stageClock() : 0;
      const subject: LimitSubject = { route: ctx.route, caller: ctx.caller as Caller, method: target.method, server: target.server.name, tool: target.tool, maxCostNanos: target.maxCostNanos };
      const admitting = limiter.admit(subject);
      if (admitting instanceof Promise) return admitting.then((admission) => afterLimits(ctx, record, target, forward, admission, mark));
      return afterLimits(ctx, record, target, forward, admitting, mark);
    },
  };

  /** 6. credentials, once admitted. From here the admission is settled exactly once, whatever happens. */
  function afterLimits<T>(
    ctx: RequestContext,
    record: RequestRecord,
    target: CallTarget,
    forward: (call: UpstreamCall, departure: Departure) => Promise<Forwarded<T>>,
    admission: Admission | GatewayError,
    mark: number,
  ): GatewayError | Promise<T | GatewayError> {
    if (timed) mark = timeStage(record, 'limits', mark);
    if (admission instanceof GatewayError) return deny(record, admission);
    let resolving: ReturnType<CredentialSource['resolve']>;
    try {
      resolving = credentials.resolve(target.server, ctx.caller as Caller, ctx.departure);
    } catch (error) {
      settle(admission, null);
      throw error;
    }
    if (!(resolving instanceof Promise)) return afterCredentials(ctx, record, target, forward, admission, resolving, mark);
    return resolving.then(
      (resolved) => afterCredentials(ctx, record, target, forward, admission, resolved, mark),
      (error: unknown) => {
        settle(admission, null);
        throw error;
      },
    );
  }

  /** 7. forward with the one `UpstreamCall`, then settle with what it cost. */
  function afterCredentials<T>(
    ctx: RequestContext,
    record: RequestRecord,
    target: CallTarget,
    forward: (call: UpstreamCall, departure: Departure) => Promise<Forwarded<T>>,
    admission: Admission,
    resolved: Credentials | GatewayError,
    mark: number,
  ): GatewayError | Promise<T | GatewayError> {
    if (timed) mark = timeStage(record, 'credentials', mark);
    if (resolved instanceof GatewayError) {
      settle(admission, null);
      return deny(record, resolved);
    }
    let forwarding: Promise<Forwarded<T>>;
    try {
      // W3C trace context goes upstream: the caller's trace (message `_meta`, else header, else a new one), this hop as parent.
      const trace = target.trace ?? (ctx.trace ??= newTrace());
      record.traceId = trace.traceId;
      record.trace = trace;
      record.upstreamSpanId = newSpanId();
      const token = (ctx.caller as Caller).token;
      const call = upstreamCall(target.server, resolved, ctx.req.headers, token, upstreamTraceHeaders(trace, record.upstreamSpanId, token));
      record.credentialIdentity = call.identity;
      forwarding = forward(call, ctx.departure);
    } catch (error) {
      settle(admission, null);
      throw error;
    }
    return forwarding.then(
      (forwarded) => {
        if (timed) timeStage(record, 'forward', mark);
        const usage = forwarded.usage;
        if (usage instanceof Promise) settleLater(record, admission, usage);
        else {
          record.usage = usage ?? null;
          settle(admission, record.usage);
        }
        return forwarded.result;
      },
      (error: unknown) => {
        settle(admission, null);
        throw error;
      },
    );
  }

  /** A streamed answer knows its usage when it ends: the admission is settled then (the answer is not held back). */
  function settleLater(record: RequestRecord, admission: Admission, usage: Promise<Usage | null>): void {
    usage.then(
      (u) => {
        record.usage = u;
        settle(admission, u);
      },
      (error: unknown) => {
        logger.error({ err: error }, 'usage of a streamed answer failed');
        settle(admission, null);
      },
    );
  }

  function settle(admission: { settle(usage: Usage | null): void }, usage: Usage | null): void {
    try {
      admission.settle(usage);
    } catch (error) {
      logger.error({ err: error }, 'limiter settle threw');
    }
  }

  /** 8 + 9: send, then record. */
  function finish(ctx: RequestContext, res: ServerResponse, answer: Answer): void {
    sendAnswer(res, answer);
    const latencyMs = performance.now() - ctx.startedTick;
    for (const record of ctx.records) if (record.latencyMs === 0) record.latencyMs = latencyMs;
    if (answer.kind === 'stream') keyStreams.track(ctx, res, ctx.route === 'mcp_server' ? (ctx.records[0]?.server ?? null) : null);
    if (sinks.length === 0) return;
    // A streamed answer's usage (and guardrail findings) are known only when it has ended: record then.
    if (answer.kind === 'stream') res.once('close', () => deliverRecords(sinks, ctx.records, logger));
    else deliverRecords(sinks, ctx.records, logger);
  }

  function refuse<P>(route: Route<P>, ctx: RequestContext, res: ServerResponse, error: GatewayError): void {
    ctx.refuse(error, error.code === 'parse_error' || error.code === 'invalid_message' || error.code === 'header_mismatch' ? 'invalid' : 'refused');
    finish(ctx, res, route.refusal ? route.refusal(error) : errorAnswer(error));
  }

  return function run<P>(route: Route<P>, req: IncomingMessage, res: ServerResponse): void {
    const ctx = new RequestContext(route.name, req, res, now());

    // 1. origin
    const origin = req.headers.origin;
    if (origin !== undefined && !allowedOrigins.has(origin.toLowerCase())) {
      refuse(route, ctx, res, new GatewayError('origin_not_allowed'));
      return;
    }

    // 2. authenticate (a node without a configuration cannot authenticate anyone)
    const runtime = holder.current;
    if (!runtime) {
      refuse(route, ctx, res, new GatewayError('not_ready'));
      return;
    }
    ctx.runtime = runtime;
    if (repeatsAuthorization(req.rawHeaders)) {
      refuse(route, ctx, res, new GatewayError('invalid_request', { message: HttpMessage.repeatedAuthorization(), reason: 'repeated_authorization' }));
      return;
    }
    const apiKey = route.apiKeyHeader === true && req.headers.authorization === undefined ? req.headers['x-api-key'] : undefined;
    const auth = authenticate(runtime, typeof apiKey === 'string' ? `Bearer ${apiKey}` : req.headers.authorization, ctx.startedAt);
    if (!auth.ok) {
      // Twelve base64url characters (72 bits) of the hash tell refused keys apart in the audit trail without being the key.
      ctx.refusedKey = { keyId: auth.keyId ?? null, hashPrefix: auth.keyHash?.slice(0, 12) ?? null };
      refuse(route, ctx, res, new GatewayError(auth.code));
      return;
    }
    ctx.caller = { key: auth.key, user: auth.user, token: auth.token };

    // 3. parse → 4–7 (route, per message) → 8 respond → 9 record
    let parsed: P | GatewayError | Promise<P | GatewayError>;
    try {
      parsed = route.parse(ctx);
    } catch (error) {
      logger.error({ err: error, route: route.name }, 'parse stage threw');
      refuse(route, ctx, res, new GatewayError('internal_error'));
      return;
    }
    if (parsed instanceof Promise) {
      parsed.then(
        (value) => serve(route, ctx, res, value),
        (error: unknown) => {
          logger.error({ err: error, route: route.name }, 'parse stage failed');
          refuse(route, ctx, res, new GatewayError('internal_error'));
        },
      );
    } else serve(route, ctx, res, parsed);
  };

  /**
   * 4–7 (route, per message) → 8 respond → 9 record. A function of the pipeline rather than a closure per
   * request: under tsx every named closure is also renamed with `Object.defineProperty` when it is created,
   * which showed in the hot path's profile.
   */
  function serve<P>(route: Route<P>, ctx: RequestContext, res: ServerResponse, parsed: P | GatewayError): void {
    if (parsed instanceof GatewayError) {
      refuse(route, ctx, res, parsed);
      return;
    }
    let served: Answer | Promise<Answer>;
    try {
      served = route.serve(ctx, parsed, stages);
    } catch (error) {
      routeFailed(route, ctx, res, error);
      return;
    }
    if (!(served instanceof Promise)) finish(ctx, res, served);
    else
      served.then(
        (answer) => finish(ctx, res, answer),
        (error: unknown) => routeFailed(route, ctx, res, error),
      );
  }

  function routeFailed<P>(route: Route<P>, ctx: RequestContext, res: ServerResponse, error: unknown): void {
    logger.error({ err: error, route: route.name, keyId: ctx.caller?.key.id }, 'route failed');
    if (res.headersSent) res.destroy();
    else refuse(route, ctx, res, new GatewayError('internal_error'));
  }
}

/** Epoch ms with sub-millisecond precision, for stage times. */
function stageClock(): number {
  return performance.timeOrigin + performance.now();
}

/** Records that stage `name` ran from `start` until now; returns now (the next stage's start). */
function timeStage(record: RequestRecord, name: string, start: number): number {
  const end = stageClock();
  (record.stages ??= []).push({ name, start, end });
  return end;
}

function deny(record: RequestRecord, error: GatewayError): GatewayError {
  record.outcome = 'denied';
  record.error = error.code;
  record.reason = error.reason ?? null;
  return error;
}

