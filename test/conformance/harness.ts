/**
 * What the official MCP conformance suite (`@modelcontextprotocol/conformance`, server mode) needs to test
 * a Gatehouse node's `/mcp` as an MCP server:
 *
 * - an upstream MCP server offering the tools the suite's scenarios call by name (`test_simple_text`,
 *   `test_image_content`, …, as the suite's reference "everything server" does), tools only;
 * - a node (the real HTTP server, Runtime from a signed, sealed, verified snapshot) with one key granted
 *   every tool of that upstream;
 * - a forwarding proxy in front of the node, because the suite cannot be told to send headers (no CLI
 *   option or environment variable for it) and `/mcp` rightly answers 401 without a virtual key. The
 *   proxy adds `Authorization: Bearer <key>` and maps tool names between the suite and the node: the node
 *   names aggregated tools `{server}-{tool}` (SPEC §4), while the suite calls the reference server's bare
 *   names. It prefixes `params.name` of `tools/call` and strips the prefix from `tools/list` results;
 *   everything else (method, path, headers, status, body, `Content-Type`) passes through unchanged, so the
 *   node's own transport behaviour is what the suite sees.
 */
import { randomUUID } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server as McpLowLevelServer } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { CallToolRequestSchema, ListToolsRequestSchema, type CallToolResult, type Tool } from '@modelcontextprotocol/sdk/types.js';
import { buildSnapshot, startTestNode, type TestNode } from '../data-plane/helpers.js';

/** The upstream's name in the snapshot, hence the node's tool-name prefix. */
export const CONFORMANCE_SERVER = 'conf';
const PREFIX = `${CONFORMANCE_SERVER}-`;

// 1×1 PNG and a 44-byte silent WAV header: the suite only checks type, data and mimeType.
const PNG_1X1 = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==';
const WAV_EMPTY = 'UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YQAAAAA=';

const noArgs = { type: 'object', properties: {} } as const;

/** Tools of the suite's reference server that a tools-only server can offer, with their fixed answers. */
const TOOLS: { tool: Tool; result: CallToolResult }[] = [
  {
    tool: { name: 'test_simple_text', description: 'Returns simple text', inputSchema: noArgs },
    result: { content: [{ type: 'text', text: 'This is a simple text response for testing.' }] },
  },
  {
    tool: { name: 'test_image_content', description: 'Returns an image', inputSchema: noArgs },
    result: { content: [{ type: 'image', data: PNG_1X1, mimeType: 'image/png' }] },
  },
  {
    tool: { name: 'test_audio_content', description: 'Returns audio', inputSchema: noArgs },
    result: { content: [{ type: 'audio', data: WAV_EMPTY, mimeType: 'audio/wav' }] },
  },
  {
    tool: { name: 'test_embedded_resource', description: 'Returns an embedded resource', inputSchema: noArgs },
    result: {
      content: [{ type: 'resource', resource: { uri: 'test://embedded-resource', mimeType: 'text/plain', text: 'This is an embedded resource content.' } }],
    },
  },
  {
    tool: { name: 'test_multiple_content_types', description: 'Returns text, image and resource', inputSchema: noArgs },
    result: {
      content: [
        { type: 'text', text: 'Multiple content types test:' },
        { type: 'image', data: PNG_1X1, mimeType: 'image/png' },
        { type: 'resource', resource: { uri: 'test://mixed-content-resource', mimeType: 'application/json', text: '{"test":"data","value":123}' } },
      ],
    },
  },
  {
    tool: { name: 'test_error_handling', description: 'Always fails', inputSchema: noArgs },
    result: { isError: true, content: [{ type: 'text', text: 'This tool intentionally returns an error for testing' }] },
  },
  {
    tool: {
      name: 'json_schema_2020_12_tool',
      description: 'Tool with JSON Schema 2020-12 features',
      inputSchema: {
        $schema: 'https://json-schema.org/draft/2020-12/schema',
        type: 'object',
        $defs: { address: { type: 'object', properties: { street: { type: 'string' }, city: { type: 'string' } } } },
        properties: { name: { type: 'string' }, address: { $ref: '#/$defs/address' } },
        additionalProperties: false,
      },
    },
    result: { content: [{ type: 'text', text: 'ok' }] },
  },
];

