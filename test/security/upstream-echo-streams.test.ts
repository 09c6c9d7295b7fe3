/**
 * An upstream echoing the credential the gateway injected, on `/mcp/{server}`, in answers the node cannot
 * or does not hold whole. A JSON answer of unknown or large length was scrubbed only within its first 1 MB
 * (an echo past it reached the caller), an SSE stream's last event without its blank line, its comments and
 * non-JSON events passed unscrubbed, a JSON answer spelling the secret with `\/` escapes passed, any other
 * content type (text/plain) and the relayed header values passed, and an error body cut at 64 KiB passed
 * the part of the secret before the cut. Now every body is scrubbed as it streams (a secret split across
 * chunks included) with memory bounded, and so are relayed header values.
 */
import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEchoNode, writeParts, type EchoNode } from './echo-upstream.js';

const TOKEN = `tok/${randomBytes(16).toString('hex')}`;
const API_KEY = `apikey-${randomBytes(16).toString('hex')}`;
const MB = 1024 * 1024;

function answer(res: ServerResponse, tool: string, id: unknown, echo: string): void {
  const error = (message: string): string => JSON.stringify({ jsonrpc: '2.0', id, error: { code: -32000, message } });
  switch (tool) {
    case 'big_json_error': {
      const body = error(`${'x'.repeat(1.5 * MB)} rejected ${echo}`);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
      return;
    }
    case 'chunked_json_error': {
      // Unknown length; the secret split across two writes, past 1 MB.
      const body = error(`${'y'.repeat(1.2 * MB)} rejected ${echo}`);
      const at = body.indexOf(TOKEN) + 7;
      res.writeHead(200, { 'content-type': 'application/json' });
      writeParts(res, [body.slice(0, at), body.slice(at)]);
      return;
    }
    case 'escaped_json_error': {
      // Only the token, so no literal spelling of the other secret gives the body away.
      const body = error(`rejected ${TOKEN}`).replaceAll('/', '\\/');
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
      return;
    }
    case 'sse_unterminated': {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      writeParts(res, [`event: message\ndata: ${error(`rejected ${echo}`)}\n`]);
      return;
    }
    case 'sse_comment_and_text': {
      const event = `: debug ${echo}\n\nevent: log\ndata: not json ${echo}\n\nevent: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', id, result: { content: [{ type: 'text', text: 'ok' }] } })}\n\n`;
      const at = event.indexOf(API_KEY) + 5;
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      writeParts(res, [event.slice(0, at), event.slice(at)]);
      return;
    }
    case 'text_echo':
      res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': `no-store, x-debug="${TOKEN}"` }).end(`you sent ${echo}`);
      return;
    case 'error_cut': {
      // The token straddles the 64 KiB the node relays of an error body.
      const pad = 64 * 1024 - 'rejected '.length - 10;
      res.writeHead(500, { 'content-type': 'text/plain' }).end(`${'z'.repeat(pad)}rejected ${TOKEN} and more`);
      return;
    }
    default:
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', id, result: { content: [] } }));
  }
}

let echo: EchoNode;

beforeAll(async () => {
  echo = await startEchoNode(answer, { token: TOKEN, apiKey: API_KEY });
});

afterAll(async () => {
  await echo?.close();
});

async function call(tool: string): Promise<{ status: number; headers: Headers; text: string }> {
  const res = await fetch(`${echo.node.url}/mcp/crm`, {
    method: 'POST',
    headers: { authorization: `Bearer ${echo.snapshot.keyValues.dev ?? ''}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: tool, arguments: {} } }),
  });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

/** No spelling of either secret, nor an 8-character start or end of the token. */
function expectClean(text: string): void {
  for (const secret of [TOKEN, API_KEY]) {
    expect(text).not.toContain(secret);
    expect(text).not.toContain(secret.replaceAll('/', '\\/'));
  }
  expect(text).not.toContain(TOKEN.slice(0, 8));
  expect(text).not.toContain(TOKEN.slice(-8));
}

describe('/mcp/{server}: an echoed credential never reaches the caller', () => {
  it('in a JSON error past 1 MB (declared length)', async () => {
    const answer = await call('big_json_error');
    expect(answer.text.length).toBeGreaterThan(1.5 * MB);
    expectClean(answer.text);
    expect((JSON.parse(answer.text) as { error: { message: string } }).error.message).toContain('[redacted]');
  });

  it('in a JSON error of unknown length past 1 MB, split across writes', async () => {
    const answer = await call('chunked_json_error');
    expect(answer.text.length).toBeGreaterThan(1.2 * MB);
    expectClean(answer.text);
    expect((JSON.parse(answer.text) as { error: { message: string } }).error.message).toContain('[redacted]');
  });

  it('spelled with \\/ escapes in JSON', async () => {
    const answer = await call('escaped_json_error');
    expectClean(answer.text);
    expectClean(JSON.stringify(JSON.parse(answer.text)));
  });

  it("in an SSE stream's last event without its blank line", async () => {
    const answer = await call('sse_unterminated');
    expect(answer.text).toContain('rejected');
    expectClean(answer.text);
  });

  it('in SSE comments and non-JSON events, split across writes; the response event passes', async () => {
    const answer = await call('sse_comment_and_text');
    expectClean(answer.text);
    expect(answer.text).toContain('"text":"ok"');
  });

  it('in a text/plain answer and a relayed header value', async () => {
    const answer = await call('text_echo');
    expect(answer.text).toContain('you sent');
    expectClean(answer.text);
    expectClean(answer.headers.get('cache-control') ?? '');
  });

  it('at the cut of an error body (no part of it before the cut)', async () => {
    const answer = await call('error_cut');
    expect(answer.status).toBe(500);
    expectClean(answer.text);
  });
});
