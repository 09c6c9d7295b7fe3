/**
 * A real MCP SDK server whose tool catalog depends on the credential it is called with, as an upstream
 * behind a per-user server would: each credential value (of one header) sees its own tools, named and
 * described after whose they are, so a test can tell one user's catalog from another's wherever it shows
 * up. Served over Streamable HTTP (`/mcp`, stateless, one `McpServer` per request) and legacy SSE (`/sse`
 * + `/messages`, one per connection) on one ephemeral port. A missing or unknown value is answered 401.
 *
 * It does not record calls or support tools/list_changed (see `upstreams.ts` for those).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { closeServer, listen } from './upstreams.js';

export interface PerCredentialUpstream {
  /** Streamable HTTP endpoint. */
  url: string;
  /** Legacy SSE endpoint. */
  sseUrl: string;
  /** How many requests were refused for a missing or unknown credential. */
  refused(): number;
  close(): Promise<void>;
}

function serverFor(tools: readonly string[]): McpServer {
  const server = new McpServer({ name: 'per-credential-upstream', version: '1.0.0' });
  for (const name of tools) {
    server.registerTool(name, { description: `${name}: listed to this credential only` }, () => ({ content: [{ type: 'text', text: `ran ${name}` }] }));
  }
  return server;
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  return text === '' ? undefined : (JSON.parse(text) as unknown);
}

/** `catalogs`: credential value → the tools that value lists. `header`: where the value arrives. */
export async function startPerCredentialUpstream(options: { header: string; catalogs: Readonly<Record<string, readonly string[]>> }): Promise<PerCredentialUpstream> {
  const header = options.header.toLowerCase();
  const sse = new Map<string, { transport: SSEServerTransport; server: McpServer }>();
  let refused = 0;
  const http = createServer((req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const value = String(req.headers[header] ?? '');
      const tools = Object.hasOwn(options.catalogs, value) ? options.catalogs[value] : undefined;
      if (!tools) {
        refused++;
        res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'unauthorized' }));
        return;
      }
      if (url.pathname === '/mcp' && req.method === 'POST') {
        const body = await readJson(req);
        const server = serverFor(tools);
        const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
        res.on('close', () => {
          void transport.close();
          void server.close();
        });
        await server.connect(transport);
        await transport.handleRequest(req, res, body);
        return;
      }
      if (url.pathname === '/sse' && req.method === 'GET') {
        const transport = new SSEServerTransport('/messages', res);
        const server = serverFor(tools);
        sse.set(transport.sessionId, { transport, server });
        transport.onclose = () => sse.delete(transport.sessionId);
        await server.connect(transport);
        return;
      }
      if (url.pathname === '/messages' && req.method === 'POST') {
        const session = sse.get(url.searchParams.get('sessionId') ?? '');
        if (!session) {
          res.writeHead(404).end('unknown session');
          return;
        }
        await session.transport.handlePostMessage(req, res, await readJson(req));
        return;
      }
      res.writeHead(404).end();
    })().catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500).end(String(error));
    });
  });
  const port = await listen(http, 0);
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    sseUrl: `http://127.0.0.1:${port}/sse`,
    refused: () => refused,
    async close() {
      for (const session of sse.values()) await session.server.close().catch(() => undefined);
      sse.clear();
      await closeServer(http);
    },
  };
}
