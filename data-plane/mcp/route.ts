/**
 * `/mcp`: one aggregated MCP server over Streamable HTTP: the route's stages of the pipeline
 * (`pipeline/pipeline.ts`): parse (method, protocol version header, bounded body, JSON, batch rules) and,
 * per JSON-RPC message, authorize (tool filter) → `stages.call` (limits → credentials → forward) → answer.
 *
 * SPEC §8: no SDK `Server`/`McpServer` per request (too slow) and none shared across requests (JSON-RPC ids
 * of different clients collide, GHSA-345p-7cg4-v4c7). Each POST is one isolated JSON-RPC exchange, checked
 * with the SDK's own zod schemas and answered with `application/json`. Stateless: no `Mcp-Session-Id`, no
 * server-initiated stream (GET → 405), so any node serves any request.
 *
 * JSON-RPC batches (an array body) are answered only for clients on a protocol version that has them:
 * MCP 2025-03-26 (basic §JSON-RPC Batching) says implementations MUST support receiving batches, and this
 * endpoint negotiates 2025-03-26 when a client asks for it; 2025-06-18 removed batching (transports §Sending
 * Messages: the body MUST be a single message). A stateless POST carries its version only in the
 * `MCP-Protocol-Version` header, which clients on 2025-06-18 or later MUST send after `initialize`, so a
 * batch is accepted when that header is absent or names an older version. Its elements are dispatched
 * concurrently, each exactly as if it had been POSTed alone, and answered as one JSON array.
 *
 * A denied tool call is answered as a JSON-RPC error (code -32003, `data.type = "tool_blocked"`), not an
 * HTTP 403: MCP clients surface JSON-RPC errors per call, while an HTTP error fails the whole transport.
 * The same holds for a limits or credentials refusal (`rpcErrorOf`). Upstream trouble (timeout,
 * unreachable, unavailable on this node) is a tool result with `isError: true`.
 *
 * It sends nothing itself (answers are values, `http/respond.ts` sends them) and records through the
 * per-request context.
 */
import {
  CallToolRequestSchema,
  InitializeRequestSchema,
  JSONRPCNotificationSchema,
  LATEST_PROTOCOL_VERSION,
  ListToolsRequestSchema,
  SUPPORTED_PROTOCOL_VERSIONS,
  type InitializeResult,
  type JSONRPCRequest,
  type ListToolsResult,
  type Tool,
} from '@modelcontextprotocol/sdk/types.js';
import {
  GatewayError,
  HttpMessage,
  RpcCode,
  RpcMessage,
  rpcError,
  rpcErrorOf,
  rpcGatewayError,
  type JsonRpcId,
} from '../errors.js';
import { credentialRefusalReply, declaresUrlElicitation, speaksMrtr } from '../credentials/auth-required.js';
import { CONNECT_TOOL, alreadyConnected, connectTool, isPerUserServer } from '../credentials/connect-tool.js';
import { jsonRpcBody, type JsonRpcBody } from '../pipeline/json-body.js';
import { readBody } from '../snapshot/bounded-body.js';
import { ACCEPTED, errorAnswer, jsonAnswer, type Answer } from '../http/respond.js';
import type { Logger } from '../log.js';
import type { Caller, RequestContext, RequestRecord } from '../pipeline/context.js';
import type { CallStages, Route } from '../pipeline/pipeline.js';
import { MAX_JSON_DEPTH, exceedsDepth } from '../pipeline/json-depth.js';
import { MODERN_VERSION, isModernRequest, modernize } from '../proxy/era.js';
import { logDropped } from '../proxy/tools-list-filter.js';
import { upstreamCall, type CredentialSource } from '../pipeline/credentials.js';
import { credentialIsConfiguredHeaders, type ResolvedServer, type Runtime } from '../config/runtime.js';
import { aggregatedToolName, checkToolCall, filterTools, parseToolName } from '../policy/tool-filter.js';
import { escapedUnshowable, servableServerMessage, servableTools } from '../snapshot/tool-names.js';
import type { UpstreamPool } from '../upstream/pool.js';
import type { CallOutcome } from '../upstream/failures.js';
import { AGGREGATED_METHODS, createAggregate } from '../aggregate/resources-prompts.js';
import { acceptsEventStream, relayDuringCall, type Notify } from '../aggregate/call-stream.js';
import type { ContentGuard } from '../guardrail/policy.js';
import { traceFromMeta } from '../tracing/trace-context.js';
import { declaredBy, hasParamHeaders, headerMismatch, paramBindings, paramHeaderMismatch, refusedByHeaders } from './method-headers.js';

