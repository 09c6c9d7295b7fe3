/**
 * An upstream that echoes the credential the gateway injected back in a tool's *result* (a debug tool, a
 * "you called me with …" text) must not hand it to the caller, who is never to hold it. `/mcp/{server}`
 * over HTTP scrubbed whole answers already (b7277ca); the aggregated `/mcp` scrubbed only errors, and the
 * pooled SDK connections (legacy SSE, stdio) only errors on both routes: a result carried the server's
 * Authorization or API key to the caller as sent. Now every result is searched (on its raw JSON text where
 * the node has it, so the common result costs a string search) and the credential removed. Real MCP SDK
 * upstreams over Streamable HTTP and legacy SSE, each with a `whoami` tool that returns a request header.
 */
import { randomBytes } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSnapshot, postMcp, startTestNode, type BuiltSnapshot, type TestNode } from '../data-plane/helpers.js';
import { startHttpUpstream, startSseUpstream, type HttpUpstream } from '../support/upstreams.js';

// A `/` in the token: JSON may spell it `\/`, and the raw-text search must not miss it for that.
const TOKEN = `tok/${randomBytes(12).toString('hex')}`;
const API_KEY = `key-${randomBytes(12).toString('hex')}`;

let http: HttpUpstream;
let sse: HttpUpstream;
let node: TestNode;
let snapshot: BuiltSnapshot;

beforeAll(async () => {
  http = await startHttpUpstream({ label: 'crm' });
  sse = await startSseUpstream({ label: 'kb' });
  node = await startTestNode();
  // And a plain configured header: ordinary text, never taken for a secret (answers may well contain it).
  const headers = { authorization: { secret: `Bearer ${TOKEN}` }, 'x-api-key': { secret: API_KEY }, 'x-tenant': 'production-eu' };
  snapshot = await buildSnapshot({
    servers: [
      { name: 'crm', url: http.url, headers },
      { name: 'kb', connectionType: 'SSE', url: sse.url, headers },
    ],
    keys: [{ name: 'dev', servers: [{ server: 'crm', tools: ['whoami', 'echo'] }, { server: 'kb', tools: ['whoami'] }] }],
    // /mcp/{server} in front of a sessionful upstream seals the caller's session with it.
    sessionSecrets: { current: { id: 'e1', secret: randomBytes(32).toString('base64url') } },
  });
  node.apply(snapshot);
});

afterAll(async () => {
  for (const client of clients.values()) await client.close().catch(() => undefined);
  await node?.close();
  await http?.close();
  await sse?.close();
});

const clients = new Map<string, Client>();

/** The tools/call's whole answer as the caller gets it: raw on /mcp, through an MCP SDK client (initialized session) on /mcp/{server}. */
async function call(path: string, name: string, args: Record<string, unknown>): Promise<string> {
  const authorization = `Bearer ${snapshot.keyValues.dev ?? ''}`;
  if (path === '/mcp') return (await postMcp(`${node.url}${path}`, { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name, arguments: args } }, { authorization })).text();
  let client = clients.get(path);
  if (!client) {
    client = new Client({ name: 'echo-results', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${node.url}${path}`), { requestInit: { headers: { authorization } } }));
    clients.set(path, client);
  }
  return JSON.stringify(await client.callTool({ name, arguments: args }));
}

describe('an upstream echoing the injected credential in a result', () => {
  for (const [route, path, prefix] of [
    ['/mcp', '/mcp', 'crm-'],
    ['/mcp/{server}', '/mcp/crm', ''],
  ] as const) {
    it(`${route} over Streamable HTTP: neither the Authorization token nor the API key reaches the caller`, async () => {
      const auth = await call(path, `${prefix}whoami`, { header: 'authorization' });
      expect(auth).toContain('[redacted]');
      expect(auth).not.toContain(TOKEN);
      expect(auth).not.toContain(TOKEN.replace('/', '\\/'));
      const key = await call(path, `${prefix}whoami`, { header: 'x-api-key' });
      expect(key).toContain('[redacted]');
      expect(key).not.toContain(API_KEY);
    });
  }

  for (const [route, path, prefix] of [
    ['/mcp', '/mcp', 'kb-'],
    ['/mcp/{server}', '/mcp/kb', ''],
  ] as const) {
    it(`${route} over a pooled legacy SSE connection: the same`, async () => {
      const auth = await call(path, `${prefix}whoami`, { header: 'authorization' });
      expect(auth).toContain('[redacted]');
      expect(auth).not.toContain(TOKEN);
      const key = await call(path, `${prefix}whoami`, { header: 'x-api-key' });
      expect(key).not.toContain(API_KEY);
    });
  }

  it("a plain configured header's value is not a secret: echoed back, it passes on both routes", async () => {
    for (const [path, name] of [
      ['/mcp', 'crm-whoami'],
      ['/mcp/crm', 'whoami'],
      ['/mcp', 'kb-whoami'],
    ] as const) {
      const echoed = await call(path, name, { header: 'x-tenant' });
      expect(echoed).toContain('production-eu');
      expect(echoed).not.toContain('[redacted]');
    }
  });

  it('a result without the credential passes unchanged', async () => {
    const echoed = JSON.parse(await call('/mcp', 'crm-echo', { text: 'hello' })) as { result: { content: { text: string }[] } };
    expect(echoed.result.content[0]?.text).toBe('crm:hello');
  });
});
