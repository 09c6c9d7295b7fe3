/**
 * The admin's shared-OAuth flow through a whole control plane: `startServerOAuth` returns a one-time
 * start link on the control plane (no state in the GraphQL answer), opening it binds the flow to that
 * browser and redirects to the authorization server, the admin logs in and consents at oidc-provider, the callback on the control plane stores the tokens and
 * answers a success page; McpServer.status and oauthConnection show the result; the client metadata
 * document is served; no token, code, state or verifier appears in any response or log line.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestControlPlane, type TestControlPlane } from '../../support/control-plane.js';
import { loginAndConsent, startAuthorizationServer, startProtectedMcpServer, type AuthorizationServer, type ProtectedMcpServer } from '../../support/oauth-upstream.js';
import { openOneTimeLink } from '../../support/one-time-link.js';

interface OpenedLink {
  status: number;
  /** The authorization server URL the link redirected to. */
  location: string;
  /** The binding cookie the link set, as a Cookie header value. */
  cookie: string;
  body: string;
}

/** What the admin's browser does first with a start link: open it and press Continue (no redirect followed). */
async function openStartLink(link: string): Promise<OpenedLink> {
  const response = await openOneTimeLink(link);
  const cookie = response.headers
    .getSetCookie()
    .map((line) => line.split(';')[0] ?? '')
    .join('; ');
  return { status: response.status, location: response.headers.get('location') ?? '', cookie, body: await response.text() };
}

interface ServerView {
  status: string;
  oauthConnection: { status: string; issuer: string; scopes: string[]; expiresAt: string | null } | null;
}

