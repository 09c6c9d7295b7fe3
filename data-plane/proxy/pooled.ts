/**
 * `/mcp/{server}` in front of a stdio or legacy SSE upstream: there is no HTTP endpoint to proxy to, so the
 * node speaks Streamable HTTP to the caller itself and relays each request over its pooled MCP client
 * (`UpstreamPool.request`), one isolated JSON-RPC exchange per POST (no SDK `Server` per request or shared
 * across requests: SPEC §8, GHSA-345p-7cg4-v4c7). Stateless: no `Mcp-Session-Id`, no GET stream, so any node
 * serves any request.
 *
 * Relayed: initialize (the upstream's own capabilities, info and instructions), ping, tools (the key's tools
 * only; calls were authorized by the route), resources, resource templates, prompts (lists as the HTTP
 * route relays them: `tools-list-filter.ts`), completions, and
 * progress: a request carrying a progress token is answered as an SSE stream, its progress notifications
 * (their messages sanitised as on the HTTP route: `servableServerMessage`) first, then the response. Not
 * relayed, because one pooled connection serves every caller and nothing
 * ties an upstream message to one of them: server-to-client requests (the pool's client declares no
 * sampling, elicitation or roots, so upstreams do not send them), log notifications (`logging` is not
 * offered; `logging/setLevel` would change the level for every caller), resource subscriptions and
 * list-changed notifications. Over HTTP upstreams the route passes all of these through instead.
 *
 * Upstream trouble is a tool result with `isError: true` for tools/call (as on `/mcp`) and a JSON-RPC error
 * otherwise; neither carries a URL or a secret (the pool scrubs them).
 */
import { PassThrough } from 'node:stream';
import { LATEST_PROTOCOL_VERSION, SUPPORTED_PROTOCOL_VERSIONS, type InitializeResult, type Progress, type ServerCapabilities } from '@modelcontextprotocol/sdk/types.js';
import { GatewayError, HttpMessage, RpcCode, RpcMessage, rpcError, type JsonRpcId } from '../errors.js';
import { ACCEPTED, errorAnswer, jsonAnswer, type Answer } from '../http/respond.js';
import type { Logger } from '../log.js';
import type { RequestContext, RequestRecord } from '../pipeline/context.js';
import { SHARED_IDENTITY, type UpstreamCall } from '../pipeline/credentials.js';
import { LIST_FIELDS, servableServerMessage } from '../snapshot/tool-names.js';
import { UpstreamFailure } from '../upstream/failures.js';
import type { UpstreamPool } from '../upstream/pool.js';
import { MODERN_VERSION, modernize } from './era.js';
import { filterListResponse, logDropped } from './tools-list-filter.js';
import type { MessageCheck, PooledForward, ServerRequest } from './server-route.js';

/** Methods a pooled connection cannot serve per caller (see the module comment). */
const NOT_RELAYED = new Set(['logging/setLevel', 'resources/subscribe', 'resources/unsubscribe']);

type Reply = { status: number; body: unknown } | null;

/**
 * The call to answer `initialize`, `server/discover` and `tools/list` over, when it must be the caller's own
 * connection: a caller with their own credential (a per-user server over legacy SSE). What the server's
 * shared connection (configured headers only) is told is not what they can use, and an upstream that
 * wants a user's credential refuses it outright; another user's answer is never theirs either. Callers on
 * the shared credential are answered from the shared connection, as before.
 */
function ownConnection(call: UpstreamCall): UpstreamCall | undefined {
  return call.identity === SHARED_IDENTITY ? undefined : call;
}

