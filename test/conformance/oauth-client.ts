/**
 * Gatehouse as the OAuth client of a conformance scenario's MCP server (`conformance client --suite auth`
 * runs this with the scenario server's URL as its last argument). A Gatehouse control plane starts in
 * process (SQLite, temp dir), registers the URL as an OAUTH server (with the scenario's pre-registered
 * client from MCP_CONFORMANCE_CONTEXT, if any), runs `startServerOAuth` and follows its one-time link to the authorization URL
 * as a browser would (the scenario's authorization server approves at once) back to Gatehouse's callback,
 * then calls the server with the token Gatehouse holds: initialize, tools/list, tools/call, refreshing
 * through Gatehouse after a 401 once. Exit code 0 when the whole sequence worked.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { createControlPlane } from '../../control-plane/app.js';
import { createLogger } from '../../control-plane/log.js';

function fail(message: string): never {
  process.stderr.write(`oauth-client: ${message}\n`);
  process.exit(1);
}

interface Context {
  client_id?: string;
  client_secret?: string;
}

async function main(): Promise<void> {
  const serverUrl = process.argv[process.argv.length - 1];
  if (!serverUrl?.startsWith('http')) fail('usage: oauth-client.ts <server-url>');
  const context = JSON.parse(process.env.MCP_CONFORMANCE_CONTEXT ?? '{}') as Context;
  const dataDir = mkdtempSync(join(tmpdir(), 'gatehouse-oauth-conformance-'));
  const adminToken = `gha_conf${randomBytes(16).toString('hex')}`;
  const quiet = new Writable({ write: (_c, _e, done) => done() });
  const cp = await createControlPlane({
    port: 0,
    dataDir,
    env: { GATEHOUSE_ADMIN_TOKEN: adminToken },
    allowInsecureOAuth: true,
    logger: createLogger('conformance-cp', { destination: quiet as never }),
  });
  const gql = async <T,>(query: string, variables?: Record<string, unknown>): Promise<T> => {
    const res = await fetch(`${cp.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${adminToken}` },
      body: JSON.stringify({ query, variables }),
    });
    const body = (await res.json()) as { data?: T; errors?: unknown[] };
    if (body.errors?.length || !body.data) fail(`GraphQL: ${JSON.stringify(body.errors)}`);
    return body.data;
  };
  try {
    await gql(`mutation($i: CreateMcpServerInput!) { createMcpServer(input: $i) { errors { message } } }`, {
      i: { name: 'scenario', connectionType: 'HTTP', connectionString: serverUrl, authType: 'OAUTH', toolsToExecute: ['*'] },
    });
    if (context.client_id) {
      await gql(`mutation($i: McpServerOAuthInput!) { setMcpServerOAuth(input: $i) { errors { message } } }`, {
        i: { name: 'scenario', clientId: context.client_id, ...(context.client_secret ? { clientSecret: context.client_secret } : {}) },
      });
    }
    /** An admin's part: startServerOAuth, then the browser following redirects back to the callback. */
    const authorize = async (): Promise<void> => {
      const started = await gql<{ startServerOAuth: { url: string | null; errors: Array<{ code: string; message: string }> } }>(
        'mutation { startServerOAuth(name: "scenario") { url errors { code message } } }',
      );
      if (!started.startServerOAuth.url) fail(`startServerOAuth: ${JSON.stringify(started.startServerOAuth.errors)}`);
      // A one-time control-plane link: it sets the cookie binding the flow to this browser, which the
      // callback on the same origin requires.
      let url = new URL(started.startServerOAuth.url);
      let landed: Response | null = null;
      const cpCookies = new Map<string, string>();
      // The link's page shows a Continue form first (its GET spends nothing): the browser presses it once.
      let form: URLSearchParams | null = null;
      for (let hop = 0; hop < 10; hop++) {
        const cookie = url.origin === cp.url ? [...cpCookies].map(([k, v]) => `${k}=${v}`).join('; ') : '';
        const headers: Record<string, string> = cookie ? { cookie } : {};
        if (form) headers['content-type'] = 'application/x-www-form-urlencoded';
        const res: Response = await fetch(url, { redirect: 'manual', headers, ...(form ? { method: 'POST', body: form } : {}) });
        form = null;
        if (url.origin === cp.url) {
          for (const line of res.headers.getSetCookie()) {
            const pair = line.split(';')[0] ?? '';
            const eq = pair.indexOf('=');
            if (eq > 0) cpCookies.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
          }
        }
        const location = res.headers.get('location');
        if (res.status >= 300 && res.status < 400 && location) {
          url = new URL(location, url);
          continue;
        }
        if (url.origin === cp.url && url.pathname.startsWith('/oauth/start/') && res.status === 200 && hop === 0) {
          const csrf: string | undefined = /name="csrf" value="([^"]+)"/.exec(await res.text())?.[1];
          if (csrf) {
            form = new URLSearchParams({ csrf });
            continue;
          }
        }
        landed = res;
        break;
      }
      if (!landed || !url.href.startsWith(`${cp.url}/oauth/callback`)) fail(`authorization did not come back to the callback (at ${url.origin}${url.pathname})`);
      if (landed.status !== 200) fail(`callback refused (HTTP ${landed.status}): ${(await landed.text()).replace(/<[^>]+>/g, ' ').slice(0, 300)}`);
    };

    /** What a node does with the token Gatehouse holds: 'ok', or 'unauthorized' on a 401. */
    const useToken = async (token: string): Promise<'ok' | 'unauthorized'> => {
      if (process.env.MCP_CONFORMANCE_PROTOCOL_VERSION === '2026-07-28') {
        // A stateless 2026-07-28 server: tools/list, then a call of its first tool, each with the
        // per-request headers and _meta.
        const version = '2026-07-28';
        const meta = {
          'io.modelcontextprotocol/protocolVersion': version,
          'io.modelcontextprotocol/clientInfo': { name: 'gatehouse-conformance', version: '1.0.0' },
          'io.modelcontextprotocol/clientCapabilities': {},
        };
        const post = async (method: string, params: Record<string, unknown>, name?: string): Promise<Response> =>
          fetch(serverUrl, {
            method: 'POST',
            headers: {
              authorization: `Bearer ${token}`,
              'content-type': 'application/json',
              accept: 'application/json, text/event-stream',
              'mcp-protocol-version': version,
              'mcp-method': method,
              ...(name ? { 'mcp-name': name } : {}),
            },
            body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params: { ...params, _meta: meta } }),
          });
        const listed = await post('tools/list', {});
        if (listed.status === 401) return 'unauthorized';
        if (!listed.ok) fail(`tools/list answered HTTP ${listed.status}`);
        const text = await listed.text();
        const json = JSON.parse(/^data: (.*)$/m.exec(text)?.[1] ?? text) as { result?: { tools?: Array<{ name: string }> } };
        const first = json.result?.tools?.[0]?.name;
        if (first) {
          const called = await post('tools/call', { name: first, arguments: {} }, first);
          await called.body?.cancel();
          if (called.status === 401) return 'unauthorized';
        }
        return 'ok';
      }
      const client = new Client({ name: 'gatehouse-conformance', version: '1.0.0' });
      try {
        await client.connect(new StreamableHTTPClientTransport(new URL(serverUrl), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
        const { tools } = await client.listTools();
        const first = tools[0];
        if (first) await client.callTool({ name: first.name, arguments: {} });
        return 'ok';
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        if (/401/.test(message)) return 'unauthorized';
        return fail(`MCP calls failed: ${message.slice(0, 300)}`);
      } finally {
        await client.close().catch(() => undefined);
      }
    };

    await authorize();
    const server = await cp.db.selectFrom('mcp_servers').select('id').where('name', '=', 'scenario').executeTakeFirstOrThrow();
    let token = await cp.oauth.accessToken(server.id, null);
    if ((await useToken(token.token)) === 'ok') return;
    // Refused: Gatehouse refreshes (as after a node's 401 report) ...
    try {
      token = await cp.oauth.accessToken(server.id, null, { rejectedGeneration: token.generation });
      if ((await useToken(token.token)) === 'ok') return;
    } catch {
      // ... and when that cannot help, an admin authorizes again: discovery finds the (possibly new)
      // authorization server, and a new issuer gets its own client registration.
    }
    await authorize();
    token = await cp.oauth.accessToken(server.id, null);
    if ((await useToken(token.token)) !== 'ok') fail('still refused after authorizing again');
  } finally {
    await cp.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => fail(error instanceof Error ? error.message : String(error)),
);
