/**
 * `/mcp/{server}`: one upstream MCP server behind the gateway's checks, its names unprefixed, everything it
 * offers passed through (issue 9 item 1; SPEC §4). For a Streamable HTTP upstream the bytes go through
 * `http-proxy-3` (`http-forward.ts`) with the gateway's header allowlists and the server's credentials
 * (`headers.ts`); the gateway reads a POST body only to decide, and answers itself only where it must:
 *
 *   method (POST, GET, DELETE) → runtime ready → authenticate key → server granted to the key and usable on
 *   this node → open the sealed session id, if any → POST: read body (size limit), parse, inspect:
 *     - `tools/call` of a tool the key may not call: a JSON-RPC error (-32003, `tool_blocked`); the upstream
 *       never sees it. An allowed call is forwarded re-serialized, so the upstream reads the very name that
 *       was checked (no duplicate-key JSON tricks).
 *     - `tools/list` when the key's grant is not every tool: the answer (JSON or SSE) is filtered.
 *     - `initialize`: the client's capabilities and version are kept for the sealed session id.
 *   → forward → answer: the upstream's status and allowlisted headers, its session id sealed, its body as
 *   it streams; 401/403/3xx from the upstream (its credentials, its redirects) become a 502 of ours.
 *
 * Stdio and legacy SSE upstreams are answered through the node's pooled connection (`pooled-route.ts`).
 * Server-to-client requests, their answers (POSTed back with the session id), GET streams with
 * `Last-Event-ID`, DELETE, progress, logging and cancellation are MCP messages like any other here: they
 * pass through on the upstream session the sealed id names, whichever node serves them.
 *
 * It does not meter or audit-store (the `onEvent` hook reports each decided message).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { authenticate } from '../auth/authenticate.js';
import type { ResolvedServer, Runtime, RuntimeHolder, RuntimeKey, ToolGrant } from '../config/runtime.js';
import { HttpMessage, RpcCode, RpcMessage, rpcError, rpcGatewayError, type JsonRpcId } from '../errors.js';
import type { Logger } from '../log.js';
import { sendError, sendJson, type McpCallEvent } from '../mcp/handler.js';
import { grantAllows } from '../policy/tool-filter.js';
import { describeError } from '../upstream/pool.js';
import { clientResponseHeaders, upstreamRequestHeaders } from './headers.js';
import { HttpForwarder } from './http-forward.js';
import { openRouteSession, sealRouteSession, type ClientHello, type OpenedSession } from './session.js';
import { filterToolsListJson, toolsListSseFilter } from './tools-list-filter.js';

export const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024;
/** A filtered tools/list answer read whole is bounded like any JSON answer the node buffers. */
const MAX_FILTERED_JSON_BYTES = 32 * 1024 * 1024;
/** Server names as the control plane allows them (SPEC §2). */
const SERVER_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export interface ServerRouteOptions {
  holder: RuntimeHolder;
  logger: Logger;
  maxBodyBytes?: number;
  now?: () => number;
  /** Must not throw or block: it runs on the request path. */
  onEvent?: (event: McpCallEvent) => void;
  /** Handles stdio and legacy SSE upstreams (they have no HTTP endpoint to proxy to). */
  pooled?: PooledRoute;
}

/** The route for upstreams reached through the pooled MCP client (`pooled-route.ts`). */
export type PooledRoute = (ctx: RouteContext, body: Buffer | null) => void;

/** Everything the stages before forwarding established. */
export interface RouteContext {
  req: IncomingMessage;
  res: ServerResponse;
  runtime: Runtime;
  key: RuntimeKey;
  token: string;
  server: ResolvedServer;
  grant: ToolGrant;
  /** The caller's headers as received (the forwarder replaces `req.headers`). */
  headers: IncomingMessage['headers'];
  session: OpenedSession | null;
  started: number;
}

export interface ServerRoute {
  (req: IncomingMessage, res: ServerResponse, serverName: string): void;
  close(): void;
}

/** What inspecting a POST body decided. */
type Inspection =
  | { kind: 'answer'; status: number; body: unknown }
  | {
      kind: 'forward';
      body: Buffer;
      /** The id of a tools/list whose answer must be filtered. */
      filterId: JsonRpcId | null;
      hello: ClientHello | null;
      /** For the event record: the one method (and tool) this POST carries, if it is a single request. */
      method: string | null;
      tool: string | null;
    };

