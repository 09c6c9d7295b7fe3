/**
 * `/mcp/{server}`: one upstream MCP server behind the pipeline (`pipeline/pipeline.ts`: origin → key →
 * parse → authorize → limits → credentials → forward → respond → record), its names unprefixed,
 * everything it offers passed through (issue 9 item 1; SPEC §4). For a Streamable HTTP upstream the bytes
 * go through undici (`upstream-forward.ts`) with the gateway's header allowlists and the credentials
 * stage's headers (`headers.ts`); the gateway reads a POST body only to decide, and answers itself only
 * where it must. The route's stages:
 *
 *   parse      method (POST, GET, DELETE) → server granted to the key and usable on this node (404 alike for
 *              "no such server" and "not yours") → the sealed session id, if any, opened (a refusal is 404
 *              "session not found"; GET and DELETE need one) → POST: bounded body, JSON, each message's kind.
 *   authorize  a `tools/call` of a tool the key may not call is a JSON-RPC error (-32003, `tool_blocked`)
 *              and never reaches the upstream; an allowed one is forwarded re-serialized, so the upstream
 *              reads the very name that was checked (no duplicate-key JSON tricks).
 *   forward    (inside `stages.call`, after limits and credentials) the request upstream; the answer is the
 *              upstream's status, allowlisted headers and body as it streams, with its session id sealed; a
 *              `tools/list` answer is filtered (JSON or SSE) when the key's grant is not every tool; an
 *              upstream 401/403/3xx (its credentials, its redirects) becomes a 502 of ours; every body and
 *              relayed header value loses the call's secrets on the way (`echo-scrub.ts`).
 *
 * Server-to-client requests and the client's answers (POSTed back on the session), GET streams with
 * `Last-Event-ID`, DELETE, progress, logging, cancellation and 2026-07-28 requests are MCP traffic like any
 * other here: they pass through on the upstream session the sealed id names, whichever node serves them,
 * with the text a client shows a person (an elicitation's message and form, progress and log messages)
 * passed through the rule of the upstream's lists (`tools-list-filter.ts` `displayRewrite`).
 * Stdio and legacy SSE upstreams have no HTTP endpoint to proxy to: `pooled.ts` answers for them.
 *
 * It sends nothing itself: answers are values (`http/respond.ts` sends them), records go through the context.
 */
import { PassThrough, pipeline, type Readable } from 'node:stream';
import type { JSONRPCRequest, Tool } from '@modelcontextprotocol/sdk/types.js';
import type { ResolvedServer, Runtime, ToolGrant } from '../config/runtime.js';
import { GatewayError, HttpMessage, RpcCode, RpcMessage, ToolFailure, rpcError, rpcErrorOf, rpcGatewayError, type JsonRpcId } from '../errors.js';
import { credentialRefusalReply, declaresUrlElicitation } from '../credentials/auth-required.js';
import type { ContentGuard } from '../guardrail/policy.js';
import { readJsonRpcBody } from '../pipeline/json-body.js';
import { errorAnswer, jsonAnswer, type Answer } from '../http/respond.js';
import type { Logger } from '../log.js';
import type { Caller, RequestContext, RequestRecord } from '../pipeline/context.js';
import { SHARED_IDENTITY, type UpstreamCall } from '../pipeline/credentials.js';
import { MAX_JSON_DEPTH, exceedsDepth } from '../pipeline/json-depth.js';
import type { CallStages, Forwarded, Route } from '../pipeline/pipeline.js';
import { toolCallRefusal } from '../policy/tool-filter.js';
import { hasParamHeaders, headerMismatch, paramBindings, paramHeaderMismatch } from '../mcp/method-headers.js';
import { SERVER_NAME_PATTERN } from '../snapshot/schema.js';
import { escapedUnshowable, LIST_FIELDS, type ListField } from '../snapshot/tool-names.js';
import { UpstreamFailure, callSecrets, describeError, transportFailure } from '../upstream/failures.js';
import { scrubHeaderValues, scrubbedBody, scrubbedStream } from './echo-scrub.js';
import { echoForms } from '../secrets/scrubber.js';
import type { UpstreamHealthTracker } from '../upstream/health.js';
import { clientResponseHeaders, upstreamRequestHeaders } from './headers.js';
import { CACHEABLE, EraProbe, isModernRequest, privateCacheScope } from './era.js';
import { UpstreamForwarder, scrubbedErrorBody, type UpstreamAnswer } from './upstream-forward.js';
import { openRouteSession, sealRouteSession, type ClientHello, type OpenedSession } from './session.js';
import { displayRewrittenJson, displayRewrittenJsonStream, logDropped, responseRewriter, rewriteJsonBody, withDisplayRewrite, withListFilter, withServerResultFilter, type ResponseRewrite } from './tools-list-filter.js';

