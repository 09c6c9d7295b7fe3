/**
 * `/anthropic`: the provider's API key never reaches the caller, even when the provider (or a proxy in its
 * place) echoes it in an error body; and the caller's own credentials never reach the provider, whichever
 * of `Authorization` / `x-api-key` carries the virtual key and whatever the other one holds.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RuntimeHolder } from '../../data-plane/config/runtime.js';
import { createLogger } from '../../data-plane/log.js';
import { createDataPlaneServer } from '../../data-plane/node/data-plane-server.js';
import { UpstreamPool } from '../../data-plane/upstream/pool.js';
import { LogCapture, newKeyValue } from '../data-plane/helpers.js';
import { providerRuntime } from '../support/provider-runtime.js';
import { closeServer, listen } from '../support/upstreams.js';
import { parseResponses, rawRequest, sendRaw } from './raw-http.js';

const PROVIDER_KEY = `sk-ant-echo-${Date.now().toString(36)}-secretvalue`;
const VIRTUAL_KEY = newKeyValue();
const CALLER_OWN_KEY = 'sk-ant-callers-own-key-0123456789';

let provider: Server;
let node: Server;
let nodeUrl: string;
const seen: IncomingHttpHeaders[] = [];
/** The path (and query) of every request the provider received. */
const paths: string[] = [];
const logs = new LogCapture();

beforeAll(async () => {
  provider = createServer((req, res) => {
    seen.push(req.headers);
    paths.push(req.url ?? '');
    req.resume();
    const key = String(req.headers['x-api-key'] ?? '');
    const status = req.url?.includes('status=') ? Number(/status=(\d+)/.exec(req.url)?.[1]) : 401;
    res.writeHead(status, { 'content-type': req.url?.includes('text=1') ? 'text/plain' : 'application/json' });
    res.end(JSON.stringify({ type: 'error', error: { type: 'authentication_error', message: `invalid x-api-key: ${key}`, headers: req.headers } }));
  });
  const providerUrl = `http://127.0.0.1:${await listen(provider, 0)}`;
  const holder = new RuntimeHolder();
  holder.set(providerRuntime({ baseUrl: providerUrl, apiKey: PROVIDER_KEY, keys: VIRTUAL_KEY }));
  const logger = createLogger('test-anthropic-echo', { level: 'debug', destination: logs.stream });
  node = createDataPlaneServer({ holder, pool: new UpstreamPool({ holder, logger }), logger });
  nodeUrl = `http://127.0.0.1:${await listen(node, 0)}`;
});

afterAll(async () => {
  if (node) await closeServer(node);
  if (provider) await closeServer(provider);
});

async function call(query: string, headers: Record<string, string>): Promise<{ status: number; text: string }> {
  const res = await fetch(`${nodeUrl}/anthropic/v1/messages${query}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ model: 'claude-haiku-4-5', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }),
  });
  return { status: res.status, text: await res.text() };
}

describe('/anthropic and the provider key', () => {
  for (const [label, query] of [['401 JSON', ''], ['500 JSON', '?status=500'], ['400 text', '?status=400&text=1'], ['429', '?status=429']] as const) {
    it(`a provider error echoing its key (${label}) reaches the caller without it`, async () => {
      const before = seen.length;
      const answer = await call(query, { authorization: `Bearer ${VIRTUAL_KEY}` });
      expect(seen.length).toBe(before + 1);
      expect(seen[before]?.['x-api-key']).toBe(PROVIDER_KEY);
      // A 401 is the gateway's own 502 (the provider refused the gateway's key); other statuses pass.
      expect(answer.status).toBe(query === '' ? 502 : Number(/status=(\d+)/.exec(query)?.[1]));
      expect(answer.text).not.toContain(PROVIDER_KEY);
      expect(answer.text).not.toContain(VIRTUAL_KEY);
      expect(logs.text()).not.toContain(PROVIDER_KEY);
    });
  }

  it('the caller\'s own x-api-key beside a Bearer virtual key never reaches the provider; nor does a virtual key in x-api-key beside another Authorization', async () => {
    const before = seen.length;
    await call('', { authorization: `Bearer ${VIRTUAL_KEY}`, 'x-api-key': CALLER_OWN_KEY, cookie: 'session=abc' });
    const sent = seen[before] ?? {};
    expect(JSON.stringify(sent)).not.toContain(CALLER_OWN_KEY);
    expect(JSON.stringify(sent)).not.toContain(VIRTUAL_KEY);
    expect(sent.cookie).toBeUndefined();
    expect(sent.authorization).toBeUndefined();
  });
});

describe('/anthropic paths reach only the allowlisted provider paths', () => {
  // Raw requests: fetch would resolve the dot segments itself. The node built the provider URL with
  // `new URL`, which resolves them: `/v1/models/..` went to the provider's `/v1/` with its API key.
  it.each(['/anthropic/v1/models/..', '/anthropic/v1/models/.', '/anthropic/v1/models/%2e%2e', '/anthropic/v1/models/../messages', '/anthropic/./v1/models', '/anthropic/v1//models'])(
    'GET %s is a typed 404, nothing sent to the provider',
    async (path) => {
      const before = paths.length;
      const [answer] = parseResponses(await sendRaw(nodeUrl, rawRequest('GET', path, [`Authorization: Bearer ${VIRTUAL_KEY}`])));
      expect(answer?.status).toBe(404);
      expect(JSON.parse(answer?.body ?? '')).toMatchObject({ type: 'not_found' });
      expect(paths.slice(before)).toEqual([]);
    },
  );

  it('a model id with dots inside still passes (control)', async () => {
    const before = paths.length;
    await sendRaw(nodeUrl, rawRequest('GET', '/anthropic/v1/models/claude-3.5-sonnet', [`Authorization: Bearer ${VIRTUAL_KEY}`]));
    expect(paths.slice(before)).toEqual(['/v1/models/claude-3.5-sonnet']);
  });
});
