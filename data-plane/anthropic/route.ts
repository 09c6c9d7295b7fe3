/**
 * `/anthropic/...`: the Anthropic Messages API passed through to the configured provider, behind the
 * pipeline (origin → key → parse → authorize → limits → credentials → forward → respond → record).
 *
 *   authenticate  `Authorization: Bearer <virtual key>` or `x-api-key: <virtual key>` (Anthropic clients
 *                 send either); expiry and revocation as on `/mcp`. The caller's key is never forwarded:
 *                 the upstream request carries only the provider's API key (`x-api-key`, injected on this
 *                 node by the credentials stage) and the Anthropic headers the provider allows.
 *   parse         path allowlist (messages, count_tokens, models), bounded body, `model` priced in the
 *                 provider's table (else `model_blocked`: an unpriced call could not be charged).
 *   limits        `Limiter.admit` before anything reaches the provider (rate, tokens per minute, budgets),
 *                 with an upper bound of the call's cost (prompt bytes and `max_tokens` at the model's
 *                 prices, `pricing.ts`) that is reserved on the budgets; settled with the priced usage when
 *                 the answer has ended (what was streamed, if it broke off; nothing, if none came).
 *   forward       undici (`proxy/upstream-forward.ts`, the forwarder `/mcp/{server}` uses: keep-alive per
 *                 origin, bounded connect, no idle timeout on a streamed answer); the answer streams to the
 *                 caller event by event as the provider sends it, while `UsageMeter` reads usage from the same
 *                 bytes. The caller going away aborts the provider request (`ctx.signal`, and the answer's
 *                 streams are chained so destroying the last one destroys the provider's body).
 *
 *   answer        the provider's status, an allowlist of its headers, and its body, each with the provider
 *                 key removed wherever it occurs (`SecretScrubber`, streaming: a provider or a proxy in its
 *                 place echoing the key never hands it to a caller).
 *                 A provider breaking off a streamed answer: the caller's stream ends with an SSE error
 *                 event (`sse-break.ts`), not a cut connection; what was seen is metered and recorded.
 *
 * Refusals are `{type, message}` (SPEC) with Anthropic's `error: {type, message}` beside it, so Anthropic
 * SDKs (Claude Code) show the message. It does not retry, cache, or otherwise rewrite bodies.
 */
import type { ResolvedProvider } from '../config/runtime.js';
import { GatewayError } from '../errors.js';
import { readBody } from '../snapshot/bounded-body.js';
import { errorAnswer, jsonAnswer, type Answer } from '../http/respond.js';
import type { Logger } from '../log.js';
import type { RequestContext, RequestRecord } from '../pipeline/context.js';
import type { UpstreamCall } from '../pipeline/credentials.js';
import type { Usage } from '../pipeline/limits.js';
import type { CallStages, Forwarded, Route } from '../pipeline/pipeline.js';
import { UpstreamForwarder, type UpstreamAnswer } from '../proxy/upstream-forward.js';
import { callSecrets } from '../upstream/failures.js';
import { costBoundNanos, costNanos, findPrice, tokenBound } from './pricing.js';
import { UsageMeter } from './usage-meter.js';
import { SseBreak } from './sse-break.js';
import { SecretScrubber, echoForms, scrubText } from '../secrets/scrubber.js';
import { Readable, type Transform } from 'node:stream';
import { guardLlmJson, SseSecretGuard } from '../guardrail/llm.js';
import type { ContentGuard } from '../guardrail/policy.js';
import type { GuardrailPolicy } from '../snapshot/schema.js';

export const ANTHROPIC_ROUTE_PREFIX = '/anthropic/';
const PROVIDER = 'anthropic';
const DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024;

/** What the gateway passes through: the calls Claude Code and the SDKs make. */
const ALLOWED: ReadonlyArray<{ method: string; path: RegExp; priced: boolean }> = [
  { method: 'POST', path: /^\/v1\/messages$/, priced: true },
  { method: 'POST', path: /^\/v1\/messages\/count_tokens$/, priced: false },
  // A model id, not a dot segment: `.` and `..` would be resolved in the provider URL (`/v1/models/..` is `/v1/`).
  { method: 'GET', path: /^\/v1\/models(\/(?!\.\.?$)[A-Za-z0-9._:-]+)?$/, priced: false },
];

