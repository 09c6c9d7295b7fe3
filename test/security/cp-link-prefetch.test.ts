/**
 * One-time links were spent by their GET: a connect link (`/connect/<token>`) or an admin's OAuth start
 * link (`/oauth/start/<token>`) pasted in Slack or mailed is fetched first by the link preview or the mail
 * scanner, which used it up (the person then saw "already used") or, for a start link, took the redirect
 * and the flow's browser binding for itself. Now a GET only shows a page with a Continue button and spends
 * nothing; the link is spent by the POST of that page's form, whose value must match the cookie the page set
 * in that browser, so another site cannot spend a link in someone's browser either (logging them into the
 * sender's connect session). The page names no user or server (a preview would publish it), nor holds the
 * link's token. Both dialects.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { openTestDatabase, testDialects, type TestDatabase } from '../support/db.js';
import { startOAuthUpstream } from '../support/oauth-upstream.js';
import { openOneTimeLink } from '../support/one-time-link.js';

/** What link unfurlers and scanners send: GETs and HEADs, some with a browser-like Accept, no cookies. */
async function prefetch(link: string): Promise<void> {
  for (const init of [{ method: 'GET' }, { method: 'HEAD' }, { method: 'GET', headers: { accept: 'text/html', 'user-agent': 'Slackbot-LinkExpanding 1.0' } }]) {
    const response = await fetch(link, { ...init, redirect: 'manual' });
    expect(response.status).toBeLessThan(300);
    await response.body?.cancel();
  }
}

describe.each(testDialects)('one-time links under link previews on %s', (dialect) => {
  let testDb: TestDatabase | undefined;
  let cp: TestControlPlane;
  let oauth: Awaited<ReturnType<typeof startOAuthUpstream>>;
  let userId = '';

  beforeAll(async () => {
    if (dialect === 'postgres') testDb = await openTestDatabase('postgres');
    oauth = await startOAuthUpstream();
    cp = await startTestControlPlane(testDb ? { databaseUrl: testDb.url, databaseSchema: testDb.searchPath } : {});
    await cp.gql('mutation { createMcpServer(input: {name: "tickets_private", connectionType: HTTP, connectionString: "http://127.0.0.1:9/mcp", authType: PER_USER_HEADERS, perUserHeaderKeys: ["X-Token"]}) { errors { code } } }');
    await cp.gql(`mutation { createMcpServer(input: {name: "crm", connectionType: HTTP, connectionString: "${oauth.upstream.url}", authType: OAUTH}) { errors { code } } }`);
    userId = (await cp.gql<{ createUser: { user: { id: string } } }>('mutation { createUser(input: {email: "victim@example.com"}) { user { id } } }')).createUser.user.id;
  }, 60_000);
  afterAll(async () => {
    await cp?.close();
    await oauth?.close();
    await testDb?.close();
  });

  const connectLink = async (): Promise<string> =>
    (await cp.gql<{ createConnectLink: { url: string } }>('mutation($u: ID!) { createConnectLink(server: "tickets_private", userId: $u) { url } }', { u: userId })).createConnectLink.url;
  const startLink = async (): Promise<string> => (await cp.gql<{ startServerOAuth: { url: string } }>('mutation { startServerOAuth(name: "crm") { url errors { code } } }')).startServerOAuth.url;

  it.each([
    ['connect link', 'connect'],
    ['OAuth start link', 'start'],
  ])('a %s survives previews, is spent by the Continue form, and only once', async (_what, kind) => {
    const link = kind === 'connect' ? await connectLink() : await startLink();
    await prefetch(link);
    const page = await (await fetch(link)).text();
    expect(page).toContain('Continue');
    expect(page).not.toContain('victim@example.com');
    expect(page).not.toContain(kind === 'connect' ? 'tickets_private' : 'crm');
    // Nor the link's token: the form posts to the page's own address.
    const token = new URL(link).pathname.split('/').pop() ?? '';
    expect(token.length).toBeGreaterThan(30);
    expect(page).not.toContain(token);

    const opened = await openOneTimeLink(link);
    expect(opened.status).toBe(303);
    const location = opened.headers.get('location') ?? '';
    if (kind === 'connect') expect(location).toBe('/connect/session');
    else expect(location.startsWith(oauth.as.issuer)).toBe(true);

    const again = await fetch(link);
    expect(again.status).toBe(410);
    expect(await again.text()).toContain('already used');
    const replayed = await openOneTimeLink(link);
    expect(replayed.status).toBe(410);
  });

  it.each([
    ['connect link', 'connect'],
    ['OAuth start link', 'start'],
  ])('a %s is not spent by a POST without its page\'s cookie (another site\'s form, a forged value)', async (_what, kind) => {
    const link = kind === 'connect' ? await connectLink() : await startLink();
    const page = await fetch(link);
    const formValue = /name="csrf" value="([^"]+)"/.exec(await page.text())?.[1] ?? '';
    const cookie = (page.headers.getSetCookie()[0] ?? '').split(';')[0] ?? '';
    expect(formValue.length).toBeGreaterThanOrEqual(32);
    const forged: Array<[string, Record<string, string>, string]> = [
      ['no cookie (a cross-site form)', {}, formValue],
      ['no cookie, no value', {}, ''],
      ['cookie, another value', { cookie }, `${formValue.slice(0, -1)}x`],
      ['cookie, empty value', { cookie }, ''],
      ['an empty cookie and value', { cookie: 'gh_link_form=' }, ''],
      ['a huge value', { cookie }, 'x'.repeat(100_000)],
    ];
    for (const [what, headers, csrf] of forged) {
      const response = await fetch(link, {
        method: 'POST',
        redirect: 'manual',
        headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded', origin: 'https://evil.example' },
        body: new URLSearchParams({ csrf }),
      });
      expect({ what, status: response.status, located: response.headers.get('location') }).toEqual({ what, status: 403, located: null });
      await response.body?.cancel();
    }
    // Still unspent: the person's own click works.
    expect((await openOneTimeLink(link)).status).toBe(303);
  });

  it('an unknown, malformed or expired link shows its error page on GET and on POST', async () => {
    const stale = await connectLink();
    await cp.cp.db.updateTable('connect_links').set({ expires_at: new Date(Date.now() - 1000).toISOString() }).where('used_at', 'is', null).execute();
    expect((await fetch(stale)).status).toBe(410);
    expect((await fetch(`${cp.url}/connect/ghc_${'a'.repeat(43)}`)).status).toBe(404);
    expect((await fetch(`${cp.url}/oauth/start/gho_${'a'.repeat(43)}`)).status).toBe(404);
    expect((await fetch(`${cp.url}/connect/ghc_${'a'.repeat(43)}`, { method: 'POST', body: 'csrf=x' })).status).toBe(403);
  });
});
