/**
 * Per-user OAuth end to end: control plane + node + oidc-provider + an MCP server that checks bearer
 * tokens and reports their subject. A call with no credential gets the auth-required answer (tool error
 * with mcp_auth_required, or -32042 for clients that declared URL elicitation) and never reaches the
 * upstream; after each user connects through the link, each call carries that user's own token; one
 * user can never cause another's token to be used (key, headers, replayed link). The shared OAUTH server
 * works through the node with the admin's token.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNode, type DataPlaneNode } from '../../data-plane/node/node.js';
import { createLogger } from '../../data-plane/log.js';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { LogCapture } from '../support/log-capture.js';
import { postMcp } from '../support/mcp-http.js';
import {
  connectWithLink,
  loginAndConsent,
  startAuthorizationServer,
  startProtectedMcpServer,
  type AuthorizationServer,
  type ProtectedMcpServer,
} from '../support/oauth-upstream.js';
import { waitFor } from '../support/wait.js';

interface ToolResult {
  content?: Array<{ type: string; text?: string }>;
  isError?: boolean;
  structuredContent?: { mcp_auth_required?: { kind: string; server: string; url: string } };
  _meta?: { mcp_auth_required?: { kind: string; server: string; url: string } };
}

interface RpcBody {
  result?: ToolResult;
  error?: { code: number; message: string; data?: { elicitations?: Array<{ mode: string; url: string; elicitationId: string }> } };
}

describe('per-user OAuth through a node', () => {
  let as: AuthorizationServer;
  let upstream: ProtectedMcpServer;
  let cp: TestControlPlane;
  let node: DataPlaneNode;
  const nodeLogs = new LogCapture();
  const keys: Record<string, string> = {};

  async function call(who: string, tool = 'notes-whoami', meta?: Record<string, unknown>): Promise<RpcBody> {
    const params: Record<string, unknown> = { name: tool, arguments: {} };
    if (meta) params._meta = meta;
    const response = await postMcp(node.url, keys[who] ?? null, { id: 1, method: 'tools/call', params });
    expect(response.status).toBe(200);
    return response.body as RpcBody;
  }

  const text = (body: RpcBody): string => (body.result?.content ?? []).map((c) => c.text ?? '').join('');

  beforeAll(async () => {
    as = await startAuthorizationServer();
    upstream = await startProtectedMcpServer(as);
    cp = await startTestControlPlane();
    for (const name of ['notes', 'crm']) {
      await cp.gql(
        `mutation($i: CreateMcpServerInput!) { createMcpServer(input: $i) { errors { code message } } }`,
        { i: { name, connectionType: 'HTTP', connectionString: upstream.url, authType: name === 'notes' ? 'PER_USER_OAUTH' : 'OAUTH', toolsToExecute: ['*'] } },
      );
    }
    for (const who of ['alice', 'bob']) {
      const user = await cp.gql<{ createUser: { user: { id: string } } }>(`mutation { createUser(input: { email: "${who}@example.com" }) { user { id } errors { code } } }`);
      const key = await cp.gql<{ createVirtualKey: { key: string } }>(
        `mutation($i: CreateVirtualKeyInput!) { createVirtualKey(input: $i) { key errors { code message } } }`,
        { i: { name: `${who}-key`, userId: user.createUser.user.id, servers: [{ server: 'notes', tools: ['*'] }, { server: 'crm', tools: ['*'] }] } },
      );
      keys[who] = key.createVirtualKey.key;
    }
    node = await startNode({
      controlPlaneUrl: cp.url,
      nodeToken: cp.cp.nodeToken,
      port: 0,
      stateDir: null,
      logger: createLogger('test-node', { destination: nodeLogs, level: 'debug' }),
    });
    await waitFor(async () => (await fetch(`${node.url}/readyz`)).ok, { what: 'node ready' });
  }, 30_000);

  afterAll(async () => {
    await node?.close();
    await cp?.close();
    await upstream?.close();
    await as?.close();
  });

  let aliceUrl = '';

  it('before anyone connected, tools/list offers the connect tool, which answers auth-required', async () => {
    const listed = await postMcp(node.url, keys.alice ?? null, { id: 9, method: 'tools/list', params: {} });
    const names = (listed.body as { result: { tools: Array<{ name: string }> } }).result.tools.map((t) => t.name);
    expect(names).toEqual(['notes-gatehouse_connect_account']);
    const connect = await call('alice', 'notes-gatehouse_connect_account');
    expect(connect.result?.isError).toBe(true);
    expect(connect.result?.structuredContent?.mcp_auth_required).toMatchObject({ kind: 'oauth', server: 'notes' });
    expect(upstream.callers).toEqual([]);
  });

  it('a call without a credential answers auth-required and never reaches the upstream', async () => {
    const body = await call('alice');
    expect(body.result?.isError).toBe(true);
    const required = body.result?.structuredContent?.mcp_auth_required;
    expect(required).toMatchObject({ kind: 'oauth', server: 'notes' });
    expect(body.result?._meta?.mcp_auth_required).toEqual(required);
    aliceUrl = required?.url ?? '';
    expect(aliceUrl).toMatch(new RegExp(`^${cp.url}/connect/ghc_`));
    expect(text(body)).toBe(`Authentication required for notes. Open this URL to connect your account: ${aliceUrl}`);
    expect(upstream.callers).toEqual([]);

    // A client that declared URL-mode elicitation gets MCP's URLElicitationRequiredError instead.
    const elicited = await call('alice', 'notes-whoami', { 'io.modelcontextprotocol/clientCapabilities': { elicitation: { url: {} } } });
    expect(elicited.error?.code).toBe(-32042);
    expect(elicited.error?.data?.elicitations?.[0]).toMatchObject({ mode: 'url', url: expect.stringMatching(/\/connect\/ghc_/) });
    expect(upstream.callers).toEqual([]);
  });

  it('after each user connects, each call carries that user\'s own token', async () => {
    const connected = await connectWithLink(aliceUrl, 'alice-sub');
    expect(connected.status).toBe(200);
    expect(connected.body).toContain('go back to Claude Code');
    expect(text(await call('alice'))).toBe('sub:alice-sub');

    // Bob has not connected: Alice's credential is not his.
    const bobFirst = await call('bob');
    expect(bobFirst.result?.isError).toBe(true);
    const bobUrl = bobFirst.result?.structuredContent?.mcp_auth_required?.url ?? '';
    expect(bobUrl).not.toBe(aliceUrl);
    // Alice's spent link cannot be replayed (by Bob or anyone).
    const replay = await connectWithLink(aliceUrl, 'bob-sub');
    expect(replay.status).toBe(410);
    expect(replay.body).toContain('already used');
    expect(text(await call('alice'))).toBe('sub:alice-sub');

    expect((await connectWithLink(bobUrl, 'bob-sub')).status).toBe(200);
    expect(text(await call('bob'))).toBe('sub:bob-sub');
    expect(text(await call('alice'))).toBe('sub:alice-sub');
    expect(upstream.callers).toEqual(['alice-sub', 'alice-sub', 'bob-sub', 'alice-sub']);
  });

  it('once connected, the connect tool says so without calling the upstream', async () => {
    const before = upstream.callers.length;
    expect(text(await call('alice', 'notes-gatehouse_connect_account'))).toContain('account is connected');
    expect(upstream.callers.length).toBe(before);
  });

  it('tools/list shows a user their per-user server\'s tools', async () => {
    const response = await postMcp(node.url, keys.bob ?? null, { id: 2, method: 'tools/list', params: {} });
    const tools = ((response.body as { result: { tools: Array<{ name: string }> } }).result.tools ?? []).map((t) => t.name);
    expect(tools).toContain('notes-whoami');
  });

  it('nothing a caller sends can select another user\'s credential', async () => {
    // Headers naming another identity, a session id, a bogus Authorization: identity comes from the key only.
    const res = await fetch(`${node.url}/mcp`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        authorization: `Bearer ${keys.bob}`,
        'x-gatehouse-user': 'alice',
        'mcp-session-id': 'alice',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'notes-whoami', arguments: {}, _meta: { userId: 'alice' } } }),
    });
    expect(text((await res.json()) as RpcBody)).toBe('sub:bob-sub');
  });

  it('a shared OAUTH server is served with the admin\'s token once authorized', async () => {
    const before = await call('alice', 'crm-whoami');
    expect(before.result?.isError).toBe(true);
    expect(text(before)).toContain('startServerOAuth');
    const started = await cp.gql<{ startServerOAuth: { url: string } }>('mutation { startServerOAuth(name: "crm") { url errors { code } } }');
    expect((await loginAndConsent(started.startServerOAuth.url, 'ops-admin')).status).toBe(200);
    expect(text(await call('alice', 'crm-whoami'))).toBe('sub:ops-admin');
    expect(text(await call('bob', 'crm-whoami'))).toBe('sub:ops-admin');
  });

  it('no token leaks into node logs, control-plane logs or GraphQL responses', async () => {
    const rows = await cp.cp.db.selectFrom('oauth_credentials').select(['server_id', 'user_id']).execute();
    expect(rows.length).toBe(3);
    for (const row of rows) {
      const token = await cp.cp.oauth.accessToken(row.server_id, row.user_id);
      expect(nodeLogs.text()).not.toContain(token.token);
      expect(cp.logs.text()).not.toContain(token.token);
      expect(cp.responses.join('\n')).not.toContain(token.token);
    }
  });
});