export function createServerRoute(options: ServerRouteOptions): ServerRoute {
  const { holder, logger } = options;
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const now = options.now ?? Date.now;
  const forwarder = new HttpForwarder();
  const emit = (event: McpCallEvent): void => {
    if (!options.onEvent) return;
    try {
      options.onEvent(event);
    } catch (error) {
      logger.error({ err: error }, 'onEvent hook threw');
    }
  };

  function inspect(ctx: RouteContext, raw: Buffer): Inspection {
    let json: unknown;
    try {
      json = JSON.parse(raw.toString('utf8'));
    } catch {
      return { kind: 'answer', status: 400, body: rpcError(null, RpcCode.ParseError, RpcMessage.parseError()) };
    }
    if (Array.isArray(json)) {
      // Batches (MCP 2025-03-26 only): passed through unless one element needs the gateway's own answer.
      let reserialize = false;
      for (const item of json) {
        const one = inspectMessage(ctx, item);
        if (one.kind === 'deny' || one.kind === 'filter') return { kind: 'answer', status: 400, body: rpcError(null, RpcCode.InvalidRequest, HttpMessage.batchNeedsGateway()) };
        if (one.kind === 'call') reserialize = true;
      }
      return { kind: 'forward', body: reserialize ? Buffer.from(JSON.stringify(json)) : raw, filterId: null, hello: null, method: null, tool: null };
    }
    const one = inspectMessage(ctx, json);
    switch (one.kind) {
      case 'invalid':
        return { kind: 'answer', status: one.status, body: one.body };
      case 'deny':
        logger.info({ keyId: ctx.key.id, server: ctx.server.name, tool: one.tool }, 'tool call denied');
        emit({ method: 'tools/call', keyId: ctx.key.id, userId: ctx.key.user.id, server: ctx.server.name, tool: one.tool, outcome: 'denied', denyReason: 'not_granted', latencyMs: now() - ctx.started });
        return { kind: 'answer', status: 200, body: rpcGatewayError(one.id, 'tool_blocked', RpcMessage.toolBlocked(one.tool)) };
      case 'call':
        return { kind: 'forward', body: Buffer.from(JSON.stringify(json)), filterId: null, hello: null, method: 'tools/call', tool: one.tool };
      case 'filter':
        return { kind: 'forward', body: raw, filterId: one.id, hello: null, method: 'tools/list', tool: null };
      case 'initialize':
        return { kind: 'forward', body: raw, filterId: null, hello: one.hello, method: 'initialize', tool: null };
      case 'pass':
        return { kind: 'forward', body: raw, filterId: null, hello: null, method: one.method, tool: null };
    }
  }

  function answerUpstream(ctx: RouteContext, decided: Extract<Inspection, { kind: 'forward' }> | null, upstream: IncomingMessage): void {
    const { res, server } = ctx;
    const status = upstream.statusCode ?? 502;
    const record = (outcome: McpCallEvent['outcome']): void => {
      if (decided?.method) {
        emit({ method: decided.method, keyId: ctx.key.id, userId: ctx.key.user.id, server: server.name, ...(decided.tool !== null ? { tool: decided.tool } : {}), outcome, latencyMs: now() - ctx.started });
      }
    };
    if (status === 401 || status === 403 || (status >= 300 && status < 400)) {
      // The upstream refused the gateway's credentials, or redirects somewhere: neither is the caller's to
      // follow (a WWW-Authenticate would send an MCP client into the upstream's OAuth flow).
      upstream.resume();
      logger.warn({ server: server.name, status }, 'upstream refused a /mcp/{server} request');
      record('upstream_rpc_error');
      sendError(res, 'upstream_error', HttpMessage.upstreamRefused(server.name, status));
      return;
    }
    const filtering = decided?.filterId != null && status >= 200 && status < 300;
    const headers = clientResponseHeaders(upstream.headers, !filtering);
    const issued = upstream.headers['mcp-session-id'];
    if (typeof issued === 'string') {
      const sealed = sealRouteSession(ctx.runtime, ctx.key, server.name, issued, ctx.session, decided?.hello ?? null, now());
      if (sealed === null) {
        upstream.resume();
        record('upstream_rpc_error');
        sendError(res, 'upstream_unavailable', HttpMessage.noSessionSecret());
        return;
      }
      headers['mcp-session-id'] = sealed;
    }
    record(status >= 400 ? 'upstream_rpc_error' : 'ok');
    upstream.on('error', () => res.destroy());
    const type = String(upstream.headers['content-type'] ?? '');
    if (filtering && decided?.filterId != null && type.includes('text/event-stream')) {
      res.writeHead(status, headers);
      res.flushHeaders();
      upstream.pipe(toolsListSseFilter(decided.filterId, ctx.grant)).pipe(res);
      return;
    }
    if (filtering && decided?.filterId != null && type.includes('application/json')) {
      const filterId = decided.filterId;
      readAll(upstream, MAX_FILTERED_JSON_BYTES).then(
        (body) => {
          const text = filterToolsListJson(body.toString('utf8'), filterId, ctx.grant);
          res.writeHead(status, { ...headers, 'content-length': Buffer.byteLength(text) });
          res.end(text);
        },
        () => sendError(res, 'upstream_error', HttpMessage.upstreamUnreachable(server.name, 'its answer was too large or broke off')),
      );
      return;
    }
    res.writeHead(status, headers);
    // An SSE stream (a GET stream, a long call) reaches the client now, not with its first event.
    res.flushHeaders();
    upstream.pipe(res);
  }

  function forwardHttp(ctx: RouteContext, decided: Extract<Inspection, { kind: 'forward' }> | null): void {
    const { server } = ctx;
    const target = server.url;
    if (!target) {
      sendError(ctx.res, 'upstream_unavailable', server.unavailable ?? undefined);
      return;
    }
    const upstreamSession = ctx.session?.ok ? ctx.session.upstream : null;
    forwarder.forward(ctx.req, ctx.res, {
      target,
      headers: upstreamRequestHeaders(server, ctx.headers, ctx.token, upstreamSession, decided ? decided.body.length : null),
      body: decided ? decided.body : null,
      onResponse: (upstream) => answerUpstream(ctx, decided, upstream),
      onError: (error) => {
        const reason = describeError(error, server);
        logger.warn({ server: server.name, reason }, 'upstream request failed on /mcp/{server}');
        if (decided?.method) emit({ method: decided.method, keyId: ctx.key.id, userId: ctx.key.user.id, server: server.name, outcome: 'upstream_rpc_error', latencyMs: now() - ctx.started });
        if (!ctx.res.headersSent) sendError(ctx.res, 'upstream_error', HttpMessage.upstreamUnreachable(server.name, reason));
        else ctx.res.destroy();
      },
    });
  }

  const route = function serverRoute(req: IncomingMessage, res: ServerResponse, serverName: string): void {
    // 1. Method: Streamable HTTP's three.
    const method = req.method ?? 'GET';
    if (method !== 'POST' && method !== 'GET' && method !== 'DELETE') {
      sendError(res, 'method_not_allowed', HttpMessage.serverRouteMethods(), { allow: 'GET, POST, DELETE' });
      return;
    }
    // 2. Ready.
    const runtime = holder.current;
    if (!runtime) {
      sendError(res, 'not_ready');
      return;
    }
    // 3. Authenticate, before anything else about the request is looked at.
    const started = now();
    const auth = authenticate(runtime, req.headers.authorization, started);
    if (!auth.ok) {
      sendError(res, auth.code);
      return;
    }
    // 4. The server, granted to this key (the same answer for "no such server" and "not yours").
    const server = SERVER_NAME.test(serverName) ? runtime.servers.get(serverName) : undefined;
    const grant = server ? auth.key.tools.get(server.name) : undefined;
    if (!server || grant === undefined) {
      sendError(res, 'not_found', HttpMessage.noServerForKey(serverName));
      return;
    }
    if (server.unavailable !== null) {
      sendError(res, 'upstream_unavailable', server.unavailable);
      return;
    }
    // 5. Session: any node opens a sealed id; a refused one is "not found" to the client.
    const presented = req.headers['mcp-session-id'];
    let session: OpenedSession | null = null;
    if (typeof presented === 'string') {
      session = openRouteSession(runtime, auth.key, server.name, presented, started);
      if (!session.ok) {
        logger.info({ keyId: auth.key.id, server: server.name, reason: session.code }, 'sealed session id refused');
        sendError(res, 'session_not_found');
        return;
      }
    }
    const ctx: RouteContext = { req, res, runtime, key: auth.key, token: auth.token, server, grant, headers: req.headers, session, started };
    const viaPool = server.connectionType !== 'HTTP';
    if (method !== 'POST') {
      if (!viaPool) forwardHttp(ctx, null);
      else if (options.pooled) options.pooled(ctx, null);
      else sendError(res, 'upstream_unavailable');
      return;
    }
    // 6. Body, bounded; then the decision.
    readBody(req, maxBodyBytes).then(
      (raw) => {
        if (raw === null) {
          sendError(res, 'payload_too_large', HttpMessage.bodyTooLarge(maxBodyBytes), { connection: 'close' });
          return;
        }
        if (viaPool) {
          if (options.pooled) options.pooled(ctx, raw);
          else sendError(res, 'upstream_unavailable');
          return;
        }
        const decided = inspect(ctx, raw);
        if (decided.kind === 'answer') sendJson(res, decided.status, decided.body);
        else forwardHttp(ctx, decided);
      },
      (error: unknown) => {
        logger.warn({ err: error, server: server.name }, 'reading a /mcp/{server} request body failed');
        res.destroy();
      },
    );
  } as ServerRoute;
  route.close = () => forwarder.close();
  return route;
}

