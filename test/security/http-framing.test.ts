/**
 * HTTP/1.1 framing and connection reuse at the node, on raw sockets. Requests node:http cannot frame or
 * parse (Content-Length beside Transfer-Encoding, repeated or listed Content-Length, unknown transfer
 * codings, obs-fold, whitespace before a colon, bad chunk sizes, bare LF, a NUL in a header, raw non-ASCII
 * in the path) were answered with node's bare status line and no body; they now get the table's
 * `{type, message}` (400 `invalid_request`, 431 `headers_too_large`), and the connection is closed, so the
 * bytes after the bad ones (a smuggled request) are never served.
 *
 * Pinned beside it: `Expect: 100-continue` goes through the same key checks; pipelined requests are each
 * judged on their own key (a refused first request changes nothing for the second, a served one lends its
 * key to nothing after it, a refused request's body is never read as a request); and a caller who
 * leaves while the upstream is still working leaves nothing behind for the next call on that upstream.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTwoServerNode, type TwoServerNode } from './raw-upstream.js';
import { parseResponses, rawRequest, sendRaw } from './raw-http.js';
import { connect } from 'node:net';

let setup: TwoServerNode | undefined;
const t = (): TwoServerNode => setup as TwoServerNode;
/** Calls of tool `slow` wait here until the test releases them. */
const held: (() => void)[] = [];
let heldSeen: (() => void) | null = null;

beforeAll(async () => {
  setup = await startTwoServerNode(
    [
      { name: 'narrow', servers: [{ server: 'crm', tools: ['echo', 'slow'] }] },
      { name: 'wide', servers: [{ server: 'crm', tools: ['*'] }, { server: 'other', tools: ['*'] }] },
    ],
    (message) => {
      if (message.method !== 'tools/call' || message.params?.name !== 'slow') return null;
      return new Promise<void>((resolve) => {
        held.push(resolve);
        heldSeen?.();
      });
    },
  );
});

afterAll(async () => {
  for (const release of held) release();
  await setup?.close();
});

const key = (name: string): string => t().snapshot.keyValues[name] ?? '';
const call = (name: string, id = 1, tag?: string): string =>
  JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: tag === undefined ? {} : { tag } } });
const headers = (keyName: string | null): string[] => [
  'Content-Type: application/json',
  'Accept: application/json, text/event-stream',
  ...(keyName === null ? [] : [`Authorization: Bearer ${key(keyName)}`]),
];
const toolCalls = (): number => [...t().crm.requests, ...t().other.requests].filter((r) => r.body.includes('"tools/call"')).length;

describe('requests node:http cannot frame get a typed 400 and a closed connection', () => {
  const body = call('echo');
  /** A request for `other` with the wide key, hidden where a lenient parser would find a second request. */
  const smuggled = (): string => rawRequest('POST', '/mcp/other', headers('wide'), call('echo'), false);
  const start = (): string => `POST /mcp/crm HTTP/1.1\r\nHost: gatehouse.test\r\n${headers('narrow').join('\r\n')}\r\n`;
  const cases: [string, () => string][] = [
    ['Content-Length and Transfer-Encoding', () => `${start()}Content-Length: ${body.length}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled()}`],
    ['two Content-Length lines that differ', () => `${start()}Content-Length: ${body.length}\r\nContent-Length: 0\r\n\r\n${body}${smuggled()}`],
    ['two equal Content-Length lines', () => `${start()}Content-Length: ${body.length}\r\nContent-Length: ${body.length}\r\n\r\n${body}${smuggled()}`],
    ['a Content-Length list', () => `${start()}Content-Length: ${body.length}, ${body.length}\r\n\r\n${body}${smuggled()}`],
    ['Transfer-Encoding: chunked, identity', () => `${start()}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n${smuggled()}`],
    ['Transfer-Encoding: xchunked', () => `${start()}Transfer-Encoding: xchunked\r\nContent-Length: 0\r\n\r\n${smuggled()}`],
    ['whitespace before the colon', () => `${start()}Transfer-Encoding : chunked\r\nContent-Length: ${body.length}\r\n\r\n${body}${smuggled()}`],
    ['an obs-fold line', () => `${start()}X-Note: a\r\n b\r\nContent-Length: ${body.length}\r\n\r\n${body}${smuggled()}`],
    ['a bad chunk size', () => `${start()}Transfer-Encoding: chunked\r\n\r\n0x${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n${smuggled()}`],
    ['bare LF line ends', () => `${start().replaceAll('\r\n', '\n')}Content-Length: ${body.length}\n\n${body}${smuggled()}`],
    ['a NUL in a header value', () => `${start()}X-Note: a\u0000b\r\nContent-Length: ${body.length}\r\n\r\n${body}${smuggled()}`],
    ['raw non-ASCII in the path', () => `${start().replace('/mcp/crm', '/mcp/\u0441rm')}Content-Length: ${body.length}\r\n\r\n${body}${smuggled()}`],
  ];
  for (const [label, bytes] of cases) {
    it(label, async () => {
      const before = toolCalls();
      const text = await sendRaw(t().node.url, Buffer.from(bytes(), 'utf8'));
      const answers = parseResponses(text);
      expect(answers.map((a) => a.status)).toEqual([400]);
      expect(answers[0]?.headers['content-type']).toBe('application/json');
      expect(answers[0]?.headers.connection).toBe('close');
      expect(JSON.parse(answers[0]?.body ?? '')).toMatchObject({ type: 'invalid_request', message: expect.stringContaining('malformed HTTP request') });
      expect(toolCalls()).toBe(before);
    });
  }

  it('a header section past the limit is a typed 431', async () => {
    const answers = parseResponses(await sendRaw(t().node.url, rawRequest('POST', '/mcp/crm', [...headers('narrow'), `X-Big: ${'a'.repeat(20_000)}`], body)));
    expect(answers.map((a) => a.status)).toEqual([431]);
    expect(JSON.parse(answers[0]?.body ?? '')).toMatchObject({ type: 'headers_too_large' });
  });

  it('so does one of very many short lines', async () => {
    const many = Array.from({ length: 3_000 }, (_, i) => `X-H${i}: v`);
    const answers = parseResponses(await sendRaw(t().node.url, rawRequest('POST', '/mcp/crm', [...headers('narrow'), ...many], body)));
    expect(answers.map((a) => a.status)).toEqual([431]);
    expect(JSON.parse(answers[0]?.body ?? '')).toMatchObject({ type: 'headers_too_large' });
  });
});

