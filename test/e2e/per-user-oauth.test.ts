/**
 * Per-user OAuth end to end: control plane + node + oidc-provider + an MCP server that checks bearer
 * tokens and reports their subject. A call with no credential gets the auth-required answer (tool error
 * with mcp_auth_required, or -32042 for clients that declared URL elicitation) and never reaches the
 * upstream; after each user connects through the link, each call carries that user's own token; one
 * user can never cause another's token to be used (key, headers, replayed link). The shared OAUTH server
 * works through the node with the admin's token.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UrlElicitationRequiredError } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NODE_CREDENTIALS_PATH, openCredentialAnswer } from '../../data-plane/snapshot/credential-protocol.js';
import { generateNodeKeyPair } from '../../data-plane/snapshot/seal.js';
import { NODE_ID_HEADER, NODE_KEY_HEADER } from '../../data-plane/snapshot/stream-protocol.js';
import { startNode, type DataPlaneNode } from '../../data-plane/node/node.js';
import { createLogger } from '../../data-plane/log.js';
import { flowVerifierAad } from '../../control-plane/repos/oauth.js';
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
import { scrapeNodeMetrics, TEST_METRICS_TOKEN } from '../support/node-metrics.js';

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
  /** Every connect/callback page a person saw, and the state of every authorization, for the leak search. */
  const pages: string[] = [];
  const states: string[] = [];

  async function connect(url: string, login: string): Promise<{ status: number; body: string }> {
    const result = await connectWithLink(url, login, { onAuthorizationUrl: (u) => states.push(new URL(u).searchParams.get('state') ?? '') });
    pages.push(result.body);
    return result;
  }

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
      env: { ...process.env, GATEHOUSE_METRICS_TOKEN: TEST_METRICS_TOKEN },
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
    // Under MCP 2026-07-28 (no server-to-client requests) the same is an InputRequiredResult with a URL elicitation.
    const modern = (await call('alice', 'notes-whoami', {
      'io.modelcontextprotocol/protocolVersion': '2026-07-28',
      'io.modelcontextprotocol/clientCapabilities': { elicitation: { url: {} } },
    })) as unknown as { result: { resultType: string; inputRequests: Record<string, { method: string; params: { mode: string; url: string } }> } };
    expect(modern.result.resultType).toBe('input_required');
    expect(modern.result.inputRequests.connect_account).toMatchObject({ method: 'elicitation/create', params: { mode: 'url', url: expect.stringMatching(/\/connect\/ghc_/) } });
    expect(elicited.error?.data?.elicitations?.[0]).toMatchObject({ mode: 'url', url: expect.stringMatching(/\/connect\/ghc_/) });
    expect(upstream.callers).toEqual([]);
  });

  it('after each user connects, each call carries that user\'s own token', async () => {
    const connected = await connect(aliceUrl, 'alice-sub');
    expect(connected.status).toBe(200);
    expect(connected.body).toContain('go back to Claude Code');
    expect(text(await call('alice'))).toBe('sub:alice-sub');

    // Bob has not connected: Alice's credential is not his.
    const bobFirst = await call('bob');
    expect(bobFirst.result?.isError).toBe(true);
    const bobUrl = bobFirst.result?.structuredContent?.mcp_auth_required?.url ?? '';
    expect(bobUrl).not.toBe(aliceUrl);
    // Alice's spent link cannot be replayed (by Bob or anyone).
    const replay = await connect(aliceUrl, 'bob-sub');
    expect(replay.status).toBe(410);
    expect(replay.body).toContain('already used');
    expect(text(await call('alice'))).toBe('sub:alice-sub');

    // Bob's link, finished in another browser (someone lured into completing it): refused, nothing stored.
    const lured = await connectWithLink(bobUrl, 'mallory-sub', { otherBrowser: true });
    expect(lured.status).toBe(400);
    expect(lured.body).toContain('not match');
    const bobAgain = (await call('bob')).result?.structuredContent?.mcp_auth_required?.url ?? '';
    expect((await connect(bobAgain, 'bob-sub')).status).toBe(200);
    expect(text(await call('bob'))).toBe('sub:bob-sub');
    expect(text(await call('alice'))).toBe('sub:alice-sub');
    expect(upstream.callers).toEqual(['alice-sub', 'alice-sub', 'bob-sub', 'alice-sub']);
  });

  it('admins see each user\'s connection status per server (never a token)', async () => {
    const view = await cp.gql<{ mcpServer: { userOAuthConnections: Array<{ status: string; issuer: string; scopes: string[]; expiresAt: string; user: { email: string } }> } }>(
      '{ mcpServer(name: "notes") { userOAuthConnections { status issuer scopes expiresAt user { email } } } }',
    );
    const rows = view.mcpServer.userOAuthConnections.map((c) => ({ email: c.user.email, status: c.status, issuer: c.issuer, scopes: c.scopes }));
    expect(rows.sort((a, b) => a.email.localeCompare(b.email))).toEqual([
      { email: 'alice@example.com', status: 'CONNECTED', issuer: as.issuer, scopes: ['mcp'] },
      { email: 'bob@example.com', status: 'CONNECTED', issuer: as.issuer, scopes: ['mcp'] },
    ]);
    const alice = await cp.gql<{ users: { edges: Array<{ node: { email: string; oauthConnections: Array<{ status: string; server: { name: string } }> } }> } }>(
      '{ users(first: 10) { edges { node { email oauthConnections { status server { name } } } } } }',
    );
    expect(alice.users.edges.find((e) => e.node.email === 'alice@example.com')?.node.oauthConnections).toEqual([{ status: 'CONNECTED', server: { name: 'notes' } }]);
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
    // A one-time link on the control plane: the browser follows it to the authorization server, carrying
    // the binding cookie it sets back to the callback.
    expect(started.startServerOAuth.url.startsWith(`${cp.url}/oauth/start/`)).toBe(true);
    const landed = await loginAndConsent(started.startServerOAuth.url, 'ops-admin');
    expect(landed.status).toBe(200);
    states.push(new URL(landed.url).searchParams.get('state') ?? '');
    pages.push(landed.body);
    expect(text(await call('alice', 'crm-whoami'))).toBe('sub:ops-admin');
    expect(text(await call('bob', 'crm-whoami'))).toBe('sub:ops-admin');
  });

  it('on /mcp/{server}, a caller without a credential gets MCP\'s URLElicitationRequiredError with the connect URL', async () => {
    const eve = await cp.gql<{ createUser: { user: { id: string } } }>('mutation { createUser(input: { email: "eve@example.com" }) { user { id } } }');
    const eveKey = await cp.gql<{ createVirtualKey: { key: string } }>(`mutation($i: CreateVirtualKeyInput!) { createVirtualKey(input: $i) { key } }`, {
      i: { name: 'eve-key', userId: eve.createUser.user.id, servers: [{ server: 'notes', tools: ['*'] }] },
    });
    const client = new Client({ name: 'elicits', version: '1' }, { capabilities: { elicitation: { url: {} } } });
    const before = upstream.callers.length;
    let error: unknown = null;
    try {
      // The route opens the upstream session with the caller's own credential, so it stops at initialize.
      await client.connect(new StreamableHTTPClientTransport(new URL(`${node.url}/mcp/notes`), { requestInit: { headers: { authorization: `Bearer ${eveKey.createVirtualKey.key}` } } }));
      await client.callTool({ name: 'whoami', arguments: {} });
    } catch (e) {
      error = e;
    } finally {
      await client.close();
    }
    expect(error).toBeInstanceOf(UrlElicitationRequiredError);
    expect((error as UrlElicitationRequiredError).elicitations[0]).toMatchObject({ mode: 'url', url: expect.stringMatching(new RegExp(`^${cp.url}/connect/ghc_`)) });
    expect(upstream.callers.length).toBe(before);
  });

  it('no token, client secret, code verifier or state appears in logs, GraphQL, metrics, snapshots or credential answers on the wire', async () => {
    const rows = await cp.cp.db.selectFrom('oauth_credentials').select(['server_id', 'user_id']).execute();
    expect(rows.length).toBe(3);
    const secrets: string[] = [];
    for (const row of rows) secrets.push((await cp.cp.oauth.accessToken(row.server_id, row.user_id)).token);
    // The client secret the authorization server issued at dynamic registration.
    for (const client of await cp.cp.db.selectFrom('oauth_clients').selectAll().execute()) {
      const registered = (await as.provider.Client.find(client.client_id)) as { clientSecret?: string } | undefined;
      if (registered?.clientSecret) secrets.push(registered.clientSecret);
      expect(client.client_secret === null || client.client_secret.startsWith('enc:v1:')).toBe(true);
    }
    expect(secrets.length).toBeGreaterThanOrEqual(4);
    // PKCE code verifiers are stored sealed; opened here only to search for them below.
    const verifiers: string[] = [];
    for (const flow of await cp.cp.db.selectFrom('oauth_flows').select(['state_hash', 'code_verifier']).execute()) {
      expect(flow.code_verifier.startsWith('enc:v1:')).toBe(true);
      verifiers.push(cp.cp.box.open(flow.code_verifier, flowVerifierAad(flow.state_hash)));
    }
    expect(verifiers.length).toBeGreaterThanOrEqual(3);

    // Off the wire, as an eavesdropper holding the shared node token: a snapshot and a credential answer.
    const pair = await generateNodeKeyPair();
    const nodeHeaders = {
      authorization: `Bearer ${cp.cp.nodeToken}`,
      [NODE_ID_HEADER]: 'eavesdropper',
      [NODE_KEY_HEADER]: Buffer.from(JSON.stringify(pair.publicJwk)).toString('base64url'),
    };
    const users = await cp.cp.db.selectFrom('users').select(['id']).where('email', '=', 'alice@example.com').executeTakeFirstOrThrow();
    const answer = await fetch(`${cp.url}${NODE_CREDENTIALS_PATH}`, {
      method: 'POST',
      headers: { ...nodeHeaders, 'content-type': 'application/json' },
      body: JSON.stringify({ server: 'notes', userId: users.id }),
    });
    const sealed = await answer.text();
    expect(answer.headers.get('content-type')).toBe('application/jose');
    // Only the key it was sealed to opens it.
    expect((await openCredentialAnswer(sealed, pair.privateJwk)).status).toBe('ok');
    const abort = new AbortController();
    const stream = await fetch(`${cp.url}/nodes/stream`, { headers: nodeHeaders, signal: abort.signal });
    const reader = stream.body!.getReader();
    let captured = '';
    while (!captured.includes('\n\n')) {
      const { value, done } = await reader.read();
      if (done) break;
      captured += new TextDecoder().decode(value);
    }
    abort.abort();
    const envelope = JSON.parse(/data: (.*)/.exec(captured)![1]!) as { snapshot: { payload: string } };
    const haystacks: Record<string, string> = {
      nodeLogs: nodeLogs.text(),
      controlPlaneLogs: cp.logs.text(),
      graphqlResponses: cp.responses.join('\n'),
      nodeMetrics: await scrapeNodeMetrics(node.url),
      controlPlaneMetrics: await cp.metrics(),
      credentialAnswerOnTheWire: sealed + Buffer.from(sealed.split('.')[0] ?? '', 'base64url').toString('utf8'),
      snapshotOnTheWire: captured + Buffer.from(envelope.snapshot.payload, 'base64url').toString('utf8'),
      connectPages: pages.join('\n'),
    };
    for (const [where, text] of Object.entries(haystacks)) {
      expect(text.length, where).toBeGreaterThan(0);
      for (const secret of secrets) expect(text.includes(secret), `${where} must not contain a token or client secret`).toBe(false);
      for (const verifier of verifiers) expect(text.includes(verifier), `${where} must not contain a PKCE code verifier`).toBe(false);
    }
    // The states of the flows reach the browser only in a redirect to the authorization server: never a
    // log line, a GraphQL answer (startServerOAuth returns a control-plane link), a page or a metric.
    expect(states.length).toBeGreaterThanOrEqual(3);
    for (const state of states) {
      expect(state.length).toBeGreaterThan(0);
      for (const [where, text] of Object.entries(haystacks)) expect(text.includes(state), `${where} must not contain an OAuth state`).toBe(false);
    }
  });

  it('an upstream 401 renews through the control plane; invalid_grant then asks the user to connect again', async () => {
    // The upstream stops accepting Bob's current token: the node renews (the control plane refreshes) once.
    const refreshesBefore = as.grants.filter((g) => g === 'refresh_token').length;
    await upstream.revokeTokensOf('bob-sub');
    expect(text(await call('bob'))).toBe('sub:bob-sub');
    expect(as.grants.filter((g) => g === 'refresh_token').length).toBe(refreshesBefore + 1);

    // Now the authorization server refuses the grant too: NEEDS_REAUTH, and the tool error says so.
    await as.revokeRefreshTokens();
    await upstream.revokeTokensOf('bob-sub');
    const refused = await call('bob');
    expect(refused.result?.isError).toBe(true);
    expect(text(refused)).toContain('your authorization was refused and must be renewed');
    expect(refused.result?.structuredContent?.mcp_auth_required?.kind).toBe('oauth');
    const bob = await cp.cp.db.selectFrom('users').select('id').where('email', '=', 'bob@example.com').executeTakeFirstOrThrow();
    const status = await cp.gql<{ user: { oauthConnections: Array<{ status: string }> } }>(`{ user(id: "${bob.id}") { oauthConnections { status } } }`);
    expect(status.user.oauthConnections).toEqual([{ status: 'NEEDS_REAUTH' }]);
    // Alice is untouched.
    expect(text(await call('alice'))).toBe('sub:alice-sub');
  });

  it('revoking a user\'s connection reaches the node at once', async () => {
    const alice = await cp.cp.db.selectFrom('users').select('id').where('email', '=', 'alice@example.com').executeTakeFirstOrThrow();
    expect(text(await call('alice'))).toBe('sub:alice-sub');
    const revoked = await cp.gql<{ revokeUserOAuthConnection: { revoked: boolean } }>(
      `mutation { revokeUserOAuthConnection(userId: "${alice.id}", server: "notes") { revoked errors { code } } }`,
    );
    expect(revoked.revokeUserOAuthConnection.revoked).toBe(true);
    await waitFor(async () => (await call('alice')).result?.structuredContent?.mcp_auth_required?.kind === 'oauth', { what: 'revocation applied on the node' });
  });
});
