/**
 * `/anthropic`: whatever the provider answers (or a proxy in its place), the provider key the node injected
 * never reaches the caller: not in a 2xx body (JSON or SSE, split across chunks), not in an error body
 * however long (the key straddling where an error body used to be cut), not in an error body that breaks off
 * inside the key, not in a relayed header; the header naming the operator's provider account is not relayed;
 * a redirect is a typed 502 (it was relayed as a bare 3xx without its Location). A placeholder key (a keyless
 * proxy's "none") is not cut out of answers. Behind the guardrail the provider gets the body that was scanned,
 * never the bytes as sent (a key given twice hid a secret from the scan).
 * And the caller's Accept reaches the provider only when it does not carry the caller's virtual key.
 * A key spelled with JSON `\u` escapes is removed too. A base URL with a query key (`?api-key=…`) or a
 * fragment got the call's path appended inside its query: the path now joins the base's path, the base's
 * query is kept with the caller's after it, and its key is kept out of answers.
 */
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RuntimeHolder, type Runtime } from '../../data-plane/config/runtime.js';
import { createLogger } from '../../data-plane/log.js';
import { createDataPlaneServer } from '../../data-plane/node/data-plane-server.js';
import { UpstreamPool } from '../../data-plane/upstream/pool.js';
import { AuditSettingsIndex, createContentGuard } from '../../data-plane/guardrail/policy.js';
import { LogCapture, newKeyValue } from '../data-plane/helpers.js';
import { providerRuntime } from '../support/provider-runtime.js';
import { closeServer, listen } from '../support/upstreams.js';

/** Shaped like a real Anthropic key (108 characters). */
const PROVIDER_KEY = `sk-ant-api03-${'Zq7xK2mP9vL4nR8sT1wY6bC3dF5gH0jAuE'.repeat(3)}${Date.now().toString(36)}`.slice(0, 108);
/** Any 16 characters of the key in a row would be a leak of it. */
const KEY_PARTS = Array.from({ length: PROVIDER_KEY.length - 15 }, (_, i) => PROVIDER_KEY.slice(i, i + 16));
const VIRTUAL_KEY = newKeyValue();

/** `text` with the characters `escape` picks spelled as JSON `\uXXXX` escapes. */
function unicodeSpelled(text: string, escape: (i: number) => boolean, upper = false): string {
  const hex = (c: string): string => c.charCodeAt(0).toString(16).padStart(4, '0');
  return [...text].map((c, i) => (escape(i) ? `\\u${upper ? hex(c).toUpperCase() : hex(c)}` : c)).join('');
}