export const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024;

/** The most messages one batch may hold (the SDK's own server transport uses the same bound). */
export const MAX_BATCH_MESSAGES = 100;

/** The first protocol version without JSON-RPC batching (MCP 2025-06-18 changelog). */
const FIRST_VERSION_WITHOUT_BATCHES = '2025-06-18';

export interface McpRouteOptions {
  pool: UpstreamPool;
  logger: Logger;
  /** `serverInfo.version` in `initialize`. */
  version?: string;
  maxBodyBytes?: number;
  /** The secrets guardrail on tool arguments and results (data-plane/guardrail); none: content passes as is. */
  guard?: ContentGuard;
  /** Lists OAuth and per-user servers' tools with the caller's credential (the pipeline's source). */
  credentials?: CredentialSource;
}

/** What the parse stage hands on: one message, or a batch already checked against the batch rules. */
export type McpMessages = { batch: false; message: unknown; /** On the 2026-07-28 wire (era.ts). */ modern: boolean } | { batch: true; messages: unknown[] };

type Reply = { status: number; body: unknown };
const NO_REPLY: Reply = { status: 202, body: null };

export function createMcpRoute(options: McpRouteOptions): Route<McpMessages> {
  const { pool, logger, guard, credentials } = options;
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const serverInfo = { name: 'gatehouse', version: options.version ?? '0.1.0' };
  // Resources, templates, prompts and completions of every allowed server (aggregate/resources-prompts.ts).
  const aggregate = createAggregate({ pool, logger, ...(credentials ? { credentials } : {}) });
  /** Catalog array → its prefixed copies, so tools/list does not rebuild tool objects per request. */
  const prefixed = new WeakMap<readonly Tool[], { all: Tool[]; byName: Map<string, Tool> }>();

  const prefixTools = (server: string, tools: readonly Tool[]): { all: Tool[]; byName: Map<string, Tool> } => {
    let out = prefixed.get(tools);
    if (!out) {
      const byName = new Map<string, Tool>();
      // The tool-name rule both planes apply (snapshot/tool-names.ts), once per catalog array: a tool whose
      // name has a control or format character (an ANSI escape, a bidi override) is never listed, and a
      // description's such characters show as U+FFFD. Logged escaped, once per catalog the pool holds.
      const servable = servableTools(tools);
      logDropped(logger, server, 'tools/list', servable.dropped);
      for (const tool of servable.tools) {
        // `execution` (task support) is dropped: this endpoint does not run task-augmented calls.
        const { execution: _execution, ...rest } = tool;
        byName.set(tool.name, { ...rest, name: aggregatedToolName(server, tool.name) });
      }
      out = { all: [...byName.values()], byName };
      prefixed.set(tools, out);
    }
    return out;
  };

  /**
   * 3. parse: method, protocol version header (synchronously, before the body), then the bounded body, JSON
   * and batch rules in one continuation of the body's read (no promise per helper).
   */
  function parse(ctx: RequestContext): GatewayError | Promise<McpMessages | GatewayError> {
    const req = ctx.req;
    // Stateless JSON responses only, so no GET stream and no session to DELETE.
    if (req.method !== 'POST') return new GatewayError('method_not_allowed', { message: HttpMessage.onlyPost(), headers: { allow: 'POST' } });
    // MCP 2025-06-18 transports §protocol-version-header: reject unknown ones (every version the SDK knows,
    // and 2026-07-28, whose messages this route answers in that era's shape: see `modernize`).
    const version = req.headers['mcp-protocol-version'];
    if (typeof version === 'string' && version !== MODERN_VERSION && !SUPPORTED_PROTOCOL_VERSIONS.includes(version)) {
      return new GatewayError('invalid_request', { message: HttpMessage.unsupportedProtocolVersion(version), reason: 'protocol_version' });
    }
    // MCP 2026-07-28: `Mcp-Method` / `Mcp-Name` route (and refuse) before the body is read.
    const early = refusedByHeaders(req.headers, ctx.runtime, ctx.caller?.key ?? null);
    if (early) {
      ctx.declared = declaredBy(req.headers, undefined, ctx.runtime);
      return early;
    }
    return readBody(req, maxBodyBytes).then((read) => messagesOf(ctx, version, jsonRpcBody(read, maxBodyBytes)));
  }

  /** The rest of the parse stage, once the body is read: JSON-RPC message or batch, checked against the headers and batch rules. */
  function messagesOf(ctx: RequestContext, version: string | string[] | undefined, body: JsonRpcBody | GatewayError): McpMessages | GatewayError {
    if (body instanceof GatewayError) return body;
    const req = ctx.req;
    const json = body.json;
    if (!Array.isArray(json)) {
      const mismatch = headerMismatch(req.headers, json);
      if (mismatch === null) return { batch: false, message: json, modern: isModernRequest(req.headers, json) };
      // The body is what would have run: the record names it, not what the disagreeing headers said.
      ctx.declared = declaredBy({}, json, ctx.runtime);
      return mismatch;
    }
    // JSON-RPC 2.0 §6 and MCP 2025-03-26; see the module comment.
    if (typeof version === 'string' && version >= FIRST_VERSION_WITHOUT_BATCHES) return new GatewayError('invalid_message', { message: RpcMessage.batch() });
    if (json.length === 0) return new GatewayError('invalid_message', { message: RpcMessage.emptyBatch() });
    if (json.length > MAX_BATCH_MESSAGES) return new GatewayError('invalid_message', { message: RpcMessage.batchTooLarge(MAX_BATCH_MESSAGES) });
    // `initialize` MUST NOT be batched (2025-03-26 lifecycle §Initialization): refused whole.
    if (json.some((item) => isObject(item) && item.method === 'initialize')) return new GatewayError('invalid_message', { message: RpcMessage.initializeInBatch() });
    return { batch: true, messages: json };
  }

  /**
   * A server's catalog for this caller. Servers whose credential is per caller (OAuth, per-user) are listed
   * through the caller's own credential. A caller whose credential cannot be had sees the server's shared
   * catalog when there is one (a shared OAuth token: the same for every caller), and for a per-user server
   * only the connect tool when not connected, nothing (the server skipped) when the credential is unavailable:
   * never a catalog another user's credential listed (`UpstreamPool.sharedCatalog`).
   */
  async function catalogFor(ctx: RequestContext, caller: Caller, server: ResolvedServer): Promise<Tool[]> {
    if (!credentials || credentialIsConfiguredHeaders(server)) return pool.listTools(server);
    const resolved = await credentials.resolve(server, caller, ctx.departure);
    if (resolved instanceof GatewayError) {
      if (!isPerUserServer(server)) return pool.sharedCatalog(server) ?? [];
      // The connect tool only for a caller who is not connected (auth required). A credential that cannot be
      // had just now (control plane unreachable, the server's OAuth client broken) is not the caller's to fix
      // by connecting again: the server is skipped and named in the log and the record, like an unreachable
      // upstream, and its tools come back when the credential does.
      if (resolved.code === 'auth_required') return CONNECT_ONLY;
      throw new Error(`${resolved.code}: ${resolved.reason ?? 'unknown'}`);
    }
    return pool.listTools(server, upstreamCall(server, resolved, {}, caller.token));
  }

  /** A per-user server's catalog for a caller not connected yet: the connect tool. */
  const CONNECT_ONLY: Tool[] = [];

  async function listTools(ctx: RequestContext, caller: Caller, record: RequestRecord): Promise<ListToolsResult> {
    const runtime = ctx.runtime;
    if (!runtime) return { tools: [] };
    const skipped: string[] = [];
    const perServer = await Promise.all(
      [...caller.key.tools].map(async ([serverName, grant]): Promise<Tool[]> => {
        const server = runtime.servers.get(serverName);
        if (!server || server.unavailable !== null) return [];
        try {
          const catalog = await catalogFor(ctx, caller, server);
          // Shown whatever the key's tool filter (it only asks the caller to connect), if the key grants the server.
          if (catalog === CONNECT_ONLY) return [{ ...connectTool(serverName), name: aggregatedToolName(serverName, CONNECT_TOOL) }];
          const { all, byName } = prefixTools(serverName, catalog);
          if (grant === '*') return all;
          return filterTools(grant, catalog).map((tool) => byName.get(tool.name) ?? tool);
        } catch (error) {
          // One unreachable upstream must not hide every other server's tools.
          skipped.push(serverName);
          logger.warn({ server: serverName, keyId: caller.key.id, reason: error instanceof Error ? error.message : 'unknown' }, 'tools/list skipped an upstream');
          return [];
        }
      }),
    );
    if (skipped.length > 0) record.reason = `skipped: ${skipped.join(',')}`;
    return { tools: perServer.flat() };
  }

  /** The tools/call's `Mcp-Param-*` headers checked against the tool's `x-mcp-header` declarations in its catalog. */
  async function paramHeadersRefusal(ctx: RequestContext, caller: Caller, server: ResolvedServer, tool: string, args: unknown, modern: boolean): Promise<GatewayError | null> {
    let catalog: Tool[];
    try {
      catalog = await catalogFor(ctx, caller, server);
    } catch {
      // Without the catalog the declarations are unknown: the call goes on and meets the same upstream trouble.
      return null;
    }
    const entry = prefixTools(server.name, catalog).byName.get(tool);
    return paramHeaderMismatch(ctx.req.headers, paramBindings(entry?.inputSchema), args, modern);
  }

  /**
   * tools/call: parse (params) → 4. authorize → `stages.call` (5 → 6 → 7) → the reply. Synchronous up to the
   * upstream call: the call's one promise is the forward's, and its result is turned into the reply in one
   * continuation (`toolReply`). Rare paths that need I/O before the call (`Mcp-Param-*` headers against the
   * catalog) continue from their own promise.
   */
  function callTool(ctx: RequestContext, stages: CallStages, caller: Caller, record: RequestRecord, id: JsonRpcId, message: JSONRPCRequest, notify?: Notify): Reply | Promise<Reply> {
    const params = plainToolCallParams(message.params) ?? CallToolRequestSchema.safeParse(message).data?.params;
    if (params === undefined) {
      record.outcome = 'invalid';
      record.error = 'invalid_message';
      return ok(rpcError(id, RpcCode.InvalidParams, RpcMessage.invalidParams('tools/call')));
    }
    const { name, arguments: args } = params;
    record.arguments = args;
    // 4. authorize: checked again at call time (tools/list is advisory, this is the decision).
    const runtime = ctx.runtime;
    const connect = runtime ? connectToolCall(runtime, caller, name) : null;
    if (connect) return connectCall(ctx, stages, record, id, message, connect);
    const check = runtime ? checkToolCall(runtime, caller.key, name) : ({ ok: false, reason: 'unknown_server' } as const);
    if (!check.ok) {
      // The caller's name, escaped: it may hold control characters (the record's is escaped where it is stored).
      logger.info({ keyId: caller.key.id, tool: escapedUnshowable(name), reason: check.reason }, 'tool call denied');
      record.tool = name;
      record.outcome = 'denied';
      record.error = 'tool_blocked';
      record.reason = check.reason;
      return ok(rpcGatewayError(id, 'tool_blocked', RpcMessage.toolBlocked(escapedUnshowable(name))));
    }
    const { server, tool } = check;
    // MCP 2026-07-28 `Mcp-Param-*` headers against the arguments (method-headers.ts): only for a request on
    // that wire or carrying one, so the common call pays a header lookup and a scan of header names.
    const modern = ctx.req.headers['mcp-protocol-version'] === MODERN_VERSION;
    if (modern || hasParamHeaders(ctx.req.rawHeaders)) {
      return paramHeadersRefusal(ctx, caller, server, tool, args, modern).then((refused) => {
        if (!refused) return forwardToolCall(ctx, stages, caller, record, id, message, server, tool, args, notify);
        record.server = server.name;
        record.tool = tool;
        record.outcome = 'invalid';
        record.error = refused.code;
        record.reason = refused.reason ?? null;
        return { status: refused.status, body: rpcErrorOf(id, refused) };
      });
    }
    return forwardToolCall(ctx, stages, caller, record, id, message, server, tool, args, notify);
  }

  /** An authorized tools/call: the guardrail on its arguments, then 5 → 6 → 7, then the reply. */
  function forwardToolCall(
    ctx: RequestContext,
    stages: CallStages,
    caller: Caller,
    record: RequestRecord,
    id: JsonRpcId,
    message: JSONRPCRequest,
    server: ResolvedServer,
    tool: string,
    args: Record<string, unknown> | undefined,
    notify: Notify | undefined,
  ): Reply | Promise<Reply> {
    // The guardrail on the arguments (policy per key and server): redacted copy, or a refusal naming the kind.
    let params = message.params ?? {};
    if (guard) {
      const checked = guard.request(caller.key.id, server.name, args, 'arguments');
      if (checked.findings.length > 0) record.guardrail = checked.findings;
      if (checked.error) {
        record.server = server.name;
        record.tool = tool;
        record.outcome = 'denied';
        record.error = checked.error.code;
        record.reason = checked.error.reason ?? null;
        return ok(rpcErrorOf(id, checked.error));
      }
      if (checked.value !== args) {
        params = { ...params, arguments: checked.value as Record<string, unknown> };
        record.arguments = checked.value;
      }
    }
    // 5. limits → 6. credentials → 7. forward
    // The caller's params go upstream as sent (arguments, `_meta`), only the tool name rewritten.
    const outcome = stages.call(ctx, record, { server, tool, method: 'tools/call', trace: traceFromMeta(message.params) }, (call, departure) =>
      pool.callTool(call, tool, params, departure, notify).then(forwarded),
    );
    if (!(outcome instanceof Promise)) return toolReply(caller, record, id, message, server, outcome);
    return outcome.then((settled) => toolReply(caller, record, id, message, server, settled));
  }

  /** The reply to a tools/call from what stages 5–7 gave: a refusal, the upstream's error, or its result (after the guardrail). */
  function toolReply(caller: Caller, record: RequestRecord, id: JsonRpcId, message: JSONRPCRequest, server: ResolvedServer, outcome: CallOutcome | GatewayError): Reply {
    // A per-user server without the caller's credential: the auth-required answer (credentials/auth-required.ts).
    if (outcome instanceof GatewayError) return ok(credentialRefusalReply(id, outcome, declaresUrlElicitation(message), speaksMrtr(message)) ?? rpcErrorOf(id, outcome));
    if (outcome.kind !== 'refused' && outcome.upstreamStatus !== undefined) record.upstreamStatus = outcome.upstreamStatus;
    if (outcome.kind === 'refused') {
      // The upstream refused the credential and renewing it gave none (the user must connect again).
      record.outcome = 'denied';
      record.error = outcome.error.code;
      record.reason = outcome.error.reason ?? null;
      return ok(credentialRefusalReply(id, outcome.error, declaresUrlElicitation(message), speaksMrtr(message)) ?? rpcErrorOf(id, outcome.error));
    }
    if (outcome.kind === 'rpc_error') {
      record.outcome = 'upstream_rpc_error';
      // The upstream's message and any URL elicitations it asks for are shown to a person, by the rule of
      // every route (snapshot/tool-names.ts `servableServerMessage`).
      return ok(servableServerMessage(rpcError(id, outcome.code, outcome.message, outcome.data)));
    }
    let result = outcome.result;
    if (guard) {
      const checked = guard.response(caller.key.id, server.name, result, 'result');
      if (checked.findings.length > 0) record.guardrail = [...(record.guardrail ?? []), ...checked.findings];
      if (checked.error) {
        record.outcome = 'denied';
        record.error = checked.error.code;
        record.reason = checked.error.reason ?? null;
        return ok(rpcErrorOf(id, checked.error));
      }
      result = checked.value as typeof result;
    }
    record.result = result;
    record.outcome = result.isError ? 'tool_error' : 'ok';
    // A 2026-07-28 upstream may answer with the input it needs (`inputRequests`): display text, as on every route.
    return ok(servableServerMessage({ jsonrpc: '2.0' as const, id, result }));
  }

  /** `{server}-gatehouse_connect_account`: the credentials stage answers auth-required for a caller not connected; the upstream is never called. */
  async function connectCall(ctx: RequestContext, stages: CallStages, record: RequestRecord, id: JsonRpcId, message: JSONRPCRequest, connect: ResolvedServer): Promise<Reply> {
    const outcome = await stages.call(ctx, record, { server: connect, tool: CONNECT_TOOL, method: 'tools/call' }, () =>
      Promise.resolve({ result: { kind: 'result' as const, result: alreadyConnected(connect.name) } }),
    );
    if (outcome instanceof GatewayError) return ok(credentialRefusalReply(id, outcome, declaresUrlElicitation(message), speaksMrtr(message)) ?? rpcErrorOf(id, outcome));
    return ok({ jsonrpc: '2.0', id, result: outcome.result });
  }

  /** One message, answered as if it had been POSTed alone: the reply, or its promise when it waits on I/O. */
  function dispatch(ctx: RequestContext, stages: CallStages, json: unknown, notify?: Notify): Reply | Promise<Reply> {
    if (!isObject(json)) return { status: 400, body: rpcError(null, RpcCode.InvalidRequest, RpcMessage.notAnObject()) };

    if (!('method' in json)) {
      // A response to a server request: this endpoint never sends any, so there is nothing to match it to.
      return ('result' in json || 'error' in json) && 'id' in json ? NO_REPLY : { status: 400, body: rpcError(null, RpcCode.InvalidRequest, RpcMessage.notAMessage()) };
    }
    if (!('id' in json)) {
      const note = JSONRPCNotificationSchema.safeParse(json);
      // notifications/initialized, cancelled (we answer synchronously, nothing to cancel), etc.
      return note.success ? NO_REPLY : { status: 400, body: rpcError(null, RpcCode.InvalidRequest, RpcMessage.invalidNotification()) };
    }
    // The envelope (JSON-RPC 2.0 §4, as the SDK's strict JSONRPCRequestSchema has it) is checked by hand:
    // the method's own SDK schema below validates the message again, and a second zod pass per request
    // showed in the hot path's profile.
    if (!isRequestEnvelope(json)) {
      const message = typeof json.id === 'number' && !Number.isSafeInteger(json.id) ? RpcMessage.idOutOfRange() : RpcMessage.invalidRequest();
      return { status: 400, body: rpcError(idOf(json), RpcCode.InvalidRequest, message) };
    }
    const message = json;
    const id = message.id;
    const caller = ctx.caller as Caller;
    const record = ctx.open(message.method);
    // Parse stage, per message: nesting is bounded before anything walks the params (issue 5, hostile input).
    if (exceedsDepth(message.params)) {
      record.outcome = 'invalid';
      record.error = 'invalid_message';
      record.reason = 'too_deep';
      return ok(rpcError(id, RpcCode.InvalidParams, RpcMessage.tooDeep(MAX_JSON_DEPTH)));
    }

    switch (message.method) {
      case 'initialize': {
        const init = InitializeRequestSchema.safeParse(message);
        if (!init.success) return invalidParams(record, id, 'initialize');
        const requested = init.data.params.protocolVersion;
        const result: InitializeResult = {
          protocolVersion: SUPPORTED_PROTOCOL_VERSIONS.includes(requested) ? requested : LATEST_PROTOCOL_VERSION,
          capabilities: { tools: { listChanged: false }, ...aggregate.capabilities },
          serverInfo,
        };
        return ok({ jsonrpc: '2.0', id, result });
      }
      case 'ping':
        return ok({ jsonrpc: '2.0', id, result: {} });
      case 'server/discover':
        // MCP 2026-07-28 (server/discover, required of servers): the versions and capabilities of this
        // endpoint; `modernize` adds `resultType` and who answered. Answered to every client: it is harmless.
        return ok({ jsonrpc: '2.0', id, result: { supportedVersions: [MODERN_VERSION, ...SUPPORTED_PROTOCOL_VERSIONS], capabilities: { tools: { listChanged: false } } } });
      case 'tools/list': {
        if (!ListToolsRequestSchema.safeParse(message).success) return invalidParams(record, id, 'tools/list');
        // Every visible tool is returned in one page, so any cursor is ignored and none is sent.
        return listTools(ctx, caller, record).then((result) => ok({ jsonrpc: '2.0', id, result }));
      }
      case 'tools/call':
        return callTool(ctx, stages, caller, record, id, message, notify);
      default:
        if (AGGREGATED_METHODS.has(message.method)) {
          return aggregate.dispatch(ctx, stages, record, id, message.method, message.params as Record<string, unknown> | undefined);
        }
        record.outcome = 'invalid';
        record.error = 'not_found';
        return ok(rpcError(id, RpcCode.MethodNotFound, RpcMessage.methodNotFound(message.method)));
    }
  }

  /**
   * 4–7 per message, then the answer: for a single message the answer itself when it needed no I/O (a
   * refusal, `ping`), else its promise; a batch's elements run concurrently.
   */
  function serve(ctx: RequestContext, parsed: McpMessages, stages: CallStages): Answer | Promise<Answer> {
    if (!parsed.batch) {
      const message = parsed.message;
      // A tools/call's progress and log notifications reach a client that takes SSE (aggregate/call-stream.ts).
      if (isObject(message) && message.method === 'tools/call' && acceptsEventStream(ctx.req.headers.accept)) {
        // Shaped before the relay chooses JSON or the stream's final event, so both carry the same result.
        return relayDuringCall((notify) => shaped(parsed, dispatch(ctx, stages, message, notify)), replyAnswer, logger);
      }
      const reply = shaped(parsed, dispatch(ctx, stages, message));
      return reply instanceof Promise ? reply.then(toAnswer) : toAnswer(reply);
    }
    // JSON-RPC 2.0 §6: one response per request, in order, none for notifications and responses; a batch
    // with nothing to answer is 202 like a lone notification (MCP 2025-03-26 transports §Sending Messages).
    // A nested array is not a message (`dispatch` answers it so); batches do not nest.
    return Promise.all(parsed.messages.map((item) => dispatchIsolated(ctx, stages, item))).then((replies) => {
      const bodies = replies.filter((reply) => reply.body !== null).map((reply) => reply.body);
      return bodies.length === 0 ? ACCEPTED : jsonAnswer(200, bodies);
    });
  }

  /** A batch element: one that fails is answered as an internal error, the others still are. */
  function dispatchIsolated(ctx: RequestContext, stages: CallStages, item: unknown): Reply | Promise<Reply> {
    const failed = (error: unknown): Reply => {
      logger.error({ err: error, keyId: ctx.caller?.key.id }, '/mcp batch element failed');
      return { status: 500, body: rpcGatewayError(idOf(item), 'internal_error') };
    };
    try {
      const reply = dispatch(ctx, stages, item);
      return reply instanceof Promise ? reply.catch(failed) : reply;
    } catch (error) {
      return failed(error);
    }
  }

  /** A reply in its client's era (`eraShape`), whether it is at hand or still to come. */
  function shaped(parsed: Extract<McpMessages, { batch: false }>, reply: Reply | Promise<Reply>): Reply | Promise<Reply> {
    if (!parsed.modern) return reply;
    return reply instanceof Promise ? reply.then((r) => eraShape(parsed, r, serverInfo)) : eraShape(parsed, reply, serverInfo);
  }

  return {
    name: 'mcp',
    parse,
    serve,
    refusal(error) {
      // A body that is not JSON or not an acceptable message is a JSON-RPC error (id null), HTTP 400;
      // so are the refusals `Mcp-Method` / `Mcp-Name` decide before the body (method-headers.ts); every
      // other refusal is the table's `{type, message}`.
      if (JSON_RPC_REFUSALS.has(error.code)) return jsonAnswer(error.status, rpcErrorOf(null, error));
      return errorAnswer(error);
    },
  };
}

