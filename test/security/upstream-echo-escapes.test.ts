/**
 * An upstream echoing the credential the gateway injected spelled with JSON `\uXXXX` escapes (`\u0073k-…`:
 * every character, some of them, upper- or lower-case hex; twice encoded, in a JSON text inside a result's
 * text) handed it to the caller on both routes: no scrubber searched for that spelling, and the caller's
 * client decodes it back to the credential. `/mcp` relayed such a result as it came (the search of its raw
 * text found nothing, so the parsed value, the credential in it decoded, was never walked), `/mcp/{server}`
 * relayed every body (whole, streamed, an escape split across writes, an error body). Now every spelling is
 * removed on every path. A raw upstream (node:http) writes the bytes exactly as a quirky encoder would.
 */
import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postMcp } from '../data-plane/helpers.js';
import { startEchoNode, writeParts, type EchoNode } from './echo-upstream.js';

const TOKEN = `tok/${randomBytes(16).toString('hex')}`;
const API_KEY = `apikey-${randomBytes(16).toString('hex')}`;
const TOOLS = ['escaped_all', 'escaped_mixed', 'escaped_nested', 'escaped_sse_split', 'escaped_chunked', 'escaped_error', 'escaped_http_error'];

/** `text` with the characters `escape` picks spelled `\uXXXX`, hex upper-case where `upper` says. */
function spell(text: string, escape: (i: number) => boolean, upper: (i: number) => boolean = () => false): string {
  return [...text]
    .map((c, i) => {
      if (!escape(i)) return c === '/' ? '\\/' : c;
      const hex = c.charCodeAt(0).toString(16).padStart(4, '0');
      return `\\u${upper(i) ? hex.toUpperCase() : hex}`;
    })
    .join('');
}

/** `json` (JSON text) with every occurrence of each secret respelled by `respell`. */
function respelled(json: string, respell: (secret: string) => string): string {
  let out = json;
  for (const secret of [TOKEN, API_KEY]) out = out.replaceAll(JSON.stringify(secret).slice(1, -1), respell(secret));
  return out;
}

function answer(res: ServerResponse, tool: string, id: unknown, echo: string): void {
  const result = (text: string): string => JSON.stringify({ jsonrpc: '2.0', id, result: { content: [{ type: 'text', text }] } });
  const json = (body: string, status = 200): void => {
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
  };
  switch (tool) {
    case 'escaped_all':
      return json(respelled(result(`you sent ${echo}`), (s) => spell(s, () => true)));
    case 'escaped_mixed':
      return json(respelled(result(`you sent ${echo}`), (s) => spell(s, (i) => i % 2 === 0, (i) => i % 4 === 0)));
    case 'escaped_nested': {
      // A tool whose text is itself JSON (its own encoder escaped the first character), encoded again.
      const inner = respelled(JSON.stringify({ sent: echo }), (s) => spell(s, (i) => i === 0));
      return json(result(inner));
    }
    case 'escaped_sse_split': {
      const event = `event: message\ndata: ${respelled(result(`you sent ${echo}`), (s) => spell(s, (i) => i % 3 === 0, () => true))}\n\n`;
      // Cut inside the escapes: after a backslash, after `\u`, between hex digits.
      const at = event.indexOf('\\u');
      const cuts = [at + 1, event.indexOf('\\u', at + 20) + 2, event.indexOf('\\u', at + 40) + 4];
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      writeParts(res, [event.slice(0, cuts[0]), event.slice(cuts[0], cuts[1]), event.slice(cuts[1], cuts[2]), event.slice(cuts[2])]);
      return;
    }
    case 'escaped_chunked': {
      // Unknown length: streamed through the scrubber, one escape cut in its middle.
      const body = respelled(result(`you sent ${echo}`), (s) => spell(s, () => true));
      const at = body.indexOf('\\u') + 3;
      res.writeHead(200, { 'content-type': 'application/json' });
      writeParts(res, [body.slice(0, at), body.slice(at)]);
      return;
    }
    case 'escaped_error':
      return json(respelled(JSON.stringify({ jsonrpc: '2.0', id, error: { code: -32000, message: `rejected ${echo}`, data: { echo } } }), (s) => spell(s, (i) => i > 3)));
    case 'escaped_http_error':
      return json(respelled(JSON.stringify({ error: `rejected ${echo}` }), (s) => spell(s, () => true)), 500);
    default:
      return json(result('ok'));
  }
}

let echo: EchoNode;

beforeAll(async () => {
  echo = await startEchoNode(answer, { token: TOKEN, apiKey: API_KEY }, TOOLS);
});

afterAll(async () => {
  await echo?.close();
});

async function call(path: '/mcp' | '/mcp/crm', tool: string): Promise<{ status: number; text: string }> {
  const name = path === '/mcp' ? `crm-${tool}` : tool;
  const res = await postMcp(`${echo.node.url}${path}`, { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name, arguments: {} } }, { authorization: `Bearer ${echo.snapshot.keyValues.dev ?? ''}` });
  return { status: res.status, text: await res.text() };
}

/** `text` with every `\uXXXX` and `\/` read as what it stands for, however many backslashes precede it (a client decoding again and again). */
function decodedAll(text: string): string {
  for (let before = ''; before !== text; ) {
    before = text;
    text = text.replace(/\\+u([0-9a-fA-F]{4})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16))).replace(/\\+\//g, '/');
  }
  return text;
}

/** No spelling of either secret, nor an 8-character start or end of one, and the echo redacted. */
function expectClean(text: string): void {
  const decoded = decodedAll(text);
  for (const secret of [TOKEN, API_KEY]) {
    expect(decoded).not.toContain(secret.slice(0, 8));
    expect(decoded).not.toContain(secret.slice(-8));
  }
  expect(text).toContain('[redacted]');
}

describe('an upstream echoing the injected credential spelled with \\u escapes', () => {
  for (const path of ['/mcp', '/mcp/crm'] as const) {
    it.each([
      ['every character escaped', 'escaped_all', 'you sent'],
      ['some characters escaped, mixed-case hex', 'escaped_mixed', 'you sent'],
      ['twice encoded, in a JSON text inside the result', 'escaped_nested', 'sent'],
      ['in an SSE event written in pieces cut inside the escapes', 'escaped_sse_split', 'you sent'],
      ['in a JSON answer of unknown length, an escape cut between writes', 'escaped_chunked', 'you sent'],
      ['in a JSON-RPC error (message and data)', 'escaped_error', 'rejected'],
    ])(`${path}: %s`, async (_label, tool, kept) => {
      const answer = await call(path, tool);
      expect(answer.status).toBe(200);
      expect(answer.text).toContain(kept);
      expectClean(answer.text);
    });
  }

  it('/mcp/crm: in an HTTP error body', async () => {
    const answer = await call('/mcp/crm', 'escaped_http_error');
    expect(answer.status).toBe(500);
    expectClean(answer.text);
  });

  it('a result without the credential passes unchanged', async () => {
    const answer = await call('/mcp', 'plain');
    expect(answer.text).toContain('"text":"ok"');
    expect(answer.text).not.toContain('[redacted]');
  });
});
