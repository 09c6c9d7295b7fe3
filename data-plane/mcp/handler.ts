/**
 * `/mcp`: one aggregated MCP server over Streamable HTTP, answered by this module itself.
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
 * The request path, in this fixed order (STYLE #1), each stage able to stop it with a typed answer:
 *   method → runtime ready → authenticate key → protocol-version header → read body (size limit) →
 *   JSON.parse → validate JSON-RPC → dispatch; for tools/call: authorize tool → pick forwardable caller
 *   headers → forward through the pooled upstream client → answer.
 *
 * A denied tool call is answered as a JSON-RPC error (code -32003, `data.type = "tool_blocked"`), not an
 * HTTP 403: MCP clients surface JSON-RPC errors per call, while an HTTP error fails the whole transport.
 * Upstream trouble (timeout, unreachable, unavailable on this node) is a tool result with `isError: true`.
 *
 * It does not meter, rate-limit or audit-store anything itself (the `onEvent` hook reports each call).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  CallToolRequestSchema,
  InitializeRequestSchema,
  JSONRPCNotificationSchema,
  JSONRPCRequestSchema,
  LATEST_PROTOCOL_VERSION,
  ListToolsRequestSchema,
  SUPPORTED_PROTOCOL_VERSIONS,
  type InitializeResult,
  type JSONRPCRequest,
  type ListToolsResult,
  type Tool,
} from '@modelcontextprotocol/sdk/types.js';
import { authenticate } from '../auth/authenticate.js';
import type { Runtime, RuntimeHolder, RuntimeKey } from '../config/runtime.js';
import {
  HttpMessage,
  RpcCode,
  RpcMessage,
  httpError,
  rpcError,
  rpcGatewayError,
  type GatewayErrorCode,
  type JsonRpcId,
} from '../errors.js';
import type { Logger } from '../log.js';
import { aggregatedToolName, checkToolCall, filterTools } from '../policy/tool-filter.js';
import { pickExtraHeaders } from '../upstream/credentials.js';
import type { UpstreamPool } from '../upstream/pool.js';

export const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024;

/** One record per JSON-RPC request that reached policy, for audit and metrics (called synchronously). */
export interface McpCallEvent {
  method: string;
  keyId: string;
  userId: string;
  server?: string;
  tool?: string;
  outcome: 'ok' | 'tool_error' | 'upstream_rpc_error' | 'denied' | 'invalid';
  denyReason?: string;
  latencyMs: number;
}

export interface McpHandlerOptions {
  holder: RuntimeHolder;
  pool: UpstreamPool;
  logger: Logger;
  /** `serverInfo.version` in `initialize`. */
  version?: string;
  maxBodyBytes?: number;
  /** Clock for key expiry (tests). */
  now?: () => number;
  /** Must not throw or block: it runs on the request path. */
  onEvent?: (event: McpCallEvent) => void;
}

type Reply = { status: number; body: unknown } | { status: 202; body: null };

interface CallContext {
  res: ServerResponse;
  runtime: Runtime;
  key: RuntimeKey;
  token: string;
  headers: IncomingMessage['headers'];
  started: number;
  /** Aborted when the caller goes away; created by the first tools/call of the request (see `callerGone`). */
  abort: AbortController | null;
}

/** The most messages one batch may hold (the SDK's own server transport uses the same bound). */
export const MAX_BATCH_MESSAGES = 100;

/** The first protocol version without JSON-RPC batching (MCP 2025-06-18 changelog). */
const FIRST_VERSION_WITHOUT_BATCHES = '2025-06-18';

export type McpHandler = (req: IncomingMessage, res: ServerResponse) => void;