/**
 * The params of the common `tools/call` (a name, arguments or none, no `_meta`, no `task`) when they are
 * exactly what `CallToolRequestSchema` accepts, checked by hand: the SDK's zod schema showed in the hot
 * path's profile. Anything else (null) is left to the schema itself.
 */
function plainToolCallParams(params: Record<string, unknown> | undefined): { name: string; arguments?: Record<string, unknown> } | null {
  if (params === undefined || typeof params.name !== 'string' || '_meta' in params || 'task' in params) return null;
  const args = params.arguments;
  // The params themselves, checked, rather than a copy of the two members read from them.
  return args === undefined || isObject(args) ? (params as { name: string; arguments?: Record<string, unknown> }) : null;
}

const JSON_RPC_REFUSALS: ReadonlySet<string> = new Set(['parse_error', 'invalid_message', 'header_mismatch', 'not_found', 'tool_blocked']);

function methodOf(message: unknown): string {
  return isObject(message) && typeof message.method === 'string' ? message.method : '';
}

/**
 * A reply in its client's era: the 2026-07-28 shape (`modernize`: `resultType`, who answered, list caching
 * hints) for a client on that wire, as is otherwise. The one place both the JSON answer and a streamed
 * answer's final event are shaped.
 */
function eraShape(parsed: Extract<McpMessages, { batch: false }>, reply: Reply, serverInfo: { name: string; version: string }): Reply {
  return parsed.modern ? modernize(reply, methodOf(parsed.message), serverInfo) : reply;
}

