/**
 * The bench's upstream: a trivial MCP server over stateless JSON-RPC-over-HTTP, written on node:http
 * directly (no SDK, no framework) so that it is as cheap per request as a real upstream can be and the
 * numbers measure the proxies in front of it, not it.
 *
 * It runs as its own process (spawned by `bench/run.ts`), so it never shares an event loop with the
 * load generator or the gateway. It answers `POST /mcp`:
 *   initialize      → fixed capabilities, the requested protocol version echoed back
 *   notifications/* → 202, no body (what the MCP Streamable HTTP transport expects)
 *   tools/list      → one tool, `echo`
 *   tools/call      → a fixed small text result
 *   ping            → {}
 * GET /mcp is 405, which tells the SDK client there is no server-to-client SSE stream (stateless server);
 * no `Mcp-Session-Id` is ever issued.
 *
 * Prints one JSON line `{"ready":true,"port":N}` on stdout when listening; exits when stdin closes, so it
 * never outlives the bench even if the bench is killed.
 */
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

const PROTOCOL_VERSION = '2025-06-18';
const TOOL = {
  name: 'echo',
  description: 'returns a fixed text',
  inputSchema: { type: 'object', properties: { text: { type: 'string' } } },
};
// Pre-serialised bodies: the upstream's own cost per call stays a few microseconds.
const CALL_RESULT = '{"content":[{"type":"text","text":"ok"}]}';
const LIST_RESULT = JSON.stringify({ tools: [TOOL] });

function reply(res: ServerResponse, id: unknown, resultJson: string): void {
  const body = `{"jsonrpc":"2.0","id":${JSON.stringify(id)},"result":${resultJson}}`;
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function replyError(res: ServerResponse, status: number, id: unknown, code: number, message: string): void {
  const body = JSON.stringify({ jsonrpc: '2.0', id: id ?? null, error: { code, message } });
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function handle(res: ServerResponse, raw: string): void {
  let message: unknown;
  try {
    message = JSON.parse(raw);
  } catch {
    replyError(res, 400, null, -32700, 'parse error');
    return;
  }
  if (typeof message !== 'object' || message === null || Array.isArray(message)) {
    replyError(res, 400, null, -32600, 'invalid request');
    return;
  }
  const { id, method, params } = message as { id?: unknown; method?: unknown; params?: unknown };
  if (id === undefined) {
    // A notification (or a response to a request we never send): accepted, no body.
    res.writeHead(202).end();
    return;
  }
  switch (method) {
    case 'tools/call':
      reply(res, id, CALL_RESULT);
      return;
    case 'initialize': {
      const requested = (params as { protocolVersion?: unknown } | undefined)?.protocolVersion;
      const version = typeof requested === 'string' ? requested : PROTOCOL_VERSION;
      reply(res, id, JSON.stringify({ protocolVersion: version, capabilities: { tools: {} }, serverInfo: { name: 'bench-upstream', version: '1.0.0' } }));
      return;
    }
    case 'tools/list':
      reply(res, id, LIST_RESULT);
      return;
    case 'ping':
      reply(res, id, '{}');
      return;
    default:
      replyError(res, 200, id, -32601, `method not found: ${String(method)}`);
  }
}

const server = createServer((req, res) => {
  if (req.method !== 'POST') {
    res.writeHead(405, { allow: 'POST' }).end();
    req.resume();
    return;
  }
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => handle(res, chunks.length === 1 ? (chunks[0] as Buffer).toString('utf8') : Buffer.concat(chunks).toString('utf8')));
});
// Keep-alive connections from proxies must not be dropped under load.
server.keepAliveTimeout = 60_000;
server.headersTimeout = 65_000;

server.listen(Number(process.env.BENCH_UPSTREAM_PORT ?? 0), '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ ready: true, port: (server.address() as AddressInfo).port }) + '\n');
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
process.on('SIGTERM', () => process.exit(0));
