/**
 * The bench's Messages API upstream: `POST /v1/messages` answered with a fixed streamed message (SSE:
 * message_start with usage including cache tokens, five text deltas, message_delta, message_stop), or the
 * same message as JSON without `"stream": true`. Pre-serialised, on node:http, so the numbers measure the
 * gateway in front of it. Prints `{"ready":true,"port":N}` when listening; exits when stdin closes.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const USAGE = { input_tokens: 1200, output_tokens: 1, cache_creation_input_tokens: 200, cache_read_input_tokens: 4000 };
const event = (name: string, data: object): string => `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;
const SSE = [
  event('message_start', { type: 'message_start', message: { id: 'msg_bench', type: 'message', role: 'assistant', model: 'claude-bench-1', content: [], stop_reason: null, usage: USAGE } }),
  event('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }),
  ...['The ', 'quick ', 'brown ', 'fox ', 'jumps.'].map((text) => event('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text } })),
  event('content_block_stop', { type: 'content_block_stop', index: 0 }),
  event('message_delta', { type: 'message_delta', delta: { stop_reason: 'end_turn' }, usage: { output_tokens: 12 } }),
  event('message_stop', { type: 'message_stop' }),
].join('');
const JSON_BODY = JSON.stringify({ id: 'msg_bench', type: 'message', role: 'assistant', model: 'claude-bench-1', content: [{ type: 'text', text: 'The quick brown fox jumps.' }], stop_reason: 'end_turn', usage: { ...USAGE, output_tokens: 12 } });

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    if (req.method !== 'POST' || !(req.url ?? '').startsWith('/v1/messages')) {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"type":"error","error":{"type":"not_found_error","message":"no route"}}');
      return;
    }
    const stream = Buffer.concat(chunks).includes('"stream":true');
    if (stream) {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.end(SSE);
    } else {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(JSON_BODY) });
      res.end(JSON_BODY);
    }
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ ready: true, port: (server.address() as AddressInfo).port })}\n`);
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