function replyAnswer(status: number, body: unknown): Answer {
  return body === null ? ACCEPTED : jsonAnswer(status, body);
}

/** A forward stage's result with nothing metered (`Forwarded`). */
function forwarded<T>(result: T): { result: T } {
  return { result };
}

function ok(body: unknown): Reply {
  return { status: 200, body };
}

function toAnswer(reply: Reply): Answer {
  return replyAnswer(reply.status, reply.body);
}

function invalidParams(record: RequestRecord, id: JsonRpcId, method: string): Reply {
  record.outcome = 'invalid';
  record.error = 'invalid_message';
  return ok(rpcError(id, RpcCode.InvalidParams, RpcMessage.invalidParams(method)));
}

const ENVELOPE_KEYS: ReadonlySet<string> = new Set(['jsonrpc', 'id', 'method', 'params']);

/** What `JSONRPCRequestSchema` (strict) accepts: exactly these members, a string or integer id, object params. */
function isRequestEnvelope(json: Record<string, unknown>): json is JSONRPCRequest {
  if (json.jsonrpc !== '2.0' || typeof json.method !== 'string') return false;
  const id = json.id;
  // Safe integers only: a larger one parses to a nearby double, and the answer would carry an id the client never sent.
  if (typeof id !== 'string' && !(typeof id === 'number' && Number.isSafeInteger(id))) return false;
  const params = json.params;
  if (params !== undefined && !isObject(params)) return false;
  for (const key in json) if (!ENVELOPE_KEYS.has(key)) return false;
  return true;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The id of a message that may be malformed, or null when it has none usable (JSON-RPC 2.0 §5). */
function idOf(message: unknown): JsonRpcId {
  return isObject(message) && (typeof message.id === 'string' || Number.isSafeInteger(message.id)) ? (message.id as JsonRpcId) : null;
}

/** `{server}-gatehouse_connect_account` on a per-user server the key grants: the server, else null. */
function connectToolCall(runtime: Runtime, caller: Caller, name: string): ResolvedServer | null {
  if (!name.endsWith(`-${CONNECT_TOOL}`)) return null;
  const parsed = parseToolName(runtime, name);
  if (!parsed || parsed.tool !== CONNECT_TOOL || !isPerUserServer(parsed.server) || !caller.key.tools.has(parsed.server.name)) return null;
  return parsed.server;
}
