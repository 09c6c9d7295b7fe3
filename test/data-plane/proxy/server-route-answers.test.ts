/**
 * `/mcp/{server}` relays an upstream's answer as the upstream wrote it: a small JSON answer of declared
 * length is read whole and sent in one write, byte for byte; a large one is streamed; an answer that breaks
 * off before its declared length is a typed 502 (recorded), never a truncated 200. The upstream is a raw
 * node:http server, so the bytes on the wire are exactly the test's.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RequestRecord } from '../../../data-plane/pipeline/context.js';
import { waitFor } from '../../support/wait.js';
import { buildSnapshot, startTestNode, type BuiltSnapshot, type TestNode } from '../helpers.js';

/** Deliberately not what JSON.stringify would write: extra spaces and a trailing newline. */
const EXACT = '{ "jsonrpc" : "2.0", "id" : 7, "result" : { "content" : [ { "type" : "text", "text" : "exact bytes" } ] } }\n';
const LARGE_TEXT = 'x'.repeat(400 * 1024);

function reply(res: ServerResponse, body: string): void {
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function rawUpstream(req: IncomingMessage, res: ServerResponse): void {
  if (req.method !== 'POST') {
    res.writeHead(405).end(); // no server-to-client stream
    return;
  }
  let raw = '';
  req.on('data', (chunk: Buffer) => (raw += chunk.toString('utf8')));
  req.on('end', () => {
    const message = JSON.parse(raw) as { id?: number; method?: string; params?: { protocolVersion?: string; arguments?: { mode?: string } } };
    if (message.id === undefined) {
      res.writeHead(202).end();
      return;
    }
    const id = message.id;
    if (message.method === 'initialize') {
      reply(res, JSON.stringify({ jsonrpc: '2.0', id, result: { protocolVersion: message.params?.protocolVersion ?? '2025-06-18', capabilities: { tools: {} }, serverInfo: { name: 'raw', version: '1' } } }));
      return;
    }
    if (message.method === 'tools/list') {
      reply(res, JSON.stringify({ jsonrpc: '2.0', id, result: { tools: [{ name: 'answer', inputSchema: { type: 'object' } }] } }));
      return;
    }
    if (message.method !== 'tools/call') {
      reply(res, JSON.stringify({ jsonrpc: '2.0', id, result: {} }));
      return;
    }
    const mode = message.params?.arguments?.mode;
    if (mode === 'exact') {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(EXACT) });
      res.end(EXACT);
    } else if (mode === 'large') {
      reply(res, JSON.stringify({ jsonrpc: '2.0', id, result: { content: [{ type: 'text', text: LARGE_TEXT }] } }));
    } else {
      // Declares 500 bytes, sends 20, and hangs up.
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': 500 });
      res.write('{"jsonrpc":"2.0","id"');
      setImmediate(() => res.socket?.destroy());
    }
  });
}

describe('/mcp/{server} answers relayed as the upstream wrote them', () => {
  let upstream: Server;
  let node: TestNode;
  let snapshot: BuiltSnapshot;
  const records: RequestRecord[] = [];

  beforeAll(async () => {
    upstream = createServer(rawUpstream);
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    node = await startTestNode({ hooks: { onRecord: (r) => records.push(r) } });
    snapshot = await buildSnapshot({
      servers: [{ name: 'raw', url: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/mcp` }],
      keys: [{ name: 'k', servers: [{ server: 'raw', tools: ['*'] }] }],
    });
    node.apply(snapshot);
    await waitFor(() => node.pool.catalogs().some((c) => c.server === 'raw'), { what: 'the eager catalog fetch' });
  });

  afterAll(async () => {
    await node?.close();
    await new Promise((resolve) => upstream?.close(resolve));
  });

  const call = (mode: string): Promise<Response> =>
    fetch(`${node.url}/mcp/raw`, {
      method: 'POST',
      headers: { authorization: `Bearer ${snapshot.keyValues.k}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-06-18' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'answer', arguments: { mode } } }),
    });

  it('relays a small JSON answer byte for byte, with its length', async () => {
    const res = await call('exact');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-length')).toBe(String(Buffer.byteLength(EXACT)));
    expect(await res.text()).toBe(EXACT);
  });

  it('streams a large JSON answer whole', async () => {
    const res = await call('large');
    expect(res.status).toBe(200);
    const body = (await res.json()) as { result: { content: { text: string }[] } };
    expect(body.result.content[0]?.text).toBe(LARGE_TEXT);
  });

  it('answers an upstream answer that breaks off with a typed 502, recorded as an upstream error', async () => {
    const before = records.length;
    const res = await call('truncated');
    expect(res.status).toBe(502);
    expect(await res.json()).toMatchObject({ type: 'upstream_error' });
    await waitFor(() => records.slice(before).some((r) => r.method === 'tools/call'), { what: 'the record of the broken call' });
    expect(records.slice(before).find((r) => r.method === 'tools/call')).toMatchObject({ outcome: 'upstream_error', upstreamStatus: 200 });
  });
});
