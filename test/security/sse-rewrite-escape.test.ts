/**
 * A tools/list answer `/mcp/{server}` must cut down to the key's grant (and a tools/call result the
 * guardrail must read) cannot slip past the rewrite by its shape. On SSE, a last event the upstream did not
 * end with a blank line passed as it came (a lenient client acts on it), and a response wrapped in a JSON-RPC
 * batch array passed on SSE and in JSON; an event that never ended was collected without bound. Now the
 * unterminated event and each message of a batch are rewritten, and an event past the bound (32 MiB) ends
 * the answer.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSnapshot, startTestNode, type BuiltSnapshot, type TestNode } from '../data-plane/helpers.js';
import { closeServer, listen } from '../support/upstreams.js';

const TOOLS = [
  { name: 'a', inputSchema: { type: 'object' } },
  { name: 'hidden', inputSchema: { type: 'object' } },
];

let upstream: Server;
let node: TestNode;
let snapshot: BuiltSnapshot;
/** How the upstream answers the callers' tools/list (the pool's own get plain JSON). */
let shape: 'unterminated' | 'sse-batch' | 'json-batch' | 'endless' = 'unterminated';

beforeAll(async () => {
  upstream = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const message = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as { id?: unknown; method?: string };
      if (message.id === undefined) {
        res.writeHead(202).end();
        return;
      }
      const result = message.method === 'initialize' ? { protocolVersion: '2025-06-18', capabilities: { tools: {} }, serverInfo: { name: 'u', version: '1' } } : { tools: TOOLS };
      const response = { jsonrpc: '2.0', id: message.id, result };
      if (message.method !== 'tools/list' || req.headers.traceparent === undefined) {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(response));
        return;
      }
      switch (shape) {
        case 'unterminated':
          res.writeHead(200, { 'content-type': 'text/event-stream' }).end(`event: message\ndata: ${JSON.stringify(response)}`);
          return;
        case 'sse-batch':
          res.writeHead(200, { 'content-type': 'text/event-stream' }).end(`event: message\ndata: ${JSON.stringify([response])}\n\n`);
          return;
        case 'json-batch':
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify([response]));
          return;
        case 'endless': {
          // One data line that never ends, 1 MiB at a time, for as long as the node reads it.
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          res.write('data: "');
          const block = 'x'.repeat(1024 * 1024);
          const more = (): void => {
            if (res.destroyed) return;
            if (res.write(block)) setImmediate(more);
            else res.once('drain', more);
          };
          res.on('close', () => undefined);
          more();
          return;
        }
      }
    });
  });
  const port = await listen(upstream, 0);
  node = await startTestNode();
  snapshot = await buildSnapshot({
    servers: [{ name: 'crm', url: `http://127.0.0.1:${port}/mcp` }],
    keys: [{ name: 'narrow', servers: [{ server: 'crm', tools: ['a'] }] }],
    sessionSecrets: { current: { id: 's1', secret: randomBytes(32).toString('base64url') } },
  });
  node.apply(snapshot);
});

afterAll(async () => {
  await node?.close();
  if (upstream) {
    upstream.closeAllConnections();
    await closeServer(upstream);
  }
});

async function toolsList(): Promise<string> {
  const res = await fetch(`${node.url}/mcp/crm`, {
    method: 'POST',
    headers: { authorization: `Bearer ${snapshot.keyValues.narrow ?? ''}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 4, method: 'tools/list' }),
  });
  return res.text();
}

describe('/mcp/{server} tools/list filtered whatever its shape', () => {
  it.each(['unterminated', 'sse-batch', 'json-batch'] as const)('%s', async (which) => {
    shape = which;
    const text = await toolsList();
    expect(text).toContain('"a"');
    expect(text).not.toContain('hidden');
  });

  it('an event that never ends fails the answer past the bound', async () => {
    shape = 'endless';
    const outcome = await toolsList().then(
      (text) => `ended:${text.length}`,
      () => 'failed',
    );
    expect(outcome).toBe('failed');
  }, 20_000);
});