export const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024;
/** A filtered tools/list answer read whole is bounded like any JSON answer the node buffers. */
const MAX_FILTERED_JSON_BYTES = 32 * 1024 * 1024;
export const SERVER_ROUTE_PREFIX = '/mcp/';

export interface ServerRouteOptions {
  logger: Logger;
  maxBodyBytes?: number;
  /** Answers for stdio and legacy SSE upstreams (they have no HTTP endpoint to proxy to). */
  pooled?: PooledForward;
  /**
   * Upstream health (the pool's tracker): Streamable HTTP upstreams reached directly by this route feed it
   * as tool calls through the pool do (an answer: reachable; 401/403 to the shared credential:
   * credentials_refused; no answer: unreachable or timeout). Pooled upstreams feed it in the pool.
   */
  health?: UpstreamHealthTracker;
  /**
   * A server's tool catalog as the call's credential sees it (the pool's `listTools`): where `Mcp-Param-*`
   * declarations are read. Without it no `Mcp-Param-*` header is forwarded.
   */
  catalog?: (server: ResolvedServer, call: UpstreamCall) => Promise<readonly Tool[]>;
  /**
   * The secrets guardrail (data-plane/guardrail): tool arguments are checked before they go upstream; a
   * tools/call answer is read (JSON, or its response event on SSE) and checked only where a policy applies.
   */
  guard?: ContentGuard;
}

/** What the parse stage established for one `/mcp/{server}` request. */
export interface ServerRequest {
  server: ResolvedServer;
  grant: ToolGrant;
  session: OpenedSession | null;
  /** The POST body as received, or null for GET and DELETE. */
  raw: Buffer | null;
  /** What each message of the body is (one entry for a single message, several for a batch). */
  messages: MessageCheck[];
  batch: boolean;
  /** A sessionless request on the 2026-07-28 wire (see `era.ts`). */
  modern: boolean;
}

/** Forwarding to an upstream reached through the pooled client (`pooled.ts`). */
export type PooledForward = (ctx: RequestContext, request: ServerRequest, call: UpstreamCall, record: RequestRecord) => Promise<Answer>;

export type ServerRoute = Route<ServerRequest> & { close(): void };

export type MessageCheck =
  /** A JSON-RPC request: its id, method, and for tools/call the tool name and arguments. */
  | { kind: 'request'; id: string | number; method: string; tool: string | null; arguments: unknown; hello: ClientHello | null; message: Record<string, unknown> }
  /** A notification (`method`, no id) or a response to a server-to-client request (no `method`). */
  | { kind: 'other'; method: string | null; message: Record<string, unknown> };