/** `text` with every `\uXXXX` read as the character it stands for (what the caller's JSON decoder does). */
function unescaped(text: string): string {
  return text.replace(/\\+u([0-9a-fA-F]{4})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

let provider: Server;
let providerUrl: string;
let node: Server;
let nodeUrl: string;
let guardedNode: Server;
let guardedUrl: string;
const holder = new RuntimeHolder();

/** The node's runtime: one key, and the provider with `apiKey` (at `baseUrl`, the stand-in's by default). */
function runtimeWithProviderKey(apiKey: string, baseUrl = providerUrl): Runtime {
  return providerRuntime({ baseUrl, apiKey, keys: VIRTUAL_KEY });
}
const seen: IncomingHttpHeaders[] = [];
/** The request target (path and query) of every request the provider received. */
const targets: string[] = [];
/** The body of every request the provider received, as it arrived. */
const bodies: string[] = [];
const logs = new LogCapture();

/** What the provider does, by the request's `?answer=`. */
const ANSWERS: Record<string, (res: ServerResponse, headers: IncomingHttpHeaders, url: string) => void> = {
  json(res, headers) {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ model: 'claude-haiku-4-5', echo: headers, usage: { input_tokens: 1, output_tokens: 1 } }));
  },
  sse(res) {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    const start = `event: message_start\ndata: ${JSON.stringify({ type: 'message_start', message: { model: 'claude-haiku-4-5', usage: { input_tokens: 3, output_tokens: 1 } } })}\n\n`;
    const delta = `event: content_block_delta\ndata: ${JSON.stringify({ type: 'content_block_delta', delta: { type: 'text_delta', text: `your key is ${PROVIDER_KEY}` } })}\n\n`;
    const cut = delta.indexOf(PROVIDER_KEY) + 50;
    // The key split across two writes, a tick apart (two chunks on the node's side).
    res.write(start + delta.slice(0, cut), () => setTimeout(() => res.end(delta.slice(cut) + 'event: message_stop\ndata: {"type":"message_stop"}\n\n'), 20));
  },
  long_error(res) {
    // The key straddles 64 KiB, where the relayed error body used to be cut (its first 70 characters went out).
    res.writeHead(500, { 'content-type': 'application/json' });
    res.end('{"error":"' + 'x'.repeat(64 * 1024 - 10 - 70) + PROVIDER_KEY + '"}');
  },
  broken_error(res) {
    // The provider breaks off while echoing the key.
    res.writeHead(400, { 'content-type': 'application/json' });
    res.write(`{"type":"error","error":{"message":"invalid x-api-key ${PROVIDER_KEY.slice(0, 90)}`, () => setTimeout(() => res.destroy(), 20));
  },
  redirect(res) {
    res.writeHead(307, { location: `http://elsewhere.invalid/v1/messages?k=${PROVIDER_KEY}`, 'content-type': 'text/plain' });
    res.end(`moved; your key was ${PROVIDER_KEY}`);
  },
  words(res) {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ model: 'claude-haiku-4-5', content: [{ type: 'text', text: 'none of the dummy values, x' }], usage: { input_tokens: 1, output_tokens: 1 } }));
  },
  escaped(res, headers) {
    // What PHP's json_encode writes by default: every / as \/.
    res.writeHead(400, { 'content-type': 'application/json' });
    res.end(`{"error":{"message":"invalid key ${String(headers['x-api-key']).replaceAll('/', '\\/')}"}}`);
  },
  unicode_json(res) {
    // The key spelled with JSON \u escapes (every character), which the caller's JSON decoder reads back as the key.
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(`{"model":"claude-haiku-4-5","content":[{"type":"text","text":"your key is ${unicodeSpelled(PROVIDER_KEY, () => true)}"}],"usage":{"input_tokens":1,"output_tokens":1}}`);
  },
  unicode_sse(res) {
    // Some characters escaped (upper-case hex), the stream cut inside the escapes.
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    const start = `event: message_start\ndata: ${JSON.stringify({ type: 'message_start', message: { model: 'claude-haiku-4-5', usage: { input_tokens: 3, output_tokens: 1 } } })}\n\n`;
    const delta = `event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"type":"text_delta","text":"your key is ${unicodeSpelled(PROVIDER_KEY, (i) => i % 5 === 0, true)}"}}\n\n`;
    const first = delta.indexOf('\\u');
    const cuts = [first + 1, delta.indexOf('\\u', first + 30) + 3, delta.length];
    const parts = [start + delta.slice(0, cuts[0]), delta.slice(cuts[0], cuts[1]), delta.slice(cuts[1]) + 'event: message_stop\ndata: {"type":"message_stop"}\n\n'];
    const next = (i: number): void => {
      if (i === parts.length) res.end();
      else res.write(parts[i], () => setTimeout(() => next(i + 1), 10));
    };
    next(0);
  },
  unicode_error(res) {
    res.writeHead(500, { 'content-type': 'application/json' });
    res.end(`{"type":"error","error":{"type":"invalid_request_error","message":"bad key ${unicodeSpelled(PROVIDER_KEY, (i) => i > 2)}"}}`);
  },
  broken_sse(res) {
    // The provider dies in the middle of an event echoing the key (its socket destroyed).
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    const start = `event: message_start\ndata: ${JSON.stringify({ type: 'message_start', message: { model: 'claude-haiku-4-5', usage: { input_tokens: 3, output_tokens: 1 } } })}\n\n`;
    res.write(`${start}event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"type":"text_delta","text":"key ${PROVIDER_KEY.slice(0, 40)}`, () => setTimeout(() => res.socket?.destroy(), 10));
  },
  url(res, _headers, url) {
    // A provider echoing the request it got (as error pages do), its URL included.
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ type: 'error', error: { type: 'not_found_error', message: `no route ${url}` } }));
  },
  headers(res) {
    res.writeHead(200, {
      'content-type': 'application/json',
      'request-id': `req_01 ${PROVIDER_KEY}`,
      'anthropic-ratelimit-requests-remaining': `99 ${PROVIDER_KEY}`,
      'anthropic-organization-id': 'org-0123-operator-account',
      'set-cookie': 'provider-session=abc',
    });
    res.end(JSON.stringify({ model: 'claude-haiku-4-5', usage: { input_tokens: 1, output_tokens: 1 } }));
  },
};