/**
 * Provider response headers a caller may see (no cookies, no hop-by-hop, no provider internals). Not
 * `anthropic-organization-id`: it names the operator's provider account to every key holder, and no client
 * needs it (Claude Code reads the rate-limit headers, not it).
 */
const RESPONSE_HEADERS = ['content-type', 'request-id', 'retry-after'];
const RATE_HEADER_PREFIX = 'anthropic-ratelimit-';

/**
 * The shortest provider key removed from answers. A keyless proxy in the provider's place is often given a
 * placeholder key ("none", "dummy", "x"): removing that from answers would cut ordinary words out of every
 * one, and it guards nothing. Every real provider key is far longer.
 */
const MIN_SCRUBBED_SECRET = 8;
const answerSecretsCache = new WeakMap<readonly string[], readonly string[]>();

/**
 * What is removed from the provider's answers to `call`: its secrets of at least MIN_SCRUBBED_SECRET
 * characters, each also as a JSON string spells it (`\/` for `/`: a key with a slash echoed by a PHP-style
 * encoder), the same forms `/mcp/{server}` removes (`proxy/echo-scrub.ts`). Cached per list.
 */
function answerSecrets(call: UpstreamCall): readonly string[] {
  const all = callSecrets(call);
  let kept = answerSecretsCache.get(all);
  if (kept === undefined) {
    kept = echoForms(all.filter((s) => s.length >= MIN_SCRUBBED_SECRET));
    answerSecretsCache.set(all, kept);
  }
  return kept;
}

/**
 * The provider URL of a call: its path joined onto the base URL's path, the base's query kept (a provider
 * reached as `https://host/v1?api-key=…` takes its key there) and the caller's parameters after it, none
 * under a name the base sets (the caller neither replaces nor repeats the operator's), the base's fragment
 * dropped (nothing is sent in one). Joining the texts put the call's path inside the base's query or fragment.
 * The caller's parameters are kept as they were written, so are the base's.
 */
export function providerUrl(base: URL, upstreamPath: string): URL {
  const q = upstreamPath.indexOf('?');
  const path = q === -1 ? upstreamPath : upstreamPath.slice(0, q);
  const url = new URL(base.href);
  url.hash = '';
  url.pathname = url.pathname.replace(/\/+$/, '') + path;
  if (q !== -1) {
    const own = new Set(base.searchParams.keys());
    const added = upstreamPath
      .slice(q + 1)
      .split('&')
      .filter((pair) => pair !== '' && !own.has(new URLSearchParams(pair).keys().next().value ?? ''));
    const search = [base.search.slice(1), ...added].filter((part) => part !== '').join('&');
    url.search = search === '' ? '' : `?${search}`;
  }
  return url;
}

export interface AnthropicRequest {
  provider: ResolvedProvider;
  /** Upstream path and query, e.g. `/v1/messages?beta=true`. */
  upstreamPath: string;
  method: string;
  body: Buffer | null;
  /** The requested model (priced calls), for pricing when the answer does not name it. */
  model: string | null;
  priced: boolean;
  /** Priced calls: the most the call can cost, in nano-USD (reserved on the key's budgets at admission). */
  maxCostNanos?: number;
  /** The parsed request body (POST), for the guardrail and the audit trail. */
  json?: unknown;
}

export interface AnthropicRouteOptions {
  logger: Logger;
  maxBodyBytes?: number;
  /** The secrets guardrail on request and answer bodies (policy per key and provider name); none: off. */
  guard?: ContentGuard;
}

export type AnthropicRoute = Route<AnthropicRequest> & { close(): void };

function refusalBody(error: GatewayError): Record<string, unknown> {
  return { type: error.code, message: error.message, error: { type: error.code, message: error.message } };
}

