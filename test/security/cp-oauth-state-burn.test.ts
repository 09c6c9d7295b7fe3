/**
 * An OAuth flow is spent only by the browser it is bound to. The state travels in URLs (the authorization
 * request, the authorization server's logs, a shared screen), and a callback carrying it from a browser
 * without the flow's binding cookie was refused only after spending the flow: anyone who saw the state
 * could void a sign-in still under way, with a made-up code or an `error=access_denied`. Now such a
 * callback is refused and the real browser still completes (against oidc-provider).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { loginAndConsent, startOAuthUpstream } from '../support/oauth-upstream.js';
import { openOneTimeLink } from '../support/one-time-link.js';

describe('OAuth callbacks from another browser', () => {
  let oauth: Awaited<ReturnType<typeof startOAuthUpstream>>;
  let cp: TestControlPlane;

  beforeAll(async () => {
    oauth = await startOAuthUpstream();
    cp = await startTestControlPlane();
  }, 60_000);
  afterAll(async () => {
    await cp?.close();
    await oauth?.close();
  });

  it('cannot spend the flow: the browser that started it still completes', async () => {
    await cp.gql(`mutation { createMcpServer(input: { name: "crm", connectionType: HTTP, connectionString: "${oauth.upstream.url}", authType: OAUTH }) { errors { code } } }`);
    const started = await cp.gql<{ startServerOAuth: { url: string | null } }>('mutation { startServerOAuth(name: "crm") { url } }');
    const opened = await openOneTimeLink(started.startServerOAuth.url ?? '');
    expect(opened.status).toBe(303);
    const cookie = opened.headers
      .getSetCookie()
      .map((line) => line.split(';')[0] ?? '')
      .join('; ');
    const authorization = opened.headers.get('location') ?? '';
    const state = new URL(authorization).searchParams.get('state') ?? '';
    expect(state).not.toBe('');

    // Someone who saw the authorization URL calls back first, without the browser's cookie.
    for (const query of [`state=${state}&code=made-up&iss=${encodeURIComponent(oauth.as.issuer)}`, `state=${state}&error=access_denied`]) {
      const intruder = await fetch(`${cp.url}/oauth/callback?${query}`);
      expect(intruder.status).toBe(400);
      expect(await intruder.text()).toContain('was not started here');
    }

    const landed = await loginAndConsent(authorization, 'ops-admin', { cookies: { [cp.url]: cookie } });
    expect(landed.status).toBe(200);
    expect(landed.body).toContain('All set');
    const view = await cp.gql<{ mcpServer: { status: string } }>('{ mcpServer(name: "crm") { status } }');
    expect(view.mcpServer.status).toBe('ACTIVE');
  });
});