beforeAll(async () => {
  provider = createServer((req, res) => {
    seen.push(req.headers);
    targets.push(req.url ?? '');
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    // Answered once the whole request is in, so a test sees its body as soon as it has the answer.
    req.on('end', () => {
      bodies.push(Buffer.concat(chunks).toString('utf8'));
      const answer = /answer=([a-z_]+)/.exec(req.url ?? '')?.[1] ?? 'json';
      ANSWERS[answer]!(res, req.headers, req.url ?? '');
    });
  });
  providerUrl = `http://127.0.0.1:${await listen(provider, 0)}`;
  holder.set(runtimeWithProviderKey(PROVIDER_KEY));
  const logger = createLogger('test-anthropic-answers', { level: 'debug', destination: logs.stream });
  node = createDataPlaneServer({ holder, pool: new UpstreamPool({ holder, logger }), logger });
  nodeUrl = `http://127.0.0.1:${await listen(node, 0)}`;
  // The same configuration behind the secrets guardrail, policy block for everyone.
  const guard = createContentGuard(() => new AuditSettingsIndex([], 'block'));
  guardedNode = createDataPlaneServer({ holder, pool: new UpstreamPool({ holder, logger }), logger, guard });
  guardedUrl = `http://127.0.0.1:${await listen(guardedNode, 0)}`;
});

afterAll(async () => {
  if (guardedNode) await closeServer(guardedNode);
  if (node) await closeServer(node);
  if (provider) await closeServer(provider);
});

interface Answer {
  status: number;
  headers: Headers;
  /** The body as far as it came (a broken answer ends where it broke). */
  text: string;
}

