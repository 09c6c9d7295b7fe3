/**
 * Gatehouse as the OAuth client of a conformance scenario's MCP server (`conformance client --suite auth`
 * runs this with the scenario server's URL as its last argument). A Gatehouse control plane starts in
 * process (SQLite, temp dir), registers the URL as an OAUTH server (with the scenario's pre-registered
 * client from MCP_CONFORMANCE_CONTEXT, if any), runs `startServerOAuth` and follows the authorization URL
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
    const started = await gql<{ startServerOAuth: { url: string | null; errors: Array<{ code: string; message: string }> } }>(
      'mutation { startServerOAuth(name: "scenario") { url errors { code message } } }',
    );
    if (!started.startServerOAuth.url) fail(`startServerOAuth: ${JSON.stringify(started.startServerOAuth.errors)}`);

    // The browser's part: follow redirects from the authorization endpoint to Gatehouse's callback.
    let url = new URL(started.startServerOAuth.url);
    let landed: Response | null = null;
    for (let hop = 0; hop < 10; hop++) {
      const res = await fetch(url, { redirect: 'manual' });
      const location = res.headers.get('location');
      if (res.status >= 300 && res.status < 400 && location) {
        url = new URL(location, url);
        continue;
      }
      landed = res;
      break;
    }
    if (!landed || !url.href.startsWith(`${cp.url}/oauth/callback`)) fail(`authorization did not come back to the callback (at ${url.origin}${url.pathname})`);
    if (landed.status !== 200) fail(`callback refused (HTTP ${landed.status}): ${(await landed.text()).replace(/<[^>]+>/g, ' ').slice(0, 300)}`);

    const server = await cp.db.selectFrom('mcp_servers').select('id').where('name', '=', 'scenario').executeTakeFirstOrThrow();
    let token = await cp.oauth.accessToken(server.id, null);
    for (let attempt = 0; attempt < 2; attempt++) {
      const client = new Client({ name: 'gatehouse-conformance', version: '1.0.0' });
      try {
        await client.connect(new StreamableHTTPClientTransport(new URL(serverUrl), { requestInit: { headers: { authorization: `Bearer ${token.token}` } } }));
        const { tools } = await client.listTools();
        const first = tools[0];
        if (first) await client.callTool({ name: first.name, arguments: {} });
        await client.close();
        return;
      } catch (error) {
        await client.close().catch(() => undefined);
        const message = error instanceof Error ? error.message : String(error);
        if (attempt === 0 && /401/.test(message)) {
          token = await cp.oauth.accessToken(server.id, null, { rejectedGeneration: token.generation });
          continue;
        }
        fail(`MCP calls failed: ${message.slice(0, 300)}`);
      }
    }
  } finally {
    await cp.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => fail(error instanceof Error ? error.message : String(error)),
);