export function createServerRoute(options: ServerRouteOptions): ServerRoute {
  const { logger, health } = options;
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const forwarder = new UpstreamForwarder();
  const era = new EraProbe();

  /** 3. parse. */
  async function parse(ctx: RequestContext): Promise<ServerRequest | GatewayError> {
    const req = ctx.req;
    const caller = ctx.caller as Caller;
    const runtime = ctx.runtime;
    const method = req.method ?? 'GET';
    if (method !== 'POST' && method !== 'GET' && method !== 'DELETE') {
      return new GatewayError('method_not_allowed', { message: HttpMessage.serverRouteMethods(), headers: { allow: 'GET, POST, DELETE' } });
    }
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const name = (q === -1 ? url : url.slice(0, q)).slice(SERVER_ROUTE_PREFIX.length);
    const server = runtime && SERVER_NAME_PATTERN.test(name) ? runtime.servers.get(name) : undefined;
    const grant = server ? caller.key.tools.get(server.name) : undefined;
    // The same answer whether the server does not exist or this key may not use it (no enumeration).
    if (!runtime || !server || grant === undefined) return new GatewayError('not_found', { message: HttpMessage.noServerForKey(name), reason: server ? 'not_granted' : 'unknown_server' });
    if (server.unavailable !== null) return new GatewayError('upstream_unavailable', { message: server.unavailable });

    // Any node opens a sealed id; a refused one is "not found" to the client, which starts a new session.
    const presented = req.headers['mcp-session-id'];
    let session: OpenedSession | null = null;
    if (typeof presented === 'string') {
      session = openRouteSession(runtime, caller.key, server.name, presented, ctx.startedAt);
      if (!session.ok) {
        logger.info({ keyId: caller.key.id, server: server.name, reason: session.code }, 'sealed session id refused');
        return new GatewayError('session_not_found', { reason: session.code });
      }
    }
    if (method !== 'POST') {
      // GET (the standalone SSE stream) and DELETE (ending a session) act on an upstream session, and only
      // the sealed id binds one to this key. Without one they would reach the upstream on the server's
      // credential alone: a shared credential is every caller's, so a sessionless upstream's one standalone
      // stream (its unsolicited notifications and requests, which may stem from other callers' calls) would
      // go to whoever opened it first, and a DELETE would end whatever the upstream ties to that credential.
      // MCP defines DELETE only with a session id (2025-11-25 transports §session management), and lets a
      // server answer 405 to a GET it offers no stream for, which clients take as "no stream here" (the
      // 2026-07-28 wire has no sessions and no standalone stream). So refused alike for every upstream:
      // the route cannot know whether a sessionless upstream ties anything to the credential.
      const upstreamSession = session?.ok === true ? session.upstream : null;
      if (upstreamSession === null) {
        return method === 'GET'
          ? new GatewayError('method_not_allowed', { message: HttpMessage.streamNeedsSession(), headers: { allow: 'POST' }, reason: 'no_session' })
          : new GatewayError('invalid_request', { message: HttpMessage.deleteNeedsSession(), reason: 'no_session' });
      }
      return { server, grant, session, raw: null, messages: [], batch: false, modern: false };
    }

    const body = await readJsonRpcBody(req, maxBodyBytes);
    if (body instanceof GatewayError) return body;
    const json = body.json;
    // Nesting beyond any real message is refused before anything walks it (re-serializing, the guardrail).
    if (exceedsDepth(json, MAX_JSON_DEPTH + 1)) return new GatewayError('invalid_message', { message: RpcMessage.tooDeep(MAX_JSON_DEPTH), reason: 'too_deep' });
    const items = Array.isArray(json) ? json : [json];
    if (items.length === 0) return new GatewayError('invalid_message', { message: RpcMessage.emptyBatch() });
    const messages: MessageCheck[] = [];
    for (const item of items) {
      const check = classify(item);
      if (check === null) return new GatewayError('invalid_message', { message: RpcMessage.notAnObject() });
      if (typeof check === 'string') return new GatewayError('invalid_message', { message: check });
      messages.push(check);
    }
    // `Mcp-Method` / `Mcp-Name` go upstream as sent, and an intermediary there may route on them: they must
    // name the message that was authorized (a batch has no one message for them to name).
    const named = req.headers['mcp-method'] !== undefined || req.headers['mcp-name'] !== undefined;
    const mismatch = Array.isArray(json) ? (named ? new GatewayError('header_mismatch', { reason: 'batch' }) : null) : headerMismatch(req.headers, json);
    if (mismatch) return mismatch;
    const modern = session === null && !Array.isArray(json) && isModernRequest(req.headers, json);
    // The upstream gets the value that was checked, re-serialized, never the caller's bytes: a parser that
    // keeps the first of duplicate keys (`"method"` or `"name"` twice) would otherwise run another call.
    return { server, grant, session, raw: Buffer.from(JSON.stringify(json), 'utf8'), messages, batch: Array.isArray(json), modern };
  }

  /** 4 → (5, 6, 7 in `stages.call`): authorize, then forward once for the whole HTTP request. */
  async function serve(ctx: RequestContext, request: ServerRequest, stages: CallStages): Promise<Answer> {
    const { server, grant } = request;
    const caller = ctx.caller as Caller;
    const method = ctx.req.method ?? 'GET';
    const records = request.messages.length === 0 ? [ctx.open(method)] : request.messages.map((m) => ctx.open(m.method));
    let body = request.raw;
    let rewrite: ResponseRewrite | null = null;
    /** The guardrail redacted a message: the body is serialized again from `outgoing`. */
    let reserialize = false;
    const outgoing = request.messages.map((m) => m.message);

    // 4. authorize, per message.
    for (const [i, check] of request.messages.entries()) {
      const record = records[i] as RequestRecord;
      record.server = server.name;
      if (check.kind !== 'request') continue;
      if (check.method === 'tools/call') {
        record.tool = check.tool;
        record.arguments = check.arguments;
        if (check.tool === null) {
          record.outcome = 'invalid';
          record.error = 'invalid_message';
          return answerAlone(request, jsonAnswer(200, rpcError(check.id, RpcCode.InvalidParams, RpcMessage.invalidParams('tools/call'))));
        }
        const refusal = toolCallRefusal(grant, check.tool);
        if (refusal !== null) {
          logger.info({ keyId: caller.key.id, server: server.name, tool: escapedUnshowable(check.tool), reason: refusal }, 'tool call denied');
          record.outcome = 'denied';
          record.error = 'tool_blocked';
          // As `/mcp` records it: a name that breaks the tool-name rule is `invalid_tool_name`, whatever the grant.
          record.reason = refusal;
          return answerAlone(request, jsonAnswer(200, rpcGatewayError(check.id, 'tool_blocked', RpcMessage.toolBlocked(check.tool))));
        }
        const guard = options.guard;
        if (guard) {
          // The guardrail on the arguments: a redacted copy goes upstream, or the call is refused.
          const checked = guard.request(caller.key.id, server.name, check.arguments, 'arguments');
          if (checked.findings.length > 0) record.guardrail = checked.findings;
          if (checked.error) {
            record.outcome = 'denied';
            record.error = checked.error.code;
            record.reason = checked.error.reason ?? null;
            return answerAlone(request, jsonAnswer(200, rpcErrorOf(check.id, checked.error)));
          }
          if (checked.value !== check.arguments) {
            const params = isObject(check.message.params) ? check.message.params : {};
            outgoing[i] = { ...check.message, params: { ...params, arguments: checked.value } };
            record.arguments = checked.value;
            reserialize = true;
          }
          if (guard.active?.(caller.key.id, server.name) ?? true) {
            // A result the guardrail must read is read from a single answer; a batch's are not.
            if (request.batch) return answerAlone(request, jsonAnswer(400, rpcError(null, RpcCode.InvalidRequest, HttpMessage.batchNeedsGateway())));
            rewrite = guardResult(guard, caller.key.id, server.name, check.id, record);
          }
        }
      } else if (LIST_FIELDS.has(check.method)) {
        const field = LIST_FIELDS.get(check.method) as ListField;
        if (field === 'tools' && request.batch && grant !== '*') return answerAlone(request, jsonAnswer(400, rpcError(null, RpcCode.InvalidRequest, HttpMessage.batchNeedsGateway())));
        // Whatever the grant, a list passes the rule both planes apply (snapshot/tool-names.ts): entries
        // named with an ANSI escape or a bidi override left out, such characters in titles and descriptions
        // replaced, before a client shows them.
        const listed = check.method;
        rewrite = withListFilter(rewrite, check.id, field, grant, (dropped) => logDropped(logger, server.name, listed, dropped));
      } else if (check.method === 'initialize' || check.method === 'server/discover') {
        // The upstream's instructions and server info reach the client too: the same display-text rule.
        rewrite = withServerResultFilter(rewrite, check.id);
      }
    }
    if (reserialize) body = Buffer.from(JSON.stringify(request.batch ? outgoing : outgoing[0]));

    const first = request.messages[0];
    const primary = records[0] as RequestRecord;
    const target = { server, tool: first?.kind === 'request' ? first.tool : null, method: first?.method ?? method };
    const hello = first?.kind === 'request' ? first.hello : null;
    // A 2026-07-28 client in front of an upstream that only speaks 2025: bridged over the pool (era.ts).
    const bridge = server.connectionType === 'HTTP' && request.modern && options.pooled !== undefined && !(await era.speaksModern(server));
    const forwardOnce = (call: UpstreamCall): Promise<Forwarded<Answer>> =>
      (server.connectionType === 'HTTP' && !bridge) || !options.pooled
        ? forwardHttp(ctx, request, call, { body, rewrite, hello }, primary)
        : options.pooled(ctx, request, call, primary).then((answer) => ({ result: answer }));
    // Limits are per call: every request of a batch passes the limits stage (and is recorded with its own
    // tool), each inside the previous one's forward, and the batch goes upstream once, inside the last.
    // Any refusal refuses the whole batch before anything is sent.
    const admitted = request.batch ? request.messages.flatMap((m, i) => (m.kind === 'request' && i > 0 ? [i] : [])) : [];
    const admit = (k: number, call: UpstreamCall): Promise<Forwarded<Answer | GatewayError>> => {
      const i = admitted[k];
      if (i === undefined) return forwardOnce(call);
      const m = request.messages[i] as Extract<MessageCheck, { kind: 'request' }>;
      // `Promise.resolve`: a refusal of stages 5–6 comes back as the value itself, not a promise.
      return Promise.resolve(stages.call<Answer | GatewayError>(ctx, records[i] as RequestRecord, { server, tool: m.tool, method: m.method }, (next) => admit(k + 1, next))).then(
        (result) => ({ result }),
      );
    };
    const outcome = await stages.call<Answer | GatewayError>(ctx, primary, target, (call) => admit(0, call));
    const refusal = outcome instanceof GatewayError ? outcome : null;
    for (const record of records) {
      if (record.error !== null) continue; // refused by its own stage: its record says so
      if (refusal !== null) {
        // Another call of the batch was refused: none of it ran.
        record.outcome = 'denied';
        record.error = refusal.code;
        record.reason = 'batch_refused';
      } else if (record !== primary) record.outcome = primary.outcome;
      record.credentialIdentity ??= primary.credentialIdentity;
    }
    if (!(outcome instanceof GatewayError)) return outcome;
    // A limits or credentials refusal: per JSON-RPC request, as a JSON-RPC error (like /mcp); else {type, message}.
    if (first?.kind === 'request' && !request.batch) {
      if (first.method === 'tools/call') {
        // A per-user server without the caller's credential: the auth-required answer, URL elicitation for
        // a client that declared it (its capabilities are in the sealed session, or in the request's `_meta`).
        const capabilities = request.session?.ok ? request.session.claims.clientCapabilities : undefined;
        const reply = credentialRefusalReply(first.id, outcome, declaresUrlElicitation(first.message as unknown as JSONRPCRequest, capabilities));
        if (reply !== null) return jsonAnswer(200, reply);
      }
      return jsonAnswer(200, rpcErrorOf(first.id, outcome));
    }
    return errorAnswer(outcome);
  }

  /** 7. forward to a Streamable HTTP upstream; resolves with the answer once the upstream has answered. */
  function forwardHttp(
    ctx: RequestContext,
    request: ServerRequest,
    call: UpstreamCall,
    payload: { body: Buffer | null; rewrite: ResponseRewrite | null; hello: ClientHello | null },
    record: RequestRecord,
  ): Promise<Forwarded<Answer>> {
    const { server } = request;
    const target = server.url;
    if (!target) return Promise.resolve({ result: errorAnswer(new GatewayError('upstream_unavailable')) });
    const first = request.messages[0];
    // A request carrying `Mcp-Param-*` (rare: a scan of the header names, no allocation, decides) has them
    // checked against its tool's declarations first; the common request goes straight on.
    if (first?.kind === 'request' && hasParamHeaders(ctx.req.rawHeaders)) {
      return declaredParamHeaders(ctx, request, call, first).then((params) => {
        if (params instanceof GatewayError) {
          record.outcome = 'invalid';
          record.error = params.code;
          record.reason = params.reason ?? null;
          return { result: jsonAnswer(params.status, rpcErrorOf(first.id, params)) };
        }
        return sendUpstream(ctx, request, call, payload, record, params);
      });
    }
    return sendUpstream(ctx, request, call, payload, record, undefined);
  }

  /**
   * The `Mcp-Param-*` headers that may go upstream with a request: for a single tools/call, those its tool
   * declares (`x-mcp-header` in the catalog), each as sent once it matches the argument (a mismatch is the
   * 400 HeaderMismatch `/mcp` answers too); none for anything else, nor for a tool no catalog has. A
   * name the tool does not declare never goes: an intermediary upstream may route on it unchecked.
   */
  async function declaredParamHeaders(
    ctx: RequestContext,
    request: ServerRequest,
    call: UpstreamCall,
    message: Extract<MessageCheck, { kind: 'request' }>,
  ): Promise<Record<string, string> | undefined | GatewayError> {
    if (request.batch || message.method !== 'tools/call' || message.tool === null || !options.catalog) return undefined;
    let catalog: readonly Tool[];
    try {
      catalog = await options.catalog(request.server, call);
    } catch {
      catalog = [];
    }
    let tool = catalog.find((entry) => entry.name === message.tool);
    // A tool only the 2026-07-28 wire offers is not in the pool's 2025 catalog: asked on that wire.
    if (tool === undefined && request.modern) tool = (await era.modernTools(request.server, call.identity, call.headers)).find((entry) => entry.name === message.tool);
    const bindings = paramBindings(tool?.inputSchema);
    // The upstream requires what is missing on its own wire; the gateway checks only what was sent.
    const mismatch = paramHeaderMismatch(ctx.req.headers, bindings, message.arguments, false);
    if (mismatch) return mismatch;
    let out: Record<string, string> | undefined;
    for (const binding of bindings) {
      const value = ctx.req.headers[binding.header];
      if (typeof value === 'string') (out ??= {})[binding.header] = value;
    }
    return out;
  }

  function sendUpstream(
    ctx: RequestContext,
    request: ServerRequest,
    call: UpstreamCall,
    payload: { body: Buffer | null; rewrite: ResponseRewrite | null; hello: ClientHello | null },
    record: RequestRecord,
    paramHeaders: Readonly<Record<string, string>> | undefined,
  ): Promise<Forwarded<Answer>> {
    const { server } = request;
    const caller = ctx.caller as Caller;
    // forwardHttp checked it is set.
    const target = server.url as URL;
    const upstreamSession = request.session?.ok ? request.session.upstream : null;
    const method = ctx.req.method === 'GET' ? 'GET' : ctx.req.method === 'DELETE' ? 'DELETE' : 'POST';
    return forwarder
      .forward({
        method,
        target,
        headers: upstreamRequestHeaders(ctx.req.headers, call.headers, upstreamSession, payload.body === null ? null : payload.body.length, call.trace, paramHeaders),
        body: payload.body,
        signal: ctx.signal,
      })
      .then(
        (upstream) => {
          if (health) {
            const status = upstream.statusCode;
            // Only a refusal of the shared credential marks the server (the tracker tells identities apart).
            if (status === 401 || status === 403) health.failed(server, call.identity, new UpstreamFailure('credentials_refused', ToolFailure.credentialsRefused(server.name, status), status));
            else health.reachable(server.name);
          }
          const answer = answerFromUpstream(ctx, request, caller, call, upstream, payload, record);
          return answer instanceof Promise ? answer.then((result) => ({ result })) : { result: answer };
        },
        (error: unknown) => {
          if (ctx.signal.aborted) {
            // The caller left before the upstream answered: the upstream request was aborted with it.
            record.outcome = 'upstream_error';
            record.reason = 'caller_gone';
            return { result: errorAnswer(new GatewayError('upstream_error', { reason: 'caller_gone' })) };
          }
          const reason = describeError(error, server);
          logger.warn({ server: server.name, reason }, 'upstream request failed on /mcp/{server}');
          health?.failed(server, call.identity, transportFailure(server.name, reason));
          record.outcome = 'upstream_error';
          record.reason = reason;
          return { result: errorAnswer(new GatewayError('upstream_error', { message: HttpMessage.upstreamUnreachable(server.name, reason) })) };
        },
      );
  }

  function answerFromUpstream(
    ctx: RequestContext,
    request: ServerRequest,
    caller: Caller,
    call: UpstreamCall,
    upstream: UpstreamAnswer,
    payload: { rewrite: ResponseRewrite | null; hello: ClientHello | null },
    record: RequestRecord,
  ): Answer | Promise<Answer> {
    const { server } = request;
    const status = upstream.statusCode;
    record.upstreamStatus = status;
    if (status === 401 || status === 403 || (status >= 300 && status < 400)) {
      // The upstream refused the gateway's credentials, or redirects somewhere: neither is the caller's to
      // follow (a WWW-Authenticate would send an MCP client into the upstream's OAuth flow).
      upstream.body.resume();
      logger.warn({ server: server.name, status }, 'upstream refused a /mcp/{server} request');
      record.outcome = 'upstream_error';
      record.reason = `HTTP ${status}`;
      return errorAnswer(new GatewayError('upstream_error', { message: HttpMessage.upstreamRefused(server.name, status) }));
    }
    const success = status >= 200 && status < 300;
    const scope = success && answersOwnList(request, call) ? privateCacheScope : null;
    const rewrite = success ? composeRewrites(payload.rewrite, scope) : null;
    const filtering = rewrite !== null;
    const headers = clientResponseHeaders(upstream.headers, !filtering);
    const issued = upstream.headers['mcp-session-id'];
    if (typeof issued === 'string') {
      const sealed = sealRouteSession(ctx.runtime as Runtime, caller.key, server.name, issued, request.session, payload.hello, ctx.startedAt);
      if (sealed === null) {
        upstream.body.resume();
        record.outcome = 'upstream_error';
        record.reason = 'no_session_secret';
        return errorAnswer(new GatewayError('upstream_unavailable', { message: HttpMessage.noSessionSecret() }));
      }
      headers['mcp-session-id'] = sealed;
    }
    // What an upstream sends back may echo the credential the gateway injected (an error text that quotes
    // the request, a debugging tool): every body reaches the caller without it, whole or streamed, at any
    // length (echo-scrub.ts), and so do the relayed header values.
    const forms = echoForms(callSecrets(call));
    scrubHeaderValues(headers, forms);
    if (status >= 400) {
      record.outcome = 'upstream_error';
      record.reason = `HTTP ${status}`;
      return scrubbedErrorBody(upstream.body, forms).then((body): Answer => {
        const { 'content-length': _length, ...rest } = headers;
        return { kind: 'bytes', status, headers: rest, body };
      });
    }
    const type = headers['content-type'] ?? '';
    if (success && type.includes('text/event-stream')) {
      // Every stream (a POST's answer, the GET stream) carries what the upstream sends the client besides
      // its responses: elicitations, progress, log messages, whose display text passes the list rule
      // (`displayRewrite`); the request's own rewrites, if any, take its responses.
      delete headers['content-length'];
      return { kind: 'stream', status, headers, body: scrubbedStream(pipeline(upstream.body, responseRewriter(rewrite), () => undefined), forms) };
    }
    if (rewrite !== null && type.includes('application/json')) {
      delete headers['content-length'];
      return { kind: 'stream', status, headers, body: scrubbedStream(rewrittenJson(upstream.body, withDisplayRewrite(rewrite)), forms) };
    }
    if (type.includes('application/json') && Number(headers['content-length']) <= SMALL_ANSWER_BYTES) {
      // A small JSON answer of declared length (a tools/call result, the common case) is read whole and
      // sent in one write: piping a stream per request showed in the hot path's profile.
      return upstream.body.arrayBuffer().then(
        (bytes): Answer => {
          // A JSON body may hold requests and notifications beside the response (clients act on them).
          const raw = Buffer.from(bytes);
          const body = scrubbedBody(displayRewrittenJson(raw), forms);
          if (body === raw) return { kind: 'bytes', status, headers, body };
          const { 'content-length': _length, ...rest } = headers;
          return { kind: 'bytes', status, headers: rest, body };
        },
        (): Answer => {
          record.outcome = 'upstream_error';
          record.reason = 'upstream answer broke off';
          return errorAnswer(new GatewayError('upstream_error', { message: HttpMessage.upstreamUnreachable(server.name, 'the answer broke off') }));
        },
      );
    }
    if (success && type.includes('application/json')) {
      // JSON of unknown or larger length: held until it ends (up to a bound) for `displayRewrite`, as above.
      delete headers['content-length'];
      return { kind: 'stream', status, headers, body: scrubbedStream(pipeline(upstream.body, displayRewrittenJsonStream(), () => undefined), forms) };
    }
    // Anything else (other types) streams through the scrubber, which may change its length.
    if (forms.length === 0) return { kind: 'stream', status, headers, body: upstream.body };
    delete headers['content-length'];
    return { kind: 'stream', status, headers, body: scrubbedStream(upstream.body, forms) };
  }

  return {
    name: 'mcp_server',
    parse,
    serve,
    refusal(error) {
      // A body that is not JSON or not a message is a JSON-RPC error (id null), HTTP 400; every other
      // refusal is the table's `{type, message}` (a transport-level answer, as MCP clients expect).
      if (error.code === 'parse_error' || error.code === 'invalid_message' || error.code === 'header_mismatch') return jsonAnswer(error.status, rpcErrorOf(null, error));
      return errorAnswer(error);
    },
    close: () => {
      forwarder.close();
      era.close();
    },
  };
}