export function createPooledForward(pool: UpstreamPool, logger: Logger): PooledForward {
  /** The upstream's capabilities minus what a pooled connection cannot relay to one caller. */
  function relayable(capabilities: ServerCapabilities): ServerCapabilities {
    const { logging: _logging, tasks: _tasks, experimental: _experimental, ...rest } = capabilities;
    const out: ServerCapabilities = { ...rest };
    if (out.tools) out.tools = {};
    if (out.prompts) out.prompts = {};
    if (out.resources) out.resources = {};
    return out;
  }

  /**
   * A 2026-07-28 result (era.ts bridge): `resultType`, who answered in `_meta`, caching hints on lists.
   * Upstream results pass as they are otherwise.
   */
  async function decorate(request: ServerRequest, call: UpstreamCall, method: string, reply: Reply): Promise<Reply> {
    if (!request.modern || reply === null) return reply;
    const info = await pool.upstreamInfo(request.server, ownConnection(call)).catch(() => null);
    return modernize(reply, method, info?.serverInfo ?? { name: request.server.name, version: '0.0.0' });
  }

  async function answerOne(request: ServerRequest, call: UpstreamCall, record: RequestRecord, check: MessageCheck, signal: AbortSignal, onprogress?: (p: Progress) => void): Promise<Reply> {
    if (check.kind !== 'request') return null; // notifications and responses: nothing to answer (202)
    return decorate(request, call, check.method, await answerRequest(request, call, record, check, signal, onprogress));
  }

  async function answerRequest(
    request: ServerRequest,
    call: UpstreamCall,
    record: RequestRecord,
    check: Extract<MessageCheck, { kind: 'request' }>,
    signal: AbortSignal,
    onprogress?: (p: Progress) => void,
  ): Promise<Reply> {
    const { id, method } = check;
    const server = request.server;
    const params = isObject(check.message.params) ? check.message.params : undefined;
    try {
      switch (method) {
        case 'initialize': {
          const info = await pool.upstreamInfo(server, ownConnection(call));
          const requested = check.hello?.protocolVersion ?? '';
          const result: InitializeResult = {
            protocolVersion: SUPPORTED_PROTOCOL_VERSIONS.includes(requested) ? requested : LATEST_PROTOCOL_VERSION,
            capabilities: relayable(info.capabilities),
            serverInfo: info.serverInfo ?? { name: server.name, version: '0.0.0' },
            ...(info.instructions !== null ? { instructions: info.instructions } : {}),
          };
          return ok(id, result);
        }
        case 'server/discover': {
          // 2026-07-28 clients only (era.ts bridge): what the upstream offers, as this era says it.
          const info = await pool.upstreamInfo(server, ownConnection(call));
          return ok(id, { supportedVersions: [MODERN_VERSION], capabilities: relayable(info.capabilities), ...(info.instructions !== null ? { instructions: info.instructions } : {}) });
        }
        case 'ping':
          return ok(id, {});
        case 'tools/list': {
          // The catalog is the pool's (cached, refreshed on list_changed), in one page.
          return listReply(request, id, method, { tools: await pool.listTools(server, ownConnection(call)) });
        }
        case 'tools/call': {
          const outcome = await pool.request(call, method, params, { signal, ...(onprogress ? { onprogress } : {}) });
          if (outcome.kind === 'rpc_error') {
            record.outcome = 'upstream_rpc_error';
            return ok(id, null, outcome);
          }
          record.outcome = outcome.result.isError === true ? 'tool_error' : 'ok';
          return ok(id, outcome.result);
        }
        default: {
          if (NOT_RELAYED.has(method)) {
            record.outcome = 'invalid';
            return { status: 200, body: rpcError(id, RpcCode.MethodNotFound, RpcMessage.methodNotFound(method)) };
          }
          const outcome = await pool.request(call, method, params, { signal, ...(onprogress ? { onprogress } : {}) });
          if (outcome.kind === 'rpc_error') {
            record.outcome = 'upstream_rpc_error';
            return ok(id, null, outcome);
          }
          return listReply(request, id, method, outcome.result);
        }
      }
    } catch (error) {
      if (!(error instanceof UpstreamFailure)) throw error;
      record.outcome = 'upstream_error';
      record.reason = error.kind;
      logger.warn({ server: server.name, method, reason: error.kind }, 'pooled upstream request failed on /mcp/{server}');
      // A tool that could not run is a result the model can read (as on /mcp); anything else a JSON-RPC error.
      if (method === 'tools/call') return ok(id, { content: [{ type: 'text', text: error.message }], isError: true });
      return { status: 200, body: rpcError(id, RpcCode.InternalError, error.message) };
    }
  }

  /**
   * A result as the caller gets it; a list (tools, prompts, resources, templates) as the HTTP route relays
   * one (`tools-list-filter.ts`): the key's tools only, entries named with control or format characters
   * left out and logged (server, count, names escaped), display text sanitised.
   */
  function listReply(request: ServerRequest, id: string | number, method: string, result: unknown): Reply {
    const reply = { jsonrpc: '2.0', id, result };
    const field = LIST_FIELDS.get(method);
    if (field === undefined) return { status: 200, body: reply };
    const filtered = filterListResponse(reply, id, field, request.grant, (dropped) => logDropped(logger, request.server.name, method, dropped));
    return { status: 200, body: filtered ?? reply };
  }

  return async function pooledForward(ctx: RequestContext, request: ServerRequest, call: UpstreamCall, record: RequestRecord): Promise<Answer> {
    if (request.raw === null) {
      return errorAnswer(new GatewayError('method_not_allowed', { message: HttpMessage.pooledRouteMethods(), headers: { allow: 'POST' } }));
    }
    if (call.identity !== SHARED_IDENTITY && request.server.connectionType !== 'SSE') {
      // A stdio process is the server's own, one for every caller, and takes no headers: a caller's own
      // credential cannot reach it. (Legacy SSE can: `pool.request` leases a connection opened with exactly
      // this caller's headers, kept per credential identity, never the shared one.)
      record.outcome = 'upstream_error';
      record.reason = 'per_user_over_pool';
      return errorAnswer(new GatewayError('upstream_unavailable', { message: HttpMessage.perUserOverPool(request.server.name) }));
    }
    const signal = ctx.signal;
    if (request.batch) {
      const replies: unknown[] = [];
      for (const check of request.messages) {
        const reply = await answerOne(request, call, record, check, signal);
        if (reply) replies.push(reply.body);
      }
      return replies.length === 0 ? ACCEPTED : jsonAnswer(200, replies);
    }
    const check = request.messages[0] as MessageCheck;
    const accept = String(ctx.req.headers.accept ?? '');
    const meta = check.kind === 'request' && isObject(check.message.params) && isObject(check.message.params._meta) ? check.message.params._meta : null;
    const token = meta?.progressToken;
    if ((typeof token === 'string' || typeof token === 'number') && accept.includes('text/event-stream')) {
      // Progress, then the response, on this request's own SSE stream (2025-11-25 transports §sending messages).
      const stream = new PassThrough();
      const send = (message: unknown): void => {
        if (!stream.writableEnded) stream.write(`event: message\ndata: ${JSON.stringify(message)}\n\n`);
      };
      // A progress message is shown to a person: the display-text rule of the upstream's lists.
      const progressed = (progress: Progress): void => send(servableServerMessage({ jsonrpc: '2.0', method: 'notifications/progress', params: { ...progress, progressToken: token } }));
      answerOne(request, call, record, check, signal, progressed).then(
        (reply) => {
          if (reply) send(reply.body);
          stream.end();
        },
        (error: unknown) => {
          logger.error({ err: error, server: request.server.name }, 'pooled /mcp/{server} request failed');
          send(rpcError(check.kind === 'request' ? check.id : null, RpcCode.InternalError, 'internal error'));
          stream.end();
        },
      );
      return { kind: 'stream', status: 200, headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' }, body: stream };
    }
    const reply = await answerOne(request, call, record, check, signal);
    return reply ? jsonAnswer(reply.status, reply.body) : ACCEPTED;
  };
}

function ok(id: JsonRpcId, result: unknown, error?: { code: number; message: string; data?: unknown }): Reply {
  if (error) return { status: 200, body: rpcError(id, error.code, error.message, error.data) };
  return { status: 200, body: { jsonrpc: '2.0', id, result } };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
