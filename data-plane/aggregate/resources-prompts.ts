/**
 * Resources, resource templates, prompts and completions on the aggregated `/mcp` (issue 9 item 3): what
 * every server the key may use offers, under names and URIs that cannot collide across servers:
 *
 *   prompt   `{server}-{prompt}`, like tools (SPEC §2: server names have no hyphen, so the first `-` splits)
 *   URI      `gatehouse://{server}/{upstream URI}` — for resources, templates (the template's own
 *            `{var}` expressions stay where they were, so a client expands them as usual) and the `uri`
 *            of every `resources/read` content; the upstream URI follows the server name unchanged.
 *
 * A server is visible here when the key may call at least one of its tools (the same rule as `/mcp/{server}`).
 * Lists are gathered from every such server (one unreachable server is skipped, never hides the others),
 * each in one page. `resources/read`, `prompts/get` and `completion/complete` name one server and run
 * through the pipeline's call stages (limits, credentials, record). Each server is asked with the credential
 * a tool call to it would carry: its configured headers over the pool's shared connection (NONE, HEADERS),
 * else what the credentials stage resolves for this caller (a shared OAuth token, the caller's own per-user
 * token or header values), over that identity's own connection (`UpstreamPool`), so one user's list or read
 * never travels on another's credential. A per-user server the caller has not connected is skipped in lists
 * (its tools/list offers the connect tool) and answered auth-required by name. Never asked without its
 * credential: an OAUTH server asked that way once had every read refused and was marked CREDENTIALS_REFUSED
 * though its token worked. Without a credentials stage (a bare test node), only NONE/HEADERS servers are served.
 *
 * It does not serve tools (`mcp/route.ts` does) or subscriptions (no server-initiated stream on `/mcp`).
 */
import { credentialIsConfiguredHeaders, type ResolvedServer, type Runtime } from '../config/runtime.js';
import { GatewayError, RpcCode, rpcError, rpcErrorOf, type JsonRpcId } from '../errors.js';
import type { Logger } from '../log.js';
import type { Caller, RequestContext, RequestRecord } from '../pipeline/context.js';
import { SHARED_IDENTITY, upstreamCall, type CredentialSource, type UpstreamCall } from '../pipeline/credentials.js';
import type { CallStages } from '../pipeline/pipeline.js';
import { aggregatedToolName } from '../policy/tool-filter.js';
import { logDropped } from '../proxy/tools-list-filter.js';
import { servableList, type ListField } from '../snapshot/tool-names.js';
import { UpstreamFailure } from '../upstream/failures.js';
import type { RequestOutcome, UpstreamPool } from '../upstream/pool.js';

export const URI_SCHEME = 'gatehouse://';
/** Methods this module answers on `/mcp`. */
export const AGGREGATED_METHODS: ReadonlySet<string> = new Set([
  'resources/list',
  'resources/templates/list',
  'resources/read',
  'prompts/list',
  'prompts/get',
  'completion/complete',
]);
/** A list gathered from one server follows at most this many pages. */
const MAX_PAGES = 20;
const LIST_TIMEOUT_MS = 10_000;

/** `gatehouse://{server}/{uri}`. */
export function aggregatedUri(server: string, uri: string): string {
  return `${URI_SCHEME}${server}/${uri}`;
}

/** The server and upstream URI of an aggregated URI, or null when it is not one. */
export function parseAggregatedUri(uri: string): { server: string; uri: string } | null {
  if (!uri.startsWith(URI_SCHEME)) return null;
  const rest = uri.slice(URI_SCHEME.length);
  const slash = rest.indexOf('/');
  if (slash <= 0 || slash === rest.length - 1) return null;
  return { server: rest.slice(0, slash), uri: rest.slice(slash + 1) };
}

/** The server and upstream prompt name of an aggregated prompt name, or null. */
export function parsePromptName(name: string): { server: string; name: string } | null {
  const at = name.indexOf('-');
  if (at <= 0 || at === name.length - 1) return null;
  return { server: name.slice(0, at), name: name.slice(at + 1) };
}

type Reply = { status: number; body: unknown };

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function ok(id: JsonRpcId, result: unknown): Reply {
  return { status: 200, body: { jsonrpc: '2.0', id, result } };
}


export interface AggregateOptions {
  pool: UpstreamPool;
  logger: Logger;
  /** The credentials stage's source, for lists of servers whose credential is not their configured headers. */
  credentials?: CredentialSource;
}