export function createMcpHandler(options: McpHandlerOptions): McpHandler {
  const { holder, pool, logger } = options;
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const now = options.now ?? Date.now;
  const serverInfo = { name: 'gatehouse', version: options.version ?? '0.1.0' };
  const emit = (event: McpCallEvent): void => {
    if (!options.onEvent) return;
    try {
      options.onEvent(event);
    } catch (error) {
      logger.error({ err: error }, 'onEvent hook threw');
    }
  };
  /** Catalog array → its prefixed copies, so tools/list does not rebuild tool objects per request. */
  const prefixed = new WeakMap<readonly Tool[], { all: Tool[]; byName: Map<string, Tool> }>();

  const prefixTools = (server: string, tools: readonly Tool[]): { all: Tool[]; byName: Map<string, Tool> } => {
    let out = prefixed.get(tools);
    if (!out) {
      const byName = new Map<string, Tool>();
      for (const tool of tools) {
        // `execution` (task support) is dropped: this endpoint does not run task-augmented calls.
        const { execution: _execution, ...rest } = tool;
        byName.set(tool.name, { ...rest, name: aggregatedToolName(server, tool.name) });
      }
      out = { all: [...byName.values()], byName };
      prefixed.set(tools, out);
    }
    return out;
  };

  async function listTools(ctx: CallContext): Promise<ListToolsResult> {
    const perServer = await Promise.all(
      [...ctx.key.tools].map(async ([serverName, grant]): Promise<Tool[]> => {
        const server = ctx.runtime.servers.get(serverName);
        if (!server || server.unavailable !== null) return [];
        try {
          const catalog = await pool.listTools(server);
          const { all, byName } = prefixTools(serverName, catalog);
          if (grant === '*') return all;
          return filterTools(grant, catalog).map((tool) => byName.get(tool.name) ?? tool);
        } catch (error) {
          // One unreachable upstream must not hide every other server's tools.
          logger.warn({ server: serverName, keyId: ctx.key.id, reason: error instanceof Error ? error.message : 'unknown' }, 'tools/list skipped an upstream');
          return [];
        }
      }),
    );
    return { tools: perServer.flat() };
  }

  async function callTool(ctx: CallContext, id: JsonRpcId, message: JSONRPCRequest): Promise<Reply> {
    const parsed = CallToolRequestSchema.safeParse(message);
    if (!parsed.success) {
      emit({ method: 'tools/call', keyId: ctx.key.id, userId: ctx.key.user.id, outcome: 'invalid', latencyMs: now() - ctx.started });
      return ok(rpcError(id, RpcCode.InvalidParams, RpcMessage.invalidParams('tools/call')));
    }
    const { name, arguments: args } = parsed.data.params;
    // Checked again at call time: tools/list is advisory, this is the decision.
    const check = checkToolCall(ctx.runtime, ctx.key, name);
    if (!check.ok) {
      logger.info({ keyId: ctx.key.id, tool: name, reason: check.reason }, 'tool call denied');
      emit({ method: 'tools/call', keyId: ctx.key.id, userId: ctx.key.user.id, tool: name, outcome: 'denied', denyReason: check.reason, latencyMs: now() - ctx.started });
      return ok(rpcGatewayError(id, 'tool_blocked', RpcMessage.toolBlocked(name)));
    }
    const { server, tool } = check;
    const extraHeaders = pickExtraHeaders(server, ctx.headers, ctx.token);
    const signal = callerGone(ctx);
    const outcome = await pool.callTool(server, tool, args, extraHeaders ? { extraHeaders, signal } : { signal });
    const latencyMs = now() - ctx.started;
    if (outcome.kind === 'rpc_error') {
      emit({ method: 'tools/call', keyId: ctx.key.id, userId: ctx.key.user.id, server: server.name, tool, outcome: 'upstream_rpc_error', latencyMs });
      return ok(rpcError(id, outcome.code, outcome.message, outcome.data));
    }
    emit({ method: 'tools/call', keyId: ctx.key.id, userId: ctx.key.user.id, server: server.name, tool, outcome: outcome.result.isError ? 'tool_error' : 'ok', latencyMs });
    return ok({ jsonrpc: '2.0', id, result: outcome.result });
  }

  /** One POST body: a single message, or (for clients that may send them, see the module comment) a batch. */
  function dispatch(ctx: CallContext, json: unknown, batchesAllowed: boolean): Promise<Reply> {
    if (!Array.isArray(json)) return dispatchMessage(ctx, json);
    if (!batchesAllowed) return Promise.resolve({ status: 400, body: rpcError(null, RpcCode.InvalidRequest, RpcMessage.batch()) });
    return dispatchBatch(ctx, json);
  }

  /**
   * JSON-RPC 2.0 §6: an empty batch is one Invalid Request error; otherwise one response per request (in
   * order, an invalid element answered with its own error), none for notifications and client responses,
   * and a batch with nothing to answer is 202 like a lone notification (MCP 2025-03-26 transports §Sending
   * Messages). `initialize` MUST NOT be batched (2025-03-26 lifecycle §Initialization), so such a batch is
   * refused whole.
   */
  async function dispatchBatch(ctx: CallContext, items: unknown[]): Promise<Reply> {
    if (items.length === 0) return { status: 400, body: rpcError(null, RpcCode.InvalidRequest, RpcMessage.emptyBatch()) };
    if (items.length > MAX_BATCH_MESSAGES) {
      return { status: 400, body: rpcError(null, RpcCode.InvalidRequest, RpcMessage.batchTooLarge(MAX_BATCH_MESSAGES)) };
    }
    if (items.some((item) => isObject(item) && item.method === 'initialize')) {
      return { status: 400, body: rpcError(null, RpcCode.InvalidRequest, RpcMessage.initializeInBatch()) };
    }
    const replies = await Promise.all(
      items.map((item) =>
        // A nested array is not a message (`dispatchMessage` answers it so); batches do not nest.
        dispatchMessage(ctx, item).catch((error: unknown): Reply => {
          logger.error({ err: error, keyId: ctx.key.id }, '/mcp batch element failed');
          return { status: 500, body: rpcGatewayError(idOf(item), 'internal_error') };
        }),
      ),
    );
    const bodies = replies.filter((reply) => reply.body !== null).map((reply) => reply.body);
    return bodies.length === 0 ? accepted() : ok(bodies);
  }

  async function dispatchMessage(ctx: CallContext, json: unknown): Promise<Reply> {
    if (!isObject(json)) return { status: 400, body: rpcError(null, RpcCode.InvalidRequest, RpcMessage.notAnObject()) };

    if (!('method' in json)) {
      // A response to a server request: this endpoint never sends any, so there is nothing to match it to.
      return ('result' in json || 'error' in json) && 'id' in json ? accepted() : { status: 400, body: rpcError(null, RpcCode.InvalidRequest, RpcMessage.notAMessage()) };
    }
    if (!('id' in json)) {
      const note = JSONRPCNotificationSchema.safeParse(json);
      // notifications/initialized, cancelled (we answer synchronously, nothing to cancel), etc.
      return note.success ? accepted() : { status: 400, body: rpcError(null, RpcCode.InvalidRequest, RpcMessage.invalidNotification()) };
    }
    const request = JSONRPCRequestSchema.safeParse(json);
    if (!request.success) return { status: 400, body: rpcError(idOf(json), RpcCode.InvalidRequest, RpcMessage.invalidRequest()) };
    const message = request.data;
    const id = message.id;

    switch (message.method) {
      case 'initialize': {
        const init = InitializeRequestSchema.safeParse(message);
        if (!init.success) return ok(rpcError(id, RpcCode.InvalidParams, RpcMessage.invalidParams('initialize')));
        const requested = init.data.params.protocolVersion;
        const result: InitializeResult = {
          protocolVersion: SUPPORTED_PROTOCOL_VERSIONS.includes(requested) ? requested : LATEST_PROTOCOL_VERSION,
          capabilities: { tools: { listChanged: false } },
          serverInfo,
        };
        return ok({ jsonrpc: '2.0', id, result });
      }
      case 'ping':
        return ok({ jsonrpc: '2.0', id, result: {} });
      case 'tools/list': {
        if (!ListToolsRequestSchema.safeParse(message).success) return ok(rpcError(id, RpcCode.InvalidParams, RpcMessage.invalidParams('tools/list')));
        // Every visible tool is returned in one page, so any cursor is ignored and none is sent.
        const result = await listTools(ctx);
        emit({ method: 'tools/list', keyId: ctx.key.id, userId: ctx.key.user.id, outcome: 'ok', latencyMs: now() - ctx.started });
        return ok({ jsonrpc: '2.0', id, result });
      }
      case 'tools/call':
        return callTool(ctx, id, message);
      default:
        return ok(rpcError(id, RpcCode.MethodNotFound, RpcMessage.methodNotFound(message.method)));
    }
  }

  return function handleMcp(req, res) {
    // 1. Method: stateless JSON responses only, so no GET stream and no session to DELETE.
    if (req.method !== 'POST') {
      sendError(res, 'method_not_allowed', HttpMessage.onlyPost(), { allow: 'POST' });
      return;
    }
    // 2. Ready: a node without a configuration cannot authenticate anyone.
    const runtime = holder.current;
    if (!runtime) {
      sendError(res, 'not_ready');
      return;
    }
    // 3. Authenticate, before anything in the body is looked at.
    const started = now();
    const auth = authenticate(runtime, req.headers.authorization, started);
    if (!auth.ok) {
      sendError(res, auth.code);
      return;
    }
    // 4. Protocol version header (MCP 2025-06-18 transports §protocol-version-header): reject unknown ones.
    const version = req.headers['mcp-protocol-version'];
    if (typeof version === 'string' && !SUPPORTED_PROTOCOL_VERSIONS.includes(version)) {
      sendError(res, 'invalid_request', HttpMessage.unsupportedProtocolVersion(version));
      return;
    }
    // 5. Body, bounded.
    readBody(req, maxBodyBytes, (tooLarge, body) => {
      if (tooLarge) {
        sendError(res, 'payload_too_large', HttpMessage.bodyTooLarge(maxBodyBytes), { connection: 'close' });
        return;
      }
      // 6. Parse once.
      let json: unknown;
      try {
        json = JSON.parse(body);
      } catch {
        sendJson(res, 400, rpcError(null, RpcCode.ParseError, RpcMessage.parseError()));
        return;
      }
      const ctx: CallContext = { res, runtime, key: auth.key, token: auth.token, headers: req.headers, started, abort: null };
      const batchesAllowed = typeof version !== 'string' || version < FIRST_VERSION_WITHOUT_BATCHES;
      dispatch(ctx, json, batchesAllowed).then(
        (reply) => (reply.body === null ? sendAccepted(res) : sendJson(res, reply.status, reply.body)),
        (error: unknown) => {
          logger.error({ err: error, keyId: auth.key.id }, '/mcp request failed');
          sendJson(res, 500, rpcGatewayError(idOf(json), 'internal_error'));
        },
      );
    });
  };
}