/**
 * Whether the request asks for a list (MCP 2026-07-28 results with caching hints, `era.ts` CACHEABLE) that
 * is this caller's own: the server's credential is the caller's (OAuth per user, per-user headers: another
 * user's list may differ), or, for tools/list, the key's grant filtered it. Such a list must not be cached
 * for anyone else, whatever `cacheScope` the upstream said.
 */
function answersOwnList(request: ServerRequest, call: UpstreamCall): boolean {
  const perCaller = call.identity !== SHARED_IDENTITY;
  for (const message of request.messages) {
    if (message.kind !== 'request') continue;
    if (message.method === 'tools/list' && request.grant !== '*') return true;
    if (perCaller && CACHEABLE.has(message.method)) return true;
  }
  return false;
}

/** `first`, then `second` over what `first` gave (null from both: unchanged); null when neither is given. */
function composeRewrites(first: ResponseRewrite | null, second: ResponseRewrite | null): ResponseRewrite | null {
  if (first === null || second === null) return first ?? second;
  return (message) => {
    const once = first(message);
    return second(once ?? message) ?? once;
  };
}

/** Upstream JSON answers up to this size (declared by Content-Length) are relayed whole rather than piped. */
const SMALL_ANSWER_BYTES = 256 * 1024;

/** A refusal of one message of a request that may be a batch: a batch is refused whole (see errors.ts). */
function answerAlone(request: ServerRequest, answer: Answer): Answer {
  return request.batch ? jsonAnswer(400, rpcError(null, RpcCode.InvalidRequest, HttpMessage.batchNeedsGateway())) : answer;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * What one JSON-RPC message is, as far as the gateway cares; null when it is not an object at all, a
 * refusal's text when it is a message the gateway will not forward. Anything with a `method` is either a
 * request with an MCP id (string or number) or a `notifications/…` notification: a JSON-RPC 2.0 server
 * runs a notification like any call and only skips the answer, and counts an id the gateway would not, so
 * a `tools/call` without a proper id would otherwise reach it unauthorized.
 */
function classify(message: unknown): MessageCheck | string | null {
  if (!isObject(message)) return null;
  if (message.method !== undefined && typeof message.method !== 'string') return RpcMessage.invalidRequest();
  const method = typeof message.method === 'string' ? message.method : null;
  // Re-serialised on the way up and down: an id beyond 2^53 (or fractional) would come back as another number.
  if (typeof message.id === 'number' && !Number.isSafeInteger(message.id)) return RpcMessage.idOutOfRange();
  const id = typeof message.id === 'string' || typeof message.id === 'number' ? message.id : null;
  if (method !== null && id === null) {
    if ('id' in message) return RpcMessage.invalidRequest();
    if (!method.startsWith('notifications/')) return RpcMessage.invalidNotification();
  }
  if (method === null || id === null) return { kind: 'other', method, message };
  const params = isObject(message.params) ? message.params : null;
  const tool = method === 'tools/call' && typeof params?.name === 'string' ? params.name : null;
  let hello: ClientHello | null = null;
  if (method === 'initialize') {
    hello = {
      capabilities: isObject(params?.capabilities) ? params.capabilities : {},
      protocolVersion: typeof params?.protocolVersion === 'string' ? params.protocolVersion.slice(0, 40) : '',
    };
  }
  return { kind: 'request', id, method, tool, arguments: method === 'tools/call' ? params?.arguments : undefined, hello, message };
}

/** The guardrail on a tools/call result: the redacted result, or the refusal in its place. */
function guardResult(guard: ContentGuard, keyId: string, server: string, id: JsonRpcId, record: RequestRecord): ResponseRewrite {
  return (message) => {
    if (!isObject(message) || message.id !== id || !isObject(message.result)) return null;
    const checked = guard.response(keyId, server, message.result, 'result');
    if (checked.findings.length > 0) record.guardrail = [...(record.guardrail ?? []), ...checked.findings];
    if (checked.error) {
      record.outcome = 'denied';
      record.error = checked.error.code;
      record.reason = checked.error.reason ?? null;
      return rpcErrorOf(id, checked.error);
    }
    return checked.value === message.result ? null : { ...message, result: checked.value };
  };
}

/** A JSON answer read whole (bounded) and rewritten, as a stream for the respond stage. */
function rewrittenJson(upstream: Readable, rewrite: ResponseRewrite): Readable {
  const chunks: Buffer[] = [];
  let size = 0;
  const out = new PassThrough();
  upstream.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size > MAX_FILTERED_JSON_BYTES) {
      upstream.destroy();
      out.destroy(new Error('upstream tools/list answer too large'));
      return;
    }
    chunks.push(chunk);
  });
  upstream.on('end', () => out.end(rewriteJsonBody(Buffer.concat(chunks).toString('utf8'), rewrite)));
  upstream.on('error', (error) => out.destroy(error));
  return out;
}