describe('Expect: 100-continue', () => {
  it('with a valid key: served as without it', async () => {
    const answers = parseResponses(await sendRaw(t().node.url, rawRequest('POST', '/mcp/crm', [...headers('narrow'), 'Expect: 100-continue'], call('echo'))));
    expect(answers.map((a) => a.status)).toEqual([100, 200]);
    expect(answers[1]?.body).toContain('tools/call:echo');
  });

  it('with no key, or for a server the key lacks: the same refusals, nothing relayed', async () => {
    const before = toolCalls();
    const none = parseResponses(await sendRaw(t().node.url, rawRequest('POST', '/mcp/other', [...headers(null), 'Expect: 100-continue'], call('echo'))));
    expect(none.at(-1)?.status).toBe(401);
    const narrow = parseResponses(await sendRaw(t().node.url, rawRequest('POST', '/mcp/other', [...headers('narrow'), 'Expect: 100-continue'], call('echo'))));
    expect(narrow.at(-1)?.status).toBe(404);
    expect(toolCalls()).toBe(before);
  });
});

describe('pipelined requests on one connection are judged one by one', () => {
  it('a served request lends its key to nothing after it', async () => {
    const before = t().other.requests.length;
    const bytes = rawRequest('POST', '/mcp/other', headers('wide'), call('echo'), false) + rawRequest('POST', '/mcp/other', headers(null), call('echo'), false) + rawRequest('POST', '/mcp/other', headers('narrow'), call('echo'));
    const answers = parseResponses(await sendRaw(t().node.url, bytes));
    expect(answers.map((a) => a.status)).toEqual([200, 401, 404]);
    expect(t().other.requests.slice(before).filter((r) => r.body.includes('tools/call')).length).toBe(1);
  });

  it('a refused request changes nothing for the next one', async () => {
    const bytes = rawRequest('POST', '/mcp/crm', headers('narrow'), call('secret'), false) + rawRequest('POST', '/mcp/crm', headers('narrow'), call('echo', 2));
    const answers = parseResponses(await sendRaw(t().node.url, bytes));
    expect(answers.map((a) => a.status)).toEqual([200, 200]);
    expect(JSON.parse(answers[0]?.body ?? '')).toMatchObject({ id: 1, error: { data: { type: 'tool_blocked' } } });
    expect(JSON.parse(answers[1]?.body ?? '')).toMatchObject({ id: 2, result: { content: [{ text: 'tools/call:echo' }] } });
  });

  it("a refused request's body is never read as a request, however it looks", async () => {
    const before = toolCalls();
    const inner = rawRequest('POST', '/mcp/other', headers('wide'), call('echo'), false);
    const bytes = rawRequest('POST', '/mcp/other', ['Content-Type: application/json', 'Authorization: Bearer gk_not_a_key'], inner);
    const answers = parseResponses(await sendRaw(t().node.url, bytes));
    expect(answers.map((a) => a.status)).toEqual([401]);
    expect(toolCalls()).toBe(before);
  });
});

describe('a caller leaving while the upstream works', () => {
  for (const [route, path, name] of [
    ['/mcp/{server}', '/mcp/crm', 'slow'],
    ['/mcp', '/mcp', 'crm-slow'],
  ] as const) {
    it(`${route}: the abandoned answer reaches nobody, the next calls get their own`, async () => {
      const seen = new Promise<void>((resolve) => (heldSeen = resolve));
      // The caller sends a slow call on a raw socket and leaves once the upstream has it.
      const socket = connect(Number(new URL(t().node.url).port), '127.0.0.1');
      socket.on('error', () => undefined);
      socket.write(rawRequest('POST', path, headers('narrow'), call(name, 1, 'abandoned'), false));
      await seen;
      heldSeen = null;
      socket.destroy();
      // The upstream answers the abandoned call while other callers' calls are on their way.
      const release = held.shift();
      const next = Promise.all(
        ['one', 'two', 'three'].map(async (tag, i) => {
          const res = await fetch(`${t().node.url}${path}`, {
            method: 'POST',
            headers: { authorization: `Bearer ${key('wide')}`, 'content-type': 'application/json', accept: 'application/json' },
            body: call(path === '/mcp' ? 'crm-echo' : 'echo', 10 + i, tag),
          });
          return (await res.json()) as { id: number; result?: { content: { text: string }[] } };
        }),
      );
      release?.();
      const answers = await next;
      expect(answers.map((a) => [a.id, a.result?.content[0]?.text])).toEqual([
        [10, 'tools/call:echo:one'],
        [11, 'tools/call:echo:two'],
        [12, 'tools/call:echo:three'],
      ]);
    });
  }
});
