/**
 * `exchange` (data-plane/upstream/streamable-http.ts), the hot path's upstream client, against a real
 * node:http upstream scripted per request: every handler callback of undici's HTTP/1 client is exercised
 * (headers read from the raw list, case-insensitively, first value of a repeated one; 1xx interim answers;
 * JSON and SSE bodies; 202; HTTP errors; a foreign content type; the size bound; the deadline; the
 * caller leaving before and during the exchange).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { abortSignalOf } from '../../../data-plane/pipeline/context.js';
import { MAX_RESPONSE_BYTES, exchange, requestHeaders, type ExchangeRequest } from '../../../data-plane/upstream/streamable-http.js';

type Script = (req: IncomingMessage, res: ServerResponse, body: string) => void;
let script: Script = (_req, res) => res.end();
let server: Server;
let origin: string;
const agent = new Agent({ keepAliveTimeout: 10_000 });

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => script(req, res, body));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await agent.close();
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

function request(overrides: Partial<ExchangeRequest> = {}): ExchangeRequest {
  return {
    origin,
    path: '/mcp',
    headers: requestHeaders({ authorization: 'Bearer upstream-secret' }),
    body: '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo"}}',
    id: 7,
    signal: undefined,
    timeoutMs: 5_000,
    ...overrides,
  };
}

describe('exchange', () => {
  it('a JSON answer: our response, the session id whatever the header case, the first of repeated headers, past 1xx interim answers', async () => {
    let seen: IncomingMessage | null = null;
    script = (req, res) => {
      seen = req;
      res.writeEarlyHints({ link: '</x>; rel=preload' });
      res.writeHead(200, [
        'Content-Type', 'application/json; charset=utf-8',
        'Content-Type', 'text/plain',
        'MCP-Session-Id', 'sess-1',
        'mcp-session-id', 'sess-2',
      ]);
      res.end('{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"é ✓"}]}}');
    };
    const result = await exchange(agent, request());
    expect(result).toEqual({
      kind: 'response',
      message: { jsonrpc: '2.0', id: 7, result: { content: [{ type: 'text', text: 'é ✓' }] } },
      sessionId: 'sess-1',
      status: 200,
      text: '{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"é ✓"}]}}',
    });
    expect((seen as unknown as IncomingMessage).headers.authorization).toBe('Bearer upstream-secret');
    expect((seen as unknown as IncomingMessage).headers.accept).toBe('application/json, text/event-stream');
  });

  it('an answer in many chunks, and a batch holding ours', async () => {
    script = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('[{"jsonrpc":"2.0","id":1,"result":{}},');
      setImmediate(() => res.end('{"jsonrpc":"2.0","id":7,"result":{"ok":true}}]'));
    };
    expect(await exchange(agent, request())).toMatchObject({ kind: 'response', message: { id: 7, result: { ok: true } }, sessionId: null });
  });

  it('an SSE answer: notifications first, then our response', async () => {
    script = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'mcp-session-id': 's' });
      res.write('event: message\ndata: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}\n\n');
      res.write('data: {"jsonrpc":"2.0","id":99,"result":{}}\n\n');
      res.end('data: {"jsonrpc":"2.0","id":7,"result":{"done":1}}\n\n');
    };
    const notes: unknown[] = [];
    const result = await exchange(agent, request({ onNotification: (m) => notes.push(m) }));
    expect(result).toMatchObject({ kind: 'response', message: { id: 7, result: { done: 1 } }, sessionId: 's' });
    expect(notes).toEqual([{ jsonrpc: '2.0', method: 'notifications/progress', params: { progress: 1 } }]);
  });

  it('202 for a notification; HTTP errors; a foreign content type; invalid JSON; an answer to another id', async () => {
    script = (_req, res) => res.writeHead(202, { 'Mcp-Session-Id': 'n' }).end();
    expect(await exchange(agent, request({ id: null }))).toEqual({ kind: 'accepted', sessionId: 'n' });
    script = (_req, res) => res.writeHead(404).end('gone');
    expect(await exchange(agent, request())).toEqual({ kind: 'http_error', status: 404, detail: 'HTTP 404' });
    script = (_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<html>');
    expect(await exchange(agent, request())).toEqual({ kind: 'http_error', status: 0, detail: 'unexpected content type from upstream' });
    script = (_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"jsonrpc":');
    expect(await exchange(agent, request())).toEqual({ kind: 'http_error', status: 0, detail: 'upstream answered invalid JSON' });
    script = (_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"jsonrpc":"2.0","id":8,"result":{}}');
    expect(await exchange(agent, request())).toEqual({ kind: 'http_error', status: 0, detail: 'upstream answer did not answer the request' });
  });

  it('a JSON answer over the size bound is refused; the connection pool still serves the next call', async () => {
    const big = 'x'.repeat(MAX_RESPONSE_BYTES + 1024);
    script = (_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(`{"jsonrpc":"2.0","id":7,"result":{"t":"${big}"}}`);
    await expect(exchange(agent, request())).rejects.toThrow(/exceeds/);
    script = (_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"jsonrpc":"2.0","id":7,"result":{}}');
    expect(await exchange(agent, request())).toMatchObject({ kind: 'response' });
  });

  it('no answer within the deadline is a timeout (JSON and SSE alike)', async () => {
    script = () => undefined; // never answers
    expect(await exchange(agent, request({ timeoutMs: 150 }))).toEqual({ kind: 'timeout' });
    script = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(': keep-alive\n\n');
    };
    expect(await exchange(agent, request({ timeoutMs: 150 }))).toEqual({ kind: 'timeout' });
  });

  it('the caller leaving before or during the exchange aborts it', async () => {
    const before = new AbortController();
    before.abort();
    await expect(exchange(agent, request({ signal: before.signal }))).rejects.toThrow(/aborted/);
    let arrived = false;
    script = () => {
      arrived = true;
    };
    const during = new AbortController();
    const pending = exchange(agent, request({ signal: abortSignalOf(during.signal) }));
    await expect.poll(() => arrived).toBe(true);
    during.abort();
    await expect(pending).rejects.toThrow(/aborted/);
  });
});