function ok(body: unknown): Reply {
  return { status: 200, body };
}

function accepted(): Reply {
  return { status: 202, body: null };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The id of a message that may be malformed, or null when it has none usable (JSON-RPC 2.0 §5). */
function idOf(message: unknown): JsonRpcId {
  return isObject(message) && (typeof message.id === 'string' || typeof message.id === 'number') ? message.id : null;
}

/**
 * A caller that disconnects cancels its upstream calls instead of leaving them running to the timeout.
 * One controller and one `close` listener per HTTP request, however many calls a batch holds.
 */
function callerGone(ctx: CallContext): AbortSignal {
  if (!ctx.abort) {
    const abort = new AbortController();
    ctx.abort = abort;
    ctx.res.once('close', () => {
      if (!ctx.res.writableFinished) abort.abort();
    });
  }
  return ctx.abort.signal;
}

/** Reads the body as UTF-8 up to `limit` bytes; reports `tooLarge` as soon as the limit is crossed. */
function readBody(req: IncomingMessage, limit: number, done: (tooLarge: boolean, body: string) => void): void {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    req.resume();
    done(true, '');
    return;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  let finished = false;
  req.on('data', (chunk: Buffer) => {
    if (finished) return;
    size += chunk.length;
    if (size > limit) {
      finished = true;
      chunks.length = 0;
      req.resume();
      done(true, '');
      return;
    }
    chunks.push(chunk);
  });
  req.on('end', () => {
    if (finished) return;
    finished = true;
    done(false, chunks.length === 1 ? (chunks[0] as Buffer).toString('utf8') : Buffer.concat(chunks).toString('utf8'));
  });
  req.on('error', () => {
    finished = true;
  });
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers?: Record<string, string>): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function sendAccepted(res: ServerResponse): void {
  res.writeHead(202);
  res.end();
}

export function sendError(res: ServerResponse, code: GatewayErrorCode, message?: string, headers?: Record<string, string>): void {
  const error = httpError(code, message, headers);
  sendJson(res, error.status, error.body, error.headers);
}