async function call(path: string, headers: Record<string, string> = {}, method = 'POST'): Promise<Answer> {
  const res = await fetch(`${nodeUrl}/anthropic${path}`, {
    method,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${VIRTUAL_KEY}`, ...headers },
    ...(method === 'POST' ? { body: JSON.stringify({ model: 'claude-haiku-4-5', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }) } : {}),
  });
  let text = '';
  const decoder = new TextDecoder();
  const reader = res.body!.getReader();
  try {
    for (let read = await reader.read(); !read.done; read = await reader.read()) text += decoder.decode(read.value, { stream: true });
  } catch {
    // broken off: what came is what the caller saw
  }
  return { status: res.status, headers: res.headers, text };
}

function expectNoKey(answer: Answer): void {
  const everything = unescaped(`${answer.text}\n${JSON.stringify([...answer.headers])}`);
  for (const part of KEY_PARTS) expect(everything).not.toContain(part);
}

describe('/anthropic answers never carry the provider key', () => {
  it.each([
    ['a 200 JSON answer (Messages)', '/v1/messages?answer=json'],
    ['a 200 JSON answer (count_tokens, not metered)', '/v1/messages/count_tokens?answer=json'],
  ])('%s echoing the request headers', async (_label, path) => {
    const before = seen.length;
    const answer = await call(path);
    expect(seen[before]?.['x-api-key']).toBe(PROVIDER_KEY);
    expect(answer.status).toBe(200);
    expect(answer.text).toContain('[redacted]');
    expectNoKey(answer);
  });

  it('a streamed answer with the key split across chunks: redacted, and the stream otherwise intact', async () => {
    const answer = await call('/v1/messages?answer=sse');
    expect(answer.status).toBe(200);
    expectNoKey(answer);
    expect(answer.text).toContain('your key is [redacted]');
    expect(answer.text).toContain('event: message_stop');
  });

  it.each([
    ['a 200 JSON answer', 'unicode_json', 200],
    ['a streamed answer cut inside the escapes', 'unicode_sse', 200],
    ['an error body', 'unicode_error', 500],
  ])('%s spelling the key with JSON \\u escapes', async (_label, answerName, status) => {
    const answer = await call(`/v1/messages?answer=${answerName}`);
    expect(answer.status).toBe(status);
    expect(answer.text).toContain('[redacted]');
    expectNoKey(answer);
    if (answerName === 'unicode_sse') expect(answer.text).toContain('event: message_stop');
  });

  it('a streamed answer the provider breaks off (inside an event echoing the key) ends with an error event, with and without the guardrail', async () => {
    for (const base of [nodeUrl, guardedUrl]) {
      const res = await fetch(`${base}/anthropic/v1/messages?answer=broken_sse`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${VIRTUAL_KEY}` },
        body: JSON.stringify({ model: 'claude-haiku-4-5', max_tokens: 10, stream: true, messages: [{ role: 'user', content: 'hi' }] }),
      });
      const text = await res.text();
      expect(res.status).toBe(200);
      expect(text).toContain('event: message_start');
      expect(text.endsWith('event: error\ndata: {"type":"error","error":{"type":"api_error","message":"the LLM provider \\"anthropic\\" broke off the answer"}}\n\n')).toBe(true);
      expectNoKey({ status: res.status, headers: res.headers, text });
    }
  });

  it('an error body longer than 64 KiB with the key where it used to be cut', async () => {
    const answer = await call('/v1/messages?answer=long_error');
    expect(answer.status).toBe(500);
    expectNoKey(answer);
  });

  it('an error body that breaks off inside the key', async () => {
    const answer = await call('/v1/messages?answer=broken_error');
    expect(answer.status).toBe(400);
    expectNoKey(answer);
  });

  it('relayed headers: the key removed from their values; no account id, no cookie', async () => {
    const answer = await call('/v1/messages?answer=headers');
    expect(answer.status).toBe(200);
    expectNoKey(answer);
    expect(answer.headers.get('request-id')).toBe('req_01 [redacted]');
    expect(answer.headers.get('anthropic-ratelimit-requests-remaining')).toBe('99 [redacted]');
    expect(answer.headers.get('anthropic-organization-id')).toBeNull();
    expect(answer.headers.get('set-cookie')).toBeNull();
  });

  it('a redirect is neither followed nor relayed: a typed 502 for the operator', async () => {
    const before = seen.length;
    const answer = await call('/v1/messages?answer=redirect');
    expect(seen.length).toBe(before + 1);
    expect(answer.status).toBe(502);
    expect(JSON.parse(answer.text)).toMatchObject({ type: 'provider_error', error: { type: 'provider_error' } });
    expect(answer.headers.get('location')).toBeNull();
    expectNoKey(answer);
  });

  it('nothing of the key in the node\'s logs', () => {
    for (const part of KEY_PARTS) expect(logs.text()).not.toContain(part);
  });
});

describe('/anthropic requests never carry the caller\'s key', () => {
  it('an Accept holding the virtual key is not forwarded; a plain one is', async () => {
    let before = seen.length;
    await call('/v1/messages', { accept: `application/json, ${VIRTUAL_KEY}` });
    expect(JSON.stringify(seen[before])).not.toContain(VIRTUAL_KEY);
    expect(JSON.stringify(seen[before])).not.toContain(VIRTUAL_KEY.slice(3));
    expect(seen[before]?.accept).toBe('application/json');
    before = seen.length;
    await call('/v1/messages', { accept: 'text/event-stream' });
    expect(seen[before]?.accept).toBe('text/event-stream');
  });
});

describe('/anthropic with a placeholder provider key (a keyless proxy in the provider\'s place)', () => {
  it.each(['none', 'dummy', 'x'])('a key of "%s" is not cut out of the answers', async (placeholder) => {
    holder.set(runtimeWithProviderKey(placeholder));
    try {
      const before = seen.length;
      const answer = await call('/v1/messages?answer=words');
      expect(seen[before]?.['x-api-key']).toBe(placeholder);
      expect(answer.status).toBe(200);
      expect(JSON.parse(answer.text)).toMatchObject({ content: [{ text: 'none of the dummy values, x' }] });
    } finally {
      holder.set(runtimeWithProviderKey(PROVIDER_KEY));
    }
  });
});