type MessageCheck =
  | { kind: 'invalid'; status: number; body: unknown }
  | { kind: 'deny'; id: JsonRpcId; tool: string }
  | { kind: 'call'; tool: string }
  | { kind: 'filter'; id: JsonRpcId }
  | { kind: 'initialize'; hello: ClientHello }
  | { kind: 'pass'; method: string | null };

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** What one JSON-RPC message needs from the gateway; anything it has no opinion on passes. */
function inspectMessage(ctx: RouteContext, message: unknown): MessageCheck {
  if (!isObject(message)) return { kind: 'invalid', status: 400, body: rpcError(null, RpcCode.InvalidRequest, RpcMessage.notAnObject()) };
  const method = typeof message.method === 'string' ? message.method : null;
  const id = typeof message.id === 'string' || typeof message.id === 'number' ? message.id : null;
  if (method === null || id === null) return { kind: 'pass', method };
  const params = isObject(message.params) ? message.params : null;
  switch (method) {
    case 'tools/call': {
      const name = params?.name;
      if (typeof name !== 'string') return { kind: 'invalid', status: 200, body: rpcError(id, RpcCode.InvalidParams, RpcMessage.invalidParams('tools/call')) };
      // Checked at call time, on the name the upstream will read.
      return grantAllows(ctx.grant, name) ? { kind: 'call', tool: name } : { kind: 'deny', id, tool: name };
    }
    case 'tools/list':
      return ctx.grant === '*' ? { kind: 'pass', method } : { kind: 'filter', id };
    case 'initialize': {
      const capabilities = isObject(params?.capabilities) ? params.capabilities : {};
      const protocolVersion = typeof params?.protocolVersion === 'string' ? params.protocolVersion.slice(0, 40) : '';
      return { kind: 'initialize', hello: { capabilities, protocolVersion } };
    }
    default:
      return { kind: 'pass', method };
  }
}

/** The body as bytes, or null when it exceeds `limit` (the rest is drained, not buffered). */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | null> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    req.resume();
    return Promise.resolve(null);
  }
  return readAll(req, limit).catch((error: unknown) => {
    if (error instanceof BodyTooLarge) return null;
    throw error;
  });
}

class BodyTooLarge extends Error {}

function readAll(stream: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    stream.on('data', (chunk: Buffer) => {
      if (done) return;
      size += chunk.length;
      if (size > limit) {
        done = true;
        chunks.length = 0;
        stream.resume();
        reject(new BodyTooLarge());
        return;
      }
      chunks.push(chunk);
    });
    stream.on('end', () => {
      if (done) return;
      done = true;
      resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks));
    });
    stream.on('error', (error) => {
      if (done) return;
      done = true;
      reject(error);
    });
  });
}