export interface Aggregate {
  /** The capabilities this module adds to `/mcp`'s `initialize`. */
  readonly capabilities: { resources: Record<string, never>; prompts: Record<string, never>; completions: Record<string, never> };
  /** Answers one of `AGGREGATED_METHODS`. */
  dispatch(ctx: RequestContext, stages: CallStages, record: RequestRecord, id: JsonRpcId, method: string, params: Record<string, unknown> | undefined): Promise<Reply>;
}

export function createAggregate(options: AggregateOptions): Aggregate {
  const { pool, logger, credentials } = options;

  /** Whether a server is served here: usable on this node, with a credential this module can resolve. */
  function served(server: ResolvedServer | undefined): server is ResolvedServer {
    return server !== undefined && server.unavailable === null && (credentialIsConfiguredHeaders(server) || credentials !== undefined);
  }

  /**
   * The call a list for `caller` goes out as: the shared connection for a headers-only server, else the
   * caller's resolved credential; null when there is none to be had (not connected: nothing to list).
   * Throws for a credential that is unavailable just now, so the server is skipped and logged.
   */
  async function listCall(ctx: RequestContext, caller: Caller, server: ResolvedServer): Promise<UpstreamCall | null> {
    if (credentialIsConfiguredHeaders(server) || !credentials) return { server, headers: server.headers, identity: SHARED_IDENTITY };
    const resolved = await credentials.resolve(server, caller, ctx.departure);
    if (resolved instanceof GatewayError) {
      if (resolved.code === 'auth_required') return null;
      throw new Error(`${resolved.code}: ${resolved.reason ?? 'unknown'}`);
    }
    return upstreamCall(server, resolved, {}, caller.token);
  }

  /**
   * Every page of one list method from one server, as `call`, as it may be served (snapshot/tool-names.ts
   * `servableList`): entries whose name or URI holds a control or format character left out and logged,
   * such characters in titles and descriptions replaced (a terminal client prints them).
   */
  async function gather(call: UpstreamCall, method: string, field: ListField): Promise<readonly Record<string, unknown>[]> {
    const server = call.server;
    const items: Record<string, unknown>[] = [];
    let cursor: string | undefined;
    for (let page = 0; page < MAX_PAGES; page++) {
      const outcome: RequestOutcome = await pool.request(call, method, cursor === undefined ? undefined : { cursor }, { timeoutMs: LIST_TIMEOUT_MS });
      if (outcome.kind === 'rpc_error') {
        // An upstream without this capability answers -32601: it simply has none.
        if (outcome.code !== RpcCode.MethodNotFound) logger.warn({ server: server.name, method, code: outcome.code }, 'upstream refused a list on /mcp');
        break;
      }
      const list = outcome.result[field];
      if (Array.isArray(list)) for (const item of list) if (isObject(item)) items.push(item);
      const next = outcome.result.nextCursor;
      if (typeof next !== 'string') break;
      cursor = next;
    }
    const served = servableList(field, items);
    logDropped(logger, server.name, method, served.dropped);
    return served.items;
  }

  /** One list across every server the key may use, each item renamed by `rename`. */
  async function listAll(ctx: RequestContext, method: string, field: ListField, rename: (server: string, item: Record<string, unknown>) => Record<string, unknown> | null): Promise<Record<string, unknown>[]> {
    const runtime = ctx.runtime as Runtime;
    const caller = ctx.caller as Caller;
    const perServer = await Promise.all(
      [...caller.key.tools.keys()].map(async (name): Promise<Record<string, unknown>[]> => {
        const server = runtime.servers.get(name);
        if (!served(server)) return [];
        try {
          const call = await listCall(ctx, caller, server);
          if (call === null) return [];
          const items = await gather(call, method, field);
          return items.flatMap((item): Record<string, unknown>[] => {
            const renamed = rename(name, item);
            return renamed === null ? [] : [renamed];
          });
        } catch (error) {
          // One unreachable upstream must not hide every other server's items.
          logger.warn({ server: name, method, reason: error instanceof UpstreamFailure ? error.kind : error instanceof Error ? error.message : 'unknown' }, `${method} skipped an upstream`);
          return [];
        }
      }),
    );
    return perServer.flat();
  }

  /** A request naming one server, through limits → credentials → forward. */
  async function forwardTo(
    ctx: RequestContext,
    stages: CallStages,
    record: RequestRecord,
    id: JsonRpcId,
    serverName: string,
    method: string,
    params: Record<string, unknown>,
    shape: (result: Record<string, unknown>) => Record<string, unknown>,
  ): Promise<Reply> {
    const runtime = ctx.runtime as Runtime;
    const caller = ctx.caller as Caller;
    const server = runtime.servers.get(serverName);
    if (!server || !caller.key.tools.has(serverName)) {
      record.outcome = 'denied';
      record.error = 'not_found';
      record.reason = server ? 'not_granted' : 'unknown_server';
      return { status: 200, body: rpcError(id, RpcCode.InvalidParams, `no server '${serverName.slice(0, 100)}' is available to this virtual key`) };
    }
    if (server.unavailable !== null || !served(server)) {
      record.outcome = 'upstream_error';
      const message = server.unavailable ?? `server '${server.name}' is not served on /mcp by this node: use /mcp/${server.name}`;
      return { status: 200, body: rpcErrorOf(id, new GatewayError('upstream_unavailable', { message })) };
    }
    const outcome = await stages.call<RequestOutcome | UpstreamFailure>(ctx, record, { server, tool: null, method }, async (call) => {
      try {
        // The SDK client takes a real AbortSignal (the forward stage's `Departure` is lighter and not one).
        return { result: await pool.request(call, method, params, { signal: ctx.signal }) };
      } catch (error) {
        if (error instanceof UpstreamFailure) return { result: error };
        throw error;
      }
    });
    if (outcome instanceof GatewayError) return { status: 200, body: rpcErrorOf(id, outcome) };
    if (outcome instanceof UpstreamFailure) {
      record.outcome = 'upstream_error';
      record.reason = outcome.kind;
      return { status: 200, body: rpcError(id, RpcCode.InternalError, outcome.message) };
    }
    if (outcome.kind === 'rpc_error') {
      record.outcome = 'upstream_rpc_error';
      return { status: 200, body: rpcError(id, outcome.code, outcome.message, outcome.data) };
    }
    return ok(id, shape(outcome.result));
  }

  const invalid = (record: RequestRecord, id: JsonRpcId, method: string): Reply => {
    record.outcome = 'invalid';
    record.error = 'invalid_message';
    return { status: 200, body: rpcError(id, RpcCode.InvalidParams, `invalid ${method} params`) };
  };

  return {
    capabilities: { resources: {}, prompts: {}, completions: {} },
    async dispatch(ctx, stages, record, id, method, params) {
      switch (method) {
        case 'resources/list':
          return ok(id, {
            resources: await listAll(ctx, method, 'resources', (server, item) => (typeof item.uri === 'string' ? { ...item, uri: aggregatedUri(server, item.uri) } : null)),
          });
        case 'resources/templates/list':
          return ok(id, {
            resourceTemplates: await listAll(ctx, method, 'resourceTemplates', (server, item) =>
              typeof item.uriTemplate === 'string' ? { ...item, uriTemplate: aggregatedUri(server, item.uriTemplate) } : null,
            ),
          });
        case 'prompts/list':
          return ok(id, {
            prompts: await listAll(ctx, method, 'prompts', (server, item) => (typeof item.name === 'string' ? { ...item, name: aggregatedToolName(server, item.name) } : null)),
          });
        case 'resources/read': {
          const target = typeof params?.uri === 'string' ? parseAggregatedUri(params.uri) : null;
          if (!target) return invalid(record, id, method);
          record.server = target.server;
          return forwardTo(ctx, stages, record, id, target.server, method, { ...params, uri: target.uri }, (result) => ({
            ...result,
            contents: Array.isArray(result.contents)
              ? result.contents.map((c: unknown) => (isObject(c) && typeof c.uri === 'string' ? { ...c, uri: aggregatedUri(target.server, c.uri) } : c))
              : result.contents,
          }));
        }
        case 'prompts/get': {
          const target = typeof params?.name === 'string' ? parsePromptName(params.name) : null;
          if (!target) return invalid(record, id, method);
          record.server = target.server;
          return forwardTo(ctx, stages, record, id, target.server, method, { ...params, name: target.name }, (result) => result);
        }
        case 'completion/complete': {
          const ref = isObject(params?.ref) ? params.ref : null;
          let target: { server: string; ref: Record<string, unknown> } | null = null;
          if (ref?.type === 'ref/prompt' && typeof ref.name === 'string') {
            const parsed = parsePromptName(ref.name);
            if (parsed) target = { server: parsed.server, ref: { ...ref, name: parsed.name } };
          } else if (ref?.type === 'ref/resource' && typeof ref.uri === 'string') {
            const parsed = parseAggregatedUri(ref.uri);
            if (parsed) target = { server: parsed.server, ref: { ...ref, uri: parsed.uri } };
          }
          if (!target) return invalid(record, id, method);
          record.server = target.server;
          return forwardTo(ctx, stages, record, id, target.server, method, { ...params, ref: target.ref }, (result) => result);
        }
        default:
          return { status: 200, body: rpcError(id, RpcCode.MethodNotFound, `method '${method.slice(0, 100)}' is not supported on /mcp`) };
      }
    },
  };
}