describe('/anthropic behind the secrets guardrail (block)', () => {
  const secret = `ghp_${'Zq7xK2mP9vL4nR8sT1wY6bC3dF5gH0jA'}9xQ2`;

  it('a secret in a key given twice (scanned: the last one) never reaches the provider: it gets what was scanned', async () => {
    const before = bodies.length;
    const raw = `{"model":"claude-haiku-4-5","max_tokens":10,"messages":[{"role":"user","content":"my token is ${secret}"}],"messages":[{"role":"user","content":"hi"}]}`;
    const res = await fetch(`${guardedUrl}/anthropic/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${VIRTUAL_KEY}` }, body: raw });
    await res.text();
    expect(res.status).toBe(200);
    const sent = bodies.slice(before);
    expect(sent).toHaveLength(1);
    expect(sent[0]).not.toContain(secret);
    expect(JSON.parse(sent[0]!)).toMatchObject({ messages: [{ role: 'user', content: 'hi' }] });
  });

  it('the same secret sent once is refused before the provider (control)', async () => {
    const before = bodies.length;
    const res = await fetch(`${guardedUrl}/anthropic/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${VIRTUAL_KEY}` },
      body: JSON.stringify({ model: 'claude-haiku-4-5', max_tokens: 10, messages: [{ role: 'user', content: `my token is ${secret}` }] }),
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ type: 'secret_detected' });
    expect(bodies.length).toBe(before);
  });
});

describe('/anthropic with a provider key holding a slash', () => {
  it('an error body spelling it JSON-escaped (\\/) does not hand it over', async () => {
    const key = 'Zq7xK2mP9vL4/nR8sT1wY6bC3+dF5gH0jA/uE==';
    holder.set(runtimeWithProviderKey(key));
    try {
      const answer = await call('/v1/messages?answer=escaped');
      expect(answer.status).toBe(400);
      expect(answer.text).toContain('[redacted]');
      expect(answer.text).not.toContain(key.replaceAll('/', '\\/').slice(0, 16));
      expect(answer.text).not.toContain('nR8sT1wY6bC3');
    } finally {
      holder.set(runtimeWithProviderKey(PROVIDER_KEY));
    }
  });
});

describe('/anthropic with a provider base URL holding a path, a query key and a fragment', () => {
  const QUERY_KEY = `qk${PROVIDER_KEY.slice(20, 60)}`;

  it('the call\'s path is joined onto the base path, the base query kept and the caller\'s merged after it', async () => {
    holder.set(runtimeWithProviderKey(PROVIDER_KEY, `${providerUrl}/gateway/?api-key=${QUERY_KEY}&region=eu#frag`));
    try {
      let before = targets.length;
      let answer = await call('/v1/messages?beta=true&answer=json');
      expect(answer.status).toBe(200);
      expect(targets[before]).toBe(`/gateway/v1/messages?api-key=${QUERY_KEY}&region=eu&beta=true&answer=json`);
      // Without a query of the caller's, and on the GET route.
      before = targets.length;
      answer = await call('/v1/models/claude-haiku-4-5', {}, 'GET');
      expect(answer.status).toBe(200);
      expect(targets[before]).toBe(`/gateway/v1/models/claude-haiku-4-5?api-key=${QUERY_KEY}&region=eu`);
      // The caller can neither replace nor repeat a parameter the base sets.
      before = targets.length;
      await call('/v1/messages/count_tokens?api-key=mine&region=us&answer=json');
      expect(targets[before]).toBe(`/gateway/v1/messages/count_tokens?api-key=${QUERY_KEY}&region=eu&answer=json`);
    } finally {
      holder.set(runtimeWithProviderKey(PROVIDER_KEY));
    }
  });

  it('a provider echoing its request URL does not hand the query key over', async () => {
    holder.set(runtimeWithProviderKey(PROVIDER_KEY, `${providerUrl}/gateway?api-key=${QUERY_KEY}`));
    try {
      const answer = await call('/v1/messages?answer=url');
      expect(answer.status).toBe(404);
      expect(answer.text).toContain('no route');
      expect(answer.text).not.toContain(QUERY_KEY);
      expect(answer.text).not.toContain(QUERY_KEY.slice(0, 12));
    } finally {
      holder.set(runtimeWithProviderKey(PROVIDER_KEY));
    }
  });
});
