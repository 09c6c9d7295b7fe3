/**
 * Real upstream MCP servers for tests, built with the SDK's `McpServer`: one over Streamable HTTP
 * (stateful sessions), one over legacy SSE (GET /sse + POST /messages), and the command line of a stdio
 * one (`test/fixtures/stdio-upstream.ts`). Each records what it receives (HTTP: the headers and JSON-RPC
 * method of every request; stdio: the environment it started with) so tests can check what went upstream.
 *
 * They listen on ephemeral ports (or a given one, to "restart" on the same address) on 127.0.0.1.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { McpServer, type RegisteredTool } from '@modelcontextprotocol/sdk/server/mcp.js';
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js';
import type { CallToolResult, ServerNotification, ServerRequest } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';

export interface RecordedRequest {
  httpMethod: string;
  path: string;
  headers: IncomingHttpHeaders;
  /** JSON-RPC method of the POSTed message, if any. */
  rpcMethod: string | null;
}

export interface HttpUpstream {
  kind: 'http' | 'sse';
  port: number;
  /** The URL to configure in a snapshot (`/mcp` for Streamable HTTP, `/sse` for SSE). */
  url: string;
  requests: RecordedRequest[];
  /** How many `initialize` requests arrived (one per upstream connection opened by a client). */
  initializeCount(): number;
  /** Registers a tool on every live session and notifies clients (`notifications/tools/list_changed`). */
  addTool(name: string): void;
  close(): Promise<void>;
}

type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;

function text(value: string): CallToolResult {
  return { content: [{ type: 'text', text: value }] };
}

function headerOf(extra: Extra, name: string): string {
  const value = extra.requestInfo?.headers[name.toLowerCase()];
  return Array.isArray(value) ? value.join(', ') : (value ?? '');
}

/** The tools every test upstream offers; `label` tells upstreams apart in answers. */
export function buildUpstreamServer(label: string, extraTools: readonly string[] = []): { server: McpServer; add(name: string): RegisteredTool } {
  const server = new McpServer({ name: `upstream-${label}`, version: '1.0.0' }, { capabilities: { tools: { listChanged: true } } });
  server.registerTool('echo', { description: `echo from ${label}`, inputSchema: { text: z.string() }, annotations: { readOnlyHint: true } }, ({ text: t }) =>
    text(`${label}:${t}`),
  );
  server.registerTool('add', { description: 'adds two numbers', inputSchema: { a: z.number(), b: z.number() } }, ({ a, b }) => text(String(a + b)));
  server.registerTool('whoami', { description: 'returns a request header', inputSchema: { header: z.string() } }, ({ header }, extra) =>
    text(headerOf(extra, header)),
  );
  server.registerTool('slow', { description: 'sleeps', inputSchema: { ms: z.number() } }, async ({ ms }, extra) => {
    // With a progress token, one progress notification before sleeping (for relays of progress).
    const progressToken = extra._meta?.progressToken;
    if (progressToken !== undefined) await extra.sendNotification({ method: 'notifications/progress', params: { progressToken, progress: 1, total: 2 } });
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      extra.signal.addEventListener('abort', () => {
        clearTimeout(timer);
        resolve();
      });
    });
    return text(`slept ${ms}`);
  });
  server.registerTool('secret_tool', { description: 'should never be reachable through a narrow key' }, () => text(`${label}:classified`));
  server.registerTool('find-contact', { description: 'a tool name with a hyphen', inputSchema: { name: z.string() } }, ({ name }) =>
    text(`${label}:contact:${name}`),
  );
  // A resource and a prompt, for routes that relay more than tools (`/mcp/{server}`).
  server.registerResource('note', 'mem://note', { mimeType: 'text/plain' }, (uri) => ({ contents: [{ uri: uri.href, mimeType: 'text/plain', text: `${label}:note` }] }));
  server.registerPrompt('greet', { description: 'greets someone', argsSchema: { name: z.string() } }, ({ name }) => ({
    messages: [{ role: 'user', content: { type: 'text', text: `${label}: hello ${name}` } }],
  }));
  const add = (name: string): RegisteredTool => server.registerTool(name, { description: `added later to ${label}` }, () => text(`${label}:${name}`));
  for (const name of extraTools) add(name);
  return { server, add };
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const body = Buffer.concat(chunks).toString('utf8');
  return body === '' ? undefined : (JSON.parse(body) as unknown);
}

function rpcMethodOf(body: unknown): string | null {
  return typeof body === 'object' && body !== null && 'method' in body && typeof body.method === 'string' ? body.method : null;
}

export async function listen(server: Server, port: number): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return (server.address() as AddressInfo).port;
}

export async function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

/** The handle both HTTP upstreams return: what they recorded, tools added to every live session, close. */
function upstreamHandle(
  kind: HttpUpstream['kind'],
  http: Server,
  port: number,
  path: string,
  requests: RecordedRequest[],
  sessions: Map<string, { server: McpServer; add(name: string): RegisteredTool }>,
  addedTools: string[],
): HttpUpstream {
  return {
    kind,
    port,
    url: `http://127.0.0.1:${port}${path}`,
    requests,
    initializeCount: () => requests.filter((r) => r.rpcMethod === 'initialize').length,
    addTool(name) {
      addedTools.push(name);
      // registerTool on a connected McpServer sends notifications/tools/list_changed itself.
      for (const session of sessions.values()) session.add(name);
    },
    async close() {
      for (const session of sessions.values()) await session.server.close().catch(() => undefined);
      sessions.clear();
      await closeServer(http);
    },
  };
}