function refusalAnswer(error: GatewayError): Answer {
  return jsonAnswer(error.status, refusalBody(error), error.headers === undefined ? undefined : { ...error.headers });
}

export function createAnthropicRoute(options: AnthropicRouteOptions): AnthropicRoute {
  const { logger, guard } = options;
  const maxBody = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const forwarder = new UpstreamForwarder();

  async function parse(ctx: RequestContext): Promise<AnthropicRequest | GatewayError> {
    const url = ctx.req.url ?? '/';
    const q = url.indexOf('?');
    const path = (q === -1 ? url : url.slice(0, q)).slice(ANTHROPIC_ROUTE_PREFIX.length - 1);
    const query = q === -1 ? '' : url.slice(q);
    const method = ctx.req.method ?? 'GET';
    const rule = ALLOWED.find((r) => r.method === method && r.path.test(path));
    if (!rule) {
      ctx.req.resume();
      return new GatewayError('not_found', { message: `no route for ${method} /anthropic${path.slice(0, 200)}` });
    }
    const provider = ctx.runtime?.providers.get(PROVIDER);
    if (!provider || provider.server === null) {
      ctx.req.resume();
      return new GatewayError('provider_unavailable', { message: provider?.unavailable ?? `no provider named "${PROVIDER}" is configured`, reason: 'no_provider' });
    }
    let body: Buffer | null = null;
    let parsedBody: unknown = undefined;
    let model: string | null = null;
    let maxCostNanos: number | undefined;
    if (method === 'POST') {
      const read = await readBody(ctx.req, maxBody);
      if (read.kind === 'too_large') return new GatewayError('payload_too_large');
      if (read.kind === 'aborted') return new GatewayError('invalid_request', { message: 'request body was cut off', reason: 'aborted' });
      body = Buffer.from(read.text, 'utf8');
      let parsed: unknown;
      try {
        parsed = JSON.parse(read.text);
        parsedBody = parsed;
      } catch {
        return new GatewayError('invalid_request', { message: 'request body is not valid JSON' });
      }
      const m = typeof parsed === 'object' && parsed !== null ? (parsed as { model?: unknown }).model : undefined;
      if (typeof m !== 'string' || m.length === 0) return new GatewayError('invalid_request', { message: 'request body needs a "model"' });
      model = m;
      if (rule.priced) {
        const price = findPrice(provider.prices, model);
        if (price === null) {
          return new GatewayError('model_blocked', { message: `model "${model.slice(0, 100)}" has no price configured for provider "${provider.name}", so calls to it cannot be charged` });
        }
        maxCostNanos = costBoundNanos(price, tokenBound(parsed, body.length));
      }
    }
    return { provider, upstreamPath: `${path}${query}`, method, body, model, priced: rule.priced, ...(maxCostNanos !== undefined ? { maxCostNanos } : {}), ...(body !== null ? { json: parsedBody } : {}) };
  }

  async function serve(ctx: RequestContext, parsedRequest: AnthropicRequest, stages: CallStages): Promise<Answer> {
    let request = parsedRequest;
    const record = ctx.open(`${request.method} ${request.upstreamPath.split('?')[0] ?? ''}`);
    const server = request.provider.server!;
    // The guardrail (policy per key and provider) on the request body; the audit trail keeps it (redacted) as arguments.
    const policy = guard ? guard.policy(ctx.caller?.key.id ?? null, request.provider.name) : 'off';
    if (request.json !== undefined) record.arguments = request.json;
    if (guard && policy !== 'off' && request.json !== undefined) {
      const checked = guardLlmJson(guard.scanner, policy, request.json, 'request');
      if (checked.findings.length > 0) record.guardrail = checked.findings;
      if (checked.error) {
        record.server = server.name;
        record.outcome = 'denied';
        record.error = checked.error.code;
        record.reason = checked.error.reason ?? null;
        return refusalAnswer(checked.error);
      }
      // The provider gets the value that was scanned, re-serialized, never the bytes as sent: a key given twice
      // ("messages" with a secret, then "messages" again) was scanned as the last one only, while the raw
      // bytes, the first one with its secret included, went to the provider.
      request = { ...request, body: Buffer.from(JSON.stringify(checked.json), 'utf8'), json: checked.json };
      if (checked.changed) record.arguments = checked.json;
    }
    responsePolicy.set(record, policy);
    const target = { server, tool: null, method: record.method ?? request.method, maxCostNanos: request.maxCostNanos };
    const outcome = await stages.call(ctx, record, target, (call) => forward(ctx, request, call, record));
    return outcome instanceof GatewayError ? refusalAnswer(outcome) : outcome;
  }

  function forward(ctx: RequestContext, request: AnthropicRequest, call: UpstreamCall, record: RequestRecord): Promise<Forwarded<Answer>> {
    const target = providerUrl(request.provider.baseUrl!, request.upstreamPath);
    // The caller's Accept comes with the allowlisted headers (call.headers), so it is held to the same rule.
    const headers: Record<string, string> = { accept: 'application/json', ...call.headers, ...call.trace };
    if (request.body !== null) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(request.body.length);
    }
    // The caller leaving at any point (before the answer, or mid-stream) is what the record says, unless it
    // already says why the call failed (the provider broke off, and the caller's stream ended for it); the
    // record stage runs on the same 'close', so this is set synchronously, not from the streams' errors.
    ctx.signal.addEventListener(
      'abort',
      () => {
        if (record.reason !== null) return;
        record.outcome = 'upstream_error';
        record.reason = 'caller_gone';
      },
      { once: true },
    );
    return forwarder
      .forward({ method: request.method === 'GET' ? 'GET' : 'POST', target, headers, body: request.body, signal: ctx.signal })
      .then(
        (upstream): Forwarded<Answer> | Promise<Forwarded<Answer>> => {
          const { answer, usage } = answerFromProvider(ctx, request, call, upstream, record);
          const forwarded = (a: Answer): Forwarded<Answer> => (usage ? { result: a, usage } : { result: a });
          return answer instanceof Promise ? answer.then(forwarded) : forwarded(answer);
        },
        (error: unknown): Forwarded<Answer> => {
          if (ctx.signal.aborted) {
            // The caller left before the provider answered: the provider request was aborted with it.
            return { result: errorAnswer(new GatewayError('provider_error', { reason: 'caller_gone' })) };
          }
          const reason = (error as { code?: unknown }).code;
          record.outcome = 'upstream_error';
          logger.warn({ provider: request.provider.name, err: error instanceof Error ? error.message : String(error) }, 'LLM provider request failed');
          record.reason = typeof reason === 'string' ? reason : 'network';
          return { result: refusalAnswer(new GatewayError('provider_error', { message: `the LLM provider "${request.provider.name}" could not be reached` })) };
        },
      );
  }

  /**
   * The provider's body through `stages` (scrubber, usage meter, guardrail), chained so that an error or an
   * early end anywhere destroys them all: the respond stage destroying the last one (the caller left) aborts
   * the provider request. The provider breaking off is recorded as it happens (the record goes out when the
   * caller's stream closes, which the break causes); a streamed (SSE) answer then ends in order instead,
   * through `sse`, which closes it with an error event (what was seen is metered, as on any end), and any
   * other reaches the caller as a broken stream.
   */
  function chain(ctx: RequestContext, record: RequestRecord, provider: string, body: Readable, stages: readonly Transform[], sse: SseBreak | null): Transform {
    const all = sse === null ? stages : [...stages, sse];
    const first = all[0]!;
    body.on('error', (error: NodeJS.ErrnoException) => {
      // An early end downstream is the caller leaving (recorded on abort, in `forward`).
      const callerGone = ctx.signal.aborted || error.code === 'ERR_STREAM_PREMATURE_CLOSE';
      if (!callerGone) {
        record.outcome = 'upstream_error';
        record.reason = 'answer_broken';
      }
      if (callerGone || sse === null) {
        first.destroy(error);
        return;
      }
      logger.warn({ provider, code: typeof error.code === 'string' ? error.code : null }, 'LLM provider broke off a streamed answer; the caller gets an error event');
      sse.breakOff(`the LLM provider "${provider}" broke off the answer`);
      body.unpipe(first);
      first.end();
    });
    // By hand rather than `stream.pipeline`, which costs an AbortController (and its DOMException) per answer.
    let from: Readable = body;
    for (const to of all) {
      const source = from;
      if (source !== body) source.on('error', (error) => to.destroy(error));
      to.once('close', () => {
        if (!source.readableEnded) source.destroy();
      });
      source.pipe(to);
      from = to;
    }
    // Until the respond stage listens (it destroys the caller's response), a break must not go unhandled.
    from.on('error', () => undefined);
    return all[all.length - 1]!;
  }

  /** The last stage of a streamed answer (`sse-break.ts`), or null for any other. */
  function sseBreakFor(status: number, headers: Record<string, string>): SseBreak | null {
    return status < 300 && (headers['content-type'] ?? '').toLowerCase().startsWith('text/event-stream') ? new SseBreak() : null;
  }

  function answerFromProvider(ctx: RequestContext, request: AnthropicRequest, call: UpstreamCall, upstream: UpstreamAnswer, record: RequestRecord): { answer: Answer | Promise<Answer>; usage?: Promise<Usage | null> } {
    const status = upstream.statusCode;
    record.upstreamStatus = status;
    // Everything the provider says passes through the call's secrets removed: headers here, every body
    // (answers and errors, streamed or whole) through a SecretScrubber first, so a provider or a proxy in its
    // place echoing the key the node injected never hands it to the caller.
    const secrets = answerSecrets(call);
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(upstream.headers)) {
      if (value === undefined) continue;
      if (RESPONSE_HEADERS.includes(name) || name.startsWith(RATE_HEADER_PREFIX)) headers[name] = scrubText(Array.isArray(value) ? value.join(', ') : value, secrets);
    }
    if (status >= 400) record.outcome = 'upstream_error';
    if (status === 401 || status === 403) {
      // The provider refused the gateway's own API key: the caller can do nothing about it, and must not be
      // sent looking for credentials of its own.
      upstream.body.resume();
      logger.warn({ provider: request.provider.name, status }, 'LLM provider refused the configured API key');
      record.reason = `HTTP ${status}`;
      return { answer: refusalAnswer(new GatewayError('provider_error', { message: `the LLM provider "${request.provider.name}" refused the gateway's API key (HTTP ${status}); tell your Gatehouse operator` })) };
    }
    if (status >= 300 && status < 400) {
      // A redirect is never followed (the API key would go wherever it points) nor relayed (its Location is not
      // among the headers a caller sees, so the caller got a bare 3xx it could not act on): the provider's base
      // URL is wrong, which only the operator can mend.
      upstream.body.resume();
      logger.warn({ provider: request.provider.name, status }, 'LLM provider answered with a redirect; check its base URL');
      record.reason = `HTTP ${status}`;
      return { answer: refusalAnswer(new GatewayError('provider_error', { message: `the LLM provider "${request.provider.name}" answered with a redirect (HTTP ${status}), which is not followed; tell your Gatehouse operator to check its base URL` })) };
    }
    const scrubber = new SecretScrubber(secrets);
    const policy = responsePolicy.get(record) ?? 'off';
    if (guard && policy !== 'off' && status < 300) return guardedAnswer(ctx, request, upstream, record, status, headers, policy, guard, scrubber);
    if (status >= 300 || !request.priced) {
      const body = chain(ctx, record, request.provider.name, upstream.body, [scrubber], sseBreakFor(status, headers));
      return { answer: { kind: 'stream', status, headers, body } };
    }
    const meter = usageMeter(request.provider.name, headers);
    const body = chain(ctx, record, request.provider.name, upstream.body, [scrubber, meter], sseBreakFor(status, headers));
    const usage = meteredUsage(request, meter);
    return { answer: { kind: 'stream', status, headers, body }, usage };
  }

  /** The usage meter of one answer; an SSE event too long to meter is logged (once an answer, no provider text). */
  function usageMeter(provider: string, headers: Record<string, string>): UsageMeter {
    return new UsageMeter(headers['content-type'] ?? '', {
      onOversizedEvent: () => logger.warn({ provider }, 'LLM provider streamed an event over 1 MiB; its usage is not metered'),
    });
  }

  function meteredUsage(request: AnthropicRequest, meter: UsageMeter): Promise<Usage | null> {
    const usage = meter.usage.then((u): Usage | null => {
      if (u === null) return null;
      const model = u.model ?? request.model ?? '';
      const price = findPrice(request.provider.prices, model) ?? findPrice(request.provider.prices, request.model ?? '');
      const nanos = price === null ? 0 : costNanos(price, u);
      return {
        model,
        costUsd: nanos / 1e9,
        inputTokens: u.inputTokens,
        outputTokens: u.outputTokens,
        cacheWriteTokens: u.cacheCreationTokens,
        cacheReadTokens: u.cacheReadTokens,
      };
    });
    // Its record goes out when the caller's stream closes (the pipeline's record stage): it must be priced by then.
    meter.endAfter(usage);
    return usage;
  }

  /** The guardrail's policy for each call's answer, decided with its request. */
  const responsePolicy = new WeakMap<RequestRecord, GuardrailPolicy>();

  /**
   * An answer under a redact/block policy: a stream goes through `SseSecretGuard` (after the usage meter,
   * which reads the provider's own bytes); a JSON answer is read whole, scanned, then sent redacted or refused.
   */
  function guardedAnswer(
    ctx: RequestContext,
    request: AnthropicRequest,
    upstream: UpstreamAnswer,
    record: RequestRecord,
    status: number,
    headers: Record<string, string>,
    policy: 'redact' | 'block',
    contentGuard: ContentGuard,
    scrubber: SecretScrubber,
  ): { answer: Answer | Promise<Answer>; usage?: Promise<Usage | null> } {
    const meter = usageMeter(request.provider.name, headers);
    const usage = request.priced ? meteredUsage(request, meter) : undefined;
    if ((headers['content-type'] ?? '').toLowerCase().startsWith('text/event-stream')) {
      const sse = new SseSecretGuard(contentGuard.scanner, policy);
      const body = chain(ctx, record, request.provider.name, upstream.body, [scrubber, meter, sse], sseBreakFor(status, headers));
      sse.once('end', () => {
        if (sse.findings.length > 0) record.guardrail = [...(record.guardrail ?? []), ...sse.findings];
      });
      return { answer: { kind: 'stream', status, headers, body }, ...(usage ? { usage } : {}) };
    }
    // Whole JSON: the answer (redacted, or a refusal with its own status) is decided once it is read.
    chain(ctx, record, request.provider.name, upstream.body, [scrubber, meter], null);
    const answer = new Promise<Answer>((resolve) => {
      const chunks: Buffer[] = [];
      meter.on('data', (c: Buffer) => chunks.push(c));
      meter.on('error', () => resolve(refusalAnswer(new GatewayError('provider_error', { reason: 'answer_broken' }))));
      meter.on('end', () => {
        const raw = Buffer.concat(chunks);
        let json: unknown;
        try {
          json = JSON.parse(raw.toString('utf8'));
        } catch {
          return resolve({ kind: 'stream', status, headers, body: Readable.from([raw]) });
        }
        const checked = guardLlmJson(contentGuard.scanner, policy, json, 'response');
        if (checked.findings.length > 0) record.guardrail = [...(record.guardrail ?? []), ...checked.findings];
        if (checked.error) {
          record.outcome = 'denied';
          record.error = checked.error.code;
          record.reason = checked.error.reason ?? null;
          return resolve(refusalAnswer(checked.error));
        }
        resolve(checked.changed ? jsonAnswer(status, checked.json, headers) : { kind: 'stream', status, headers, body: Readable.from([raw]) });
      });
    });
    return { answer, ...(usage ? { usage } : {}) };
  }

  return {
    name: 'anthropic',
    apiKeyHeader: true,
    parse,
    serve,
    refusal: refusalAnswer,
    close: () => forwarder.close(),
  };
}