export interface ConformanceTarget {
  /** The proxy's `/mcp` URL: what the suite is pointed at. */
  url: string;
  node: TestNode;
  close(): Promise<void>;
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

function readAll(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** The reference tools over Streamable HTTP, stateless (a test upstream, so a server per request is fine). */
async function startUpstream(): Promise<{ url: string; close(): Promise<void> }> {
  const http = createServer((req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      const server = new McpLowLevelServer({ name: 'conformance-upstream', version: '1.0.0' }, { capabilities: { tools: {} } });
      server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: TOOLS.map((t) => t.tool) }));
      server.setRequestHandler(CallToolRequestSchema, (request) => {
        const found = TOOLS.find((t) => t.tool.name === request.params.name);
        return found ? found.result : { isError: true, content: [{ type: 'text', text: `unknown tool ${request.params.name}` }] };
      });
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
      res.on('close', () => {
        void transport.close();
        void server.close();
      });
      await server.connect(transport);
      await transport.handleRequest(req, res);
    })().catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500).end(String(error));
    });
  });
  const base = await listen(http);
  return { url: `${base}/mcp`, close: () => closeServer(http) };
}

/** `tools/call` names gain the node's prefix on the way in; request bodies that are not JSON pass as they are. */
function rewriteRequest(body: Buffer): Buffer {
  if (body.length === 0) return body;
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    return body;
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return body;
  const message = json as { method?: unknown; params?: { name?: unknown } };
  if (message.method !== 'tools/call' || typeof message.params?.name !== 'string') return body;
  return Buffer.from(JSON.stringify({ ...message, params: { ...message.params, name: PREFIX + message.params.name } }));
}

/** `tools/list` results lose the node's prefix on the way out. */
function rewriteResponse(body: Buffer, contentType: string | undefined): Buffer {
  if (!contentType?.startsWith('application/json') || body.length === 0) return body;
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    return body;
  }
  const message = json as { result?: { tools?: unknown } };
  if (!Array.isArray(message.result?.tools)) return body;
  const tools = (message.result.tools as { name?: unknown }[]).map((t) =>
    typeof t.name === 'string' && t.name.startsWith(PREFIX) ? { ...t, name: t.name.slice(PREFIX.length) } : t,
  );
  return Buffer.from(JSON.stringify({ ...message, result: { ...message.result, tools } }));
}

/** Forwards every request to `target` with the key added (see the module comment for why). */
async function startProxy(target: string, key: string): Promise<{ url: string; close(): Promise<void> }> {
  const targetUrl = new URL(target);
  const proxy = createServer((req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      const body = rewriteRequest(await readAll(req));
      const headers = { ...req.headers, authorization: `Bearer ${key}`, host: targetUrl.host };
      delete headers['transfer-encoding'];
      if (req.method === 'GET' || req.method === 'HEAD' || req.method === 'DELETE') delete headers['content-length'];
      else headers['content-length'] = String(body.length);
      const upstream = httpRequest({ hostname: targetUrl.hostname, port: targetUrl.port, path: req.url, method: req.method, headers }, (answer) => {
        void readAll(answer).then((raw) => {
          const out = rewriteResponse(raw, answer.headers['content-type']);
          const outHeaders = { ...answer.headers };
          delete outHeaders['transfer-encoding'];
          if (outHeaders['content-length'] !== undefined) outHeaders['content-length'] = String(out.length);
          res.writeHead(answer.statusCode ?? 502, outHeaders);
          res.end(out);
        });
      });
      upstream.on('error', (error) => {
        if (!res.headersSent) res.writeHead(502).end(String(error));
      });
      upstream.end(body);
    })().catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500).end(String(error));
    });
  });
  const base = await listen(proxy);
  return { url: `${base}/mcp`, close: () => closeServer(proxy) };
}

/** Upstream + node + proxy, ready for the suite. */
export async function startConformanceTarget(): Promise<ConformanceTarget> {
  const upstream = await startUpstream();
  const node = await startTestNode();
  const snapshot = await buildSnapshot({
    servers: [{ name: CONFORMANCE_SERVER, url: upstream.url }],
    keys: [{ name: `conformance-${randomUUID().slice(0, 8)}`, servers: [{ server: CONFORMANCE_SERVER, tools: ['*'] }] }],
  });
  node.apply(snapshot);
  const key = Object.values(snapshot.keyValues)[0] ?? '';
  const proxy = await startProxy(node.mcpUrl, key);
  return {
    url: proxy.url,
    node,
    async close() {
      await proxy.close();
      await node.close();
      await upstream.close();
    },
  };
}