/** Streamable HTTP upstream at `/mcp`, stateful (one McpServer per session), JSON or SSE answers per SDK default. */
export async function startHttpUpstream(
  options: {
    port?: number;
    label?: string;
    /** Answer 401 to any request whose header `name` is not one of `values` (a per-user API key, say). */
    requireHeader?: { name: string; values: readonly string[] };
  } = {},
): Promise<HttpUpstream> {
  const label = options.label ?? 'http';
  const requests: RecordedRequest[] = [];
  const sessions = new Map<string, { transport: StreamableHTTPServerTransport; server: McpServer; add(name: string): RegisteredTool }>();
  const addedTools: string[] = [];

  const http = createServer((req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      const body = req.method === 'POST' ? await readJson(req) : undefined;
      requests.push({ httpMethod: req.method ?? '', path: req.url ?? '', headers: req.headers, rpcMethod: rpcMethodOf(body) });
      const required = options.requireHeader;
      if (required && !required.values.includes(String(req.headers[required.name.toLowerCase()] ?? ''))) {
        res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'unauthorized' }));
        return;
      }
      if (!req.url?.startsWith('/mcp')) {
        res.writeHead(404).end();
        return;
      }
      const sessionId = req.headers['mcp-session-id'];
      if (typeof sessionId === 'string') {
        const session = sessions.get(sessionId);
        if (!session) {
          res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32001, message: 'Session not found' } }));
          return;
        }
        await session.transport.handleRequest(req, res, body);
        return;
      }
      if (req.method !== 'POST' || rpcMethodOf(body) !== 'initialize') {
        res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32000, message: 'No session' } }));
        return;
      }
      const built = buildUpstreamServer(label, addedTools);
      const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        onsessioninitialized: (id) => {
          sessions.set(id, { transport, ...built });
        },
      });
      transport.onclose = () => {
        if (transport.sessionId) sessions.delete(transport.sessionId);
      };
      await built.server.connect(transport);
      await transport.handleRequest(req, res, body);
    })().catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500).end(String(error));
    });
  });
  return upstreamHandle('http', http, await listen(http, options.port ?? 0), '/mcp', requests, sessions, addedTools);
}

/** Legacy SSE upstream: GET /sse opens a session's event stream, POST /messages?sessionId=… carries messages. */
export async function startSseUpstream(options: { port?: number; label?: string } = {}): Promise<HttpUpstream> {
  const label = options.label ?? 'sse';
  const requests: RecordedRequest[] = [];
  const sessions = new Map<string, { transport: SSEServerTransport; server: McpServer; add(name: string): RegisteredTool }>();
  const addedTools: string[] = [];

  const http = createServer((req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const body = req.method === 'POST' ? await readJson(req) : undefined;
      requests.push({ httpMethod: req.method ?? '', path: url.pathname, headers: req.headers, rpcMethod: rpcMethodOf(body) });
      if (req.method === 'GET' && url.pathname === '/sse') {
        const transport = new SSEServerTransport('/messages', res);
        const built = buildUpstreamServer(label, addedTools);
        sessions.set(transport.sessionId, { transport, ...built });
        transport.onclose = () => sessions.delete(transport.sessionId);
        await built.server.connect(transport);
        return;
      }
      if (req.method === 'POST' && url.pathname === '/messages') {
        const session = sessions.get(url.searchParams.get('sessionId') ?? '');
        if (!session) {
          res.writeHead(404).end('unknown session');
          return;
        }
        await session.transport.handlePostMessage(req, res, body);
        return;
      }
      res.writeHead(404).end();
    })().catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500).end(String(error));
    });
  });
  return upstreamHandle('sse', http, await listen(http, options.port ?? 0), '/sse', requests, sessions, addedTools);
}

export const STDIO_FIXTURE = fileURLToPath(new URL('../fixtures/stdio-upstream.ts', import.meta.url));
const TSX_LOADER = fileURLToPath(new URL('../../node_modules/tsx/dist/loader.mjs', import.meta.url));

/**
 * Command line for the stdio upstream. It appends one JSON line per start to `recordFile`:
 * `{pid, env}` (the whole environment it was started with).
 */
export function stdioUpstreamCommand(recordFile: string, label = 'stdio'): { command: string; args: string[] } {
  return { command: process.execPath, args: ['--import', pathToFileHref(TSX_LOADER), STDIO_FIXTURE, recordFile, label] };
}

function pathToFileHref(path: string): string {
  return new URL(`file://${path}`).href;
}

export interface StdioStart {
  pid: number;
  env: Record<string, string>;
}

/** The starts the stdio upstream has recorded so far. */
export function readStdioStarts(recordFile: string): StdioStart[] {
  if (!existsSync(recordFile)) return [];
  return readFileSync(recordFile, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as StdioStart);
}
