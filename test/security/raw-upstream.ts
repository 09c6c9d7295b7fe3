/**
 * A raw recording upstream for security probes: it keeps every request exactly as it arrived (headers and
 * body bytes), so a test can check what crossed the gateway, including what a lenient JSON-RPC server (one
 * that executes notifications, or reads the first of duplicate keys) would act on. It answers just enough
 * MCP for a Streamable HTTP client: `initialize` with a session id, notifications with 202, any other
 * request with a result naming the method and tool it saw.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { buildSnapshot, startTestNode, type BuiltSnapshot, type TestKey, type TestNode, type TestServer } from '../data-plane/helpers.js';
import { closeServer, listen } from '../support/upstreams.js';

export interface RawRequest {
  method: string;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface RawUpstream {
  url: string;
  requests: RawRequest[];
  close(): Promise<void>;
}

/** An answer of the test's own for a request (status, body, content type), or null for the default. */
export type RawAnswer = (request: RawRequest, message: { id?: unknown; method?: string; params?: { name?: string } }) => { status: number; body: string; type?: string } | null;

/** A request the upstream holds before answering (a slow tool), or null to answer at once. */
export type RawHold = (message: { id?: unknown; method?: string; params?: { name?: string } }) => Promise<void> | null;

export async function startRawUpstream(answer?: RawAnswer, hold?: RawHold): Promise<RawUpstream> {
  const requests: RawRequest[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      requests.push({ method: req.method ?? '', headers: req.headers, body });
      let message: unknown;
      try {
        message = body === '' ? null : JSON.parse(body);
      } catch {
        res.writeHead(400).end();
        return;
      }
      const one = (Array.isArray(message) ? message[0] : message) as { id?: unknown; method?: string; params?: { name?: string } } | null;
      const own = one === null ? null : (answer?.(requests[requests.length - 1] as RawRequest, one) ?? null);
      if (own !== null) {
        res.writeHead(own.status, { 'content-type': own.type ?? 'application/json', 'mcp-session-id': 'raw-session' }).end(own.body);
        return;
      }
      if (one === null || one.id === undefined) {
        res.writeHead(202).end();
        return;
      }
      const held = hold?.(one) ?? null;
      if (held !== null) {
        void held.then(() => res.writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': 'raw-session' }).end(JSON.stringify({ jsonrpc: '2.0', id: one.id, result: resultOf(one) })));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': 'raw-session' }).end(JSON.stringify({ jsonrpc: '2.0', id: one.id, result: resultOf(one) }));
    });
  });
  const port = await listen(server, 0);
  return { url: `http://127.0.0.1:${port}/mcp`, requests, close: () => closeServer(server) };
}

/** The default answer: `initialize`'s result, or a text naming the method and tool (and `arguments.tag`, if any). */
function resultOf(message: { method?: string; params?: { name?: string; arguments?: { tag?: unknown } } }): Record<string, unknown> {
  if (message.method === 'initialize') return { protocolVersion: '2025-06-18', capabilities: { tools: {} }, serverInfo: { name: 'raw', version: '1' } };
  const tag = message.params?.arguments?.tag;
  return { content: [{ type: 'text', text: `${message.method ?? ''}:${message.params?.name ?? ''}${typeof tag === 'string' ? `:${tag}` : ''}` }] };
}

/** A test node in front of one raw upstream, server `crm`, and key `dev` granted all its tools (and a session secret). */
export interface RawServerNode {
  upstream: RawUpstream;
  node: TestNode;
  snapshot: BuiltSnapshot;
  /** POSTs `body` as JSON to the node's `path` with `dev`'s key (and `headers`): the status and body text. */
  post(path: string, body: unknown, headers?: Record<string, string>): Promise<{ status: number; text: string }>;
  close(): Promise<void>;
}

export async function startRawServerNode(
  options: { answer?: RawAnswer; server?: Omit<TestServer, 'name' | 'url'>; hooks?: NonNullable<Parameters<typeof startTestNode>[0]>['hooks'] } = {},
): Promise<RawServerNode> {
  const upstream = await startRawUpstream(options.answer);
  const node = await startTestNode(options.hooks ? { hooks: options.hooks } : {});
  const snapshot = await buildSnapshot({
    servers: [{ name: 'crm', url: upstream.url, ...options.server }],
    keys: [{ name: 'dev', servers: [{ server: 'crm', tools: ['*'] }] }],
    sessionSecrets: { current: { id: 's1', secret: randomBytes(32).toString('base64url') } },
  });
  node.apply(snapshot);
  return {
    upstream,
    node,
    snapshot,
    async post(path, body, headers = {}) {
      const res = await fetch(`${node.url}${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${snapshot.keyValues.dev ?? ''}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
        body: JSON.stringify(body),
      });
      return { status: res.status, text: await res.text() };
    },
    async close() {
      await node.close();
      await upstream.close();
    },
  };
}

/** A test node in front of two raw upstreams, `crm` (holding what `hold` says) and `other`, with `keys` (and a session secret). */
export interface TwoServerNode {
  crm: RawUpstream;
  other: RawUpstream;
  node: TestNode;
  snapshot: BuiltSnapshot;
  /** Applies the next version with these keys (same servers, session secret and key values). */
  reapply(keys: TestKey[]): Promise<void>;
  close(): Promise<void>;
}

export async function startTwoServerNode(keys: TestKey[], hold?: RawHold): Promise<TwoServerNode> {
  const crm = await startRawUpstream(undefined, hold);
  const other = await startRawUpstream();
  const node = await startTestNode();
  const sessionSecrets = { current: { id: 's1', secret: randomBytes(32).toString('base64url') } };
  const servers = [
    { name: 'crm', url: crm.url },
    { name: 'other', url: other.url },
  ];
  const snapshot = await buildSnapshot({ servers, keys, sessionSecrets });
  node.apply(snapshot);
  let version = 1;
  return {
    crm,
    other,
    node,
    snapshot,
    async reapply(next) {
      node.apply(await buildSnapshot({ version: ++version, servers, keys: next, sessionSecrets }, snapshot.keyValues));
    },
    async close() {
      await node.close();
      await crm.close();
      await other.close();
    },
  };
}