describe('shared OAuth through the control plane', () => {
  let as: AuthorizationServer;
  let upstream: ProtectedMcpServer;
  let cp: TestControlPlane;

  beforeAll(async () => {
    as = await startAuthorizationServer();
    upstream = await startProtectedMcpServer(as);
    cp = await startTestControlPlane();
  });

  afterAll(async () => {
    await cp?.close();
    await upstream?.close();
    await as?.close();
  });

  const serverView = async (): Promise<ServerView> =>
    (await cp.gql<{ mcpServer: ServerView }>('{ mcpServer(name: "crm") { status oauthConnection { status issuer scopes expiresAt } } }')).mcpServer;

  it('startServerOAuth → consent → callback page → ACTIVE', async () => {
    await cp.gql(`mutation { createMcpServer(input: { name: "crm", connectionType: HTTP, connectionString: "${upstream.url}", authType: OAUTH }) { errors { code } } }`);
    expect(await serverView()).toEqual({ status: 'NEEDS_AUTH', oauthConnection: null });

    const started = await cp.gql<{ startServerOAuth: { url: string | null; errors: unknown[] } }>('mutation { startServerOAuth(name: "crm") { url errors { code message } } }');
    expect(started.startServerOAuth.errors).toEqual([]);
    const link = started.startServerOAuth.url ?? '';
    expect(link.startsWith(`${cp.url}/oauth/start/gho_`)).toBe(true);
    const opened = await openStartLink(link);
    expect(opened.status).toBe(303);
    expect(opened.cookie).toMatch(/^gh_oauth_flow=/);
    const url = new URL(opened.location);
    expect(url.origin).toBe(as.issuer);
    expect(url.searchParams.get('redirect_uri')).toBe(`${cp.url}/oauth/callback`);

    const landed = await loginAndConsent(url.href, 'ops-admin', { cookies: { [cp.url]: opened.cookie } });
    expect(landed.url.startsWith(`${cp.url}/oauth/callback?`)).toBe(true);
    expect(landed.status).toBe(200);
    expect(landed.body).toContain('All set');
    expect(landed.body).toContain('crm');

    const view = await serverView();
    expect(view.status).toBe('ACTIVE');
    expect(view.oauthConnection).toMatchObject({ status: 'CONNECTED', issuer: as.issuer, scopes: ['mcp'] });
    expect(Date.parse(view.oauthConnection?.expiresAt ?? '')).toBeGreaterThan(Date.now());

    const token = await cp.cp.oauth.accessToken((await cp.cp.db.selectFrom('mcp_servers').select('id').where('name', '=', 'crm').executeTakeFirstOrThrow()).id, null);
    // Nothing secret went out: not the token, not the code or state of the callback.
    const query = new URL(landed.url).searchParams;
    // The state reaches the browser only in the start link's redirect: never in GraphQL or a log line.
    for (const secret of [token.token, query.get('code') ?? 'x', query.get('state') ?? 'x']) expect(cp.responses.join('\n')).not.toContain(secret);
    for (const secret of [token.token, query.get('code') ?? 'x', query.get('state') ?? 'x']) {
      expect(cp.logs.text()).not.toContain(secret);
      expect(landed.body).not.toContain(secret);
    }

    // Replaying the callback URL is refused with a clear page.
    const replay = await fetch(landed.url);
    expect(replay.status).toBe(400);
    expect(await replay.text()).toContain('does not match');
  });

  it('a start link works once, expires, and its flow completes only in the browser that opened it', async () => {
    const created = await cp.gql<{ createMcpServer: { errors: unknown[] } }>(
      `mutation { createMcpServer(input: { name: "crm_bound", connectionType: HTTP, connectionString: "${upstream.url}", authType: OAUTH }) { errors { field code message } } }`,
    );
    expect(created.createMcpServer.errors).toEqual([]);
    const start = async (): Promise<string> => {
      const started = await cp.gql<{ startServerOAuth: { url: string | null; errors: unknown[] } }>('mutation { startServerOAuth(name: "crm_bound") { url errors { code message } } }');
      expect(started.startServerOAuth.errors).toEqual([]);
      return started.startServerOAuth.url ?? '';
    };

    const link = await start();
    const opened = await openStartLink(link);
    expect(opened.status).toBe(303);
    const again = await openStartLink(link);
    expect(again.status).toBe(410);
    expect(again.location).toBe('');
    expect(again.body).toContain('already used');

    // Another browser (no binding cookie) finishing the authorization is refused; nothing is stored.
    const elsewhere = await loginAndConsent(opened.location, 'intruder');
    expect(elsewhere.url.startsWith(`${cp.url}/oauth/callback?`)).toBe(true);
    expect(elsewhere.status).toBe(400);
    expect(elsewhere.body).toContain('was not started here');
    expect((await cp.gql<{ mcpServer: ServerView }>('{ mcpServer(name: "crm_bound") { status oauthConnection { status issuer scopes expiresAt } } }')).mcpServer).toEqual({
      status: 'NEEDS_AUTH',
      oauthConnection: null,
    });

    // An expired link gets its own page, and a malformed one a not-valid page (never a 500).
    const stale = await start();
    await cp.cp.db.updateTable('oauth_flows').set({ expires_at: new Date(Date.now() - 1000).toISOString() }).where('start_link_used_at', 'is', null).execute();
    const expired = await openStartLink(stale);
    expect(expired.status).toBe(410);
    expect(expired.body).toContain('expired');
    const malformed = await openStartLink(`${cp.url}/oauth/start/gho_nope`);
    expect(malformed.status).toBe(404);
    expect(cp.logs.text()).not.toContain(link.split('/').pop() ?? 'x');
  });

  it('refuses startServerOAuth for a server that is not OAUTH, and for an unknown one', async () => {
    await cp.gql('mutation { createMcpServer(input: { name: "plain", connectionType: HTTP, connectionString: "http://127.0.0.1:9/mcp" }) { errors { code } } }');
    const wrong = await cp.gql<{ startServerOAuth: { url: string | null; errors: Array<{ code: string }> } }>('mutation { startServerOAuth(name: "plain") { url errors { code message } } }');
    expect(wrong.startServerOAuth).toMatchObject({ url: null, errors: [{ code: 'WRONG_AUTH_TYPE' }] });
    const unknown = await cp.gql<{ startServerOAuth: { errors: Array<{ code: string }> } }>('mutation { startServerOAuth(name: "nope") { url errors { code } } }');
    expect(unknown.startServerOAuth.errors).toEqual([{ code: 'NOT_FOUND' }]);
  });

  it('an unreachable MCP server is a typed error, not a 500', async () => {
    await cp.gql('mutation { createMcpServer(input: { name: "gone", connectionType: HTTP, connectionString: "http://127.0.0.1:9/mcp", authType: OAUTH }) { errors { code } } }');
    const result = await cp.gql<{ startServerOAuth: { url: string | null; errors: Array<{ code: string; message: string }> } }>(
      'mutation { startServerOAuth(name: "gone") { url errors { code message } } }',
    );
    expect(result.startServerOAuth.url).toBeNull();
    expect(result.startServerOAuth.errors[0]?.code).toMatch(/^OAUTH_(AS_UNREACHABLE|DISCOVERY_FAILED)$/);
  });

  it('serves its Client ID Metadata Document', async () => {
    const response = await fetch(`${cp.url}/oauth/client-metadata.json`);
    expect(response.status).toBe(200);
    const doc = (await response.json()) as Record<string, unknown>;
    expect(doc).toMatchObject({
      client_id: `${cp.url}/oauth/client-metadata.json`,
      redirect_uris: [`${cp.url}/oauth/callback`],
      grant_types: ['authorization_code', 'refresh_token'],
      token_endpoint_auth_method: 'none',
    });
  });

  it('uses a pre-registered client (setMcpServerOAuth) before anything else, and never shows its secret', async () => {
    const clientSecret = 'pre-registered-secret-0123456789abcdef';
    const preAs = await startAuthorizationServer({
      noRegistration: true,
      clients: [
        {
          client_id: 'gatehouse-pre',
          client_secret: clientSecret,
          redirect_uris: [`${cp.url}/oauth/callback`],
          grant_types: ['authorization_code', 'refresh_token'],
          response_types: ['code'],
          token_endpoint_auth_method: 'client_secret_basic',
        },
      ],
    });
    const preUpstream = await startProtectedMcpServer(preAs);
    try {
      await cp.gql(`mutation { createMcpServer(input: { name: "pre", connectionType: HTTP, connectionString: "${preUpstream.url}", authType: OAUTH }) { errors { code } } }`);
      const set = await cp.gql<{ setMcpServerOAuth: { errors: unknown[]; mcpServer: { oauth: { clientId: string; clientSecret: string } } } }>(
        `mutation($i: McpServerOAuthInput!) { setMcpServerOAuth(input: $i) { errors { field code message } mcpServer { oauth { clientId clientSecret } } } }`,
        { i: { name: 'pre', clientId: 'gatehouse-pre', clientSecret } },
      );
      expect(set.setMcpServerOAuth).toEqual({ errors: [], mcpServer: { oauth: { clientId: 'gatehouse-pre', clientSecret: '••••' } } });
      const started = await cp.gql<{ startServerOAuth: { url: string } }>('mutation { startServerOAuth(name: "pre") { url errors { code message } } }');
      const opened = await openStartLink(started.startServerOAuth.url);
      expect(new URL(opened.location).searchParams.get('client_id')).toBe('gatehouse-pre');
      expect((await loginAndConsent(opened.location, 'pre-admin', { cookies: { [cp.url]: opened.cookie } })).status).toBe(200);
      expect((await cp.gql<{ mcpServer: { status: string } }>('{ mcpServer(name: "pre") { status } }')).mcpServer.status).toBe('ACTIVE');
      expect(preAs.grants).toEqual(['authorization_code']);
      expect(cp.responses.join('\n')).not.toContain(clientSecret);
      expect(cp.logs.text()).not.toContain(clientSecret);
    } finally {
      await preUpstream.close();
      await preAs.close();
    }
  });
});
