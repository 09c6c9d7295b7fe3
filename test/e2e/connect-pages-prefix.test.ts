/**
 * The hosted pages of a control plane served under a path prefix: GATEHOUSE_PUBLIC_URL is
 * `http://<proxy>/gh` and a reverse proxy forwards `/gh/…` as `/…` (links, the OAuth redirect_uri and the
 * client metadata document already used the public URL). The pages' cookies were scoped to the route as the
 * control plane sees it (`Path=/connect/ghc_…`, `/connect`, `/oauth/callback`), so the browser, at
 * `/gh/connect/ghc_…`, never sent them back: the one-time link's Continue was refused (CSRF_FAILED), and
 * the session page and OAuth callback would have lost theirs; the redirect and form actions left the
 * prefix out too. Now every one is under the public URL's path. Headless Chromium (playwright-core, Debian's
 * /usr/bin/chromium) through an in-process prefix-stripping proxy.
 */
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { startHttpUpstream, type HttpUpstream } from '../support/upstreams.js';

const PREFIX = '/gh';
const KEY = 'tickets-key-under-a-prefix-0123456789';

/** A reverse proxy serving the control plane under PREFIX (the prefix stripped, as nginx `location /gh/ { proxy_pass …/; }`). */
async function startPrefixProxy(target: () => string): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    const url = req.url ?? '/';
    if (!url.startsWith(`${PREFIX}/`)) {
      res.writeHead(404).end();
      return;
    }
    const upstream = new URL(target());
    const forwarded = request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: url.slice(PREFIX.length), headers: { ...req.headers, host: upstream.host } },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    forwarded.on('error', () => res.writeHead(502).end());
    req.pipe(forwarded);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

describe('hosted pages under a path prefix, in Chromium', () => {
  let cp: TestControlPlane;
  let proxy: { url: string; server: Server };
  let tickets: HttpUpstream;
  let browser: Browser;
  let userId = '';
  /** Stands in for the authorization server's page: the start link's redirect only has to arrive there. */
  let authorizationServer: Server;
  let asUrl = '';

  beforeAll(async () => {
    let cpUrl = '';
    proxy = await startPrefixProxy(() => cpUrl);
    cp = await startTestControlPlane({ env: { GATEHOUSE_PUBLIC_URL: `${proxy.url}${PREFIX}` } });
    cpUrl = cp.url;
    tickets = await startHttpUpstream({ label: 'tickets', requireHeader: { name: 'x-tickets-token', values: [KEY] } });
    await cp.gql('mutation($i: CreateMcpServerInput!) { createMcpServer(input: $i) { errors { code } } }', {
      i: { name: 'tickets', connectionType: 'HTTP', connectionString: tickets.url, authType: 'PER_USER_HEADERS', perUserHeaderKeys: ['X-Tickets-Token'], toolsToExecute: ['*'] },
    });
    await cp.gql('mutation { createMcpServer(input: {name: "crm", connectionType: HTTP, connectionString: "http://127.0.0.1:9/mcp", authType: OAUTH}) { errors { code } } }');
    authorizationServer = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<h1>authorization server</h1>'));
    await new Promise<void>((resolve) => authorizationServer.listen(0, '127.0.0.1', resolve));
    asUrl = `http://127.0.0.1:${(authorizationServer.address() as AddressInfo).port}`;
    await cp.gql('mutation($a: String!, $t: String!) { setMcpServerOAuth(input: {name: "crm", clientId: "gatehouse", authorizeUrl: $a, tokenUrl: $t}) { errors { code } } }', {
      a: `${asUrl}/authorize`,
      t: `${asUrl}/token`,
    });
    userId = (await cp.gql<{ createUser: { user: { id: string } } }>('mutation { createUser(input: {email: "dana@example.com"}) { user { id } } }')).createUser.user.id;
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await tickets?.close();
    await cp?.close();
    await new Promise((resolve) => proxy?.server.close(resolve));
    await new Promise((resolve) => authorizationServer?.close(resolve));
  });

  it('a connect link: Continue, the session page and its form all work under the prefix', async () => {
    const link = await cp.gql<{ createConnectLink: { url: string } }>('mutation($u: ID!) { createConnectLink(userId: $u, server: "tickets") { url } }', { u: userId });
    expect(link.createConnectLink.url.startsWith(`${proxy.url}${PREFIX}/connect/ghc_`)).toBe(true);
    const context = await browser.newContext({ javaScriptEnabled: false });
    try {
      const page = await context.newPage();
      await page.goto(link.createConnectLink.url);
      await Promise.all([page.waitForNavigation(), page.getByRole('button', { name: 'Continue', exact: true }).click()]);
      expect(new URL(page.url()).pathname).toBe(`${PREFIX}/connect/session`);
      await expect(page.locator('h1').textContent()).resolves.toBe('Your tickets credentials');
      await page.locator('input[name="header:X-Tickets-Token"]').fill(KEY);
      await Promise.all([page.waitForNavigation(), page.getByRole('button', { name: 'Save', exact: true }).click()]);
      expect(new URL(page.url()).pathname).toBe(`${PREFIX}/connect/session/headers`);
      expect(await page.content()).toContain('All set');
      const sessions = await cp.gql<{ user: { headerSets: Array<{ status: string }> } }>('query($u: ID!) { user(id: $u) { headerSets { status } } }', { u: userId });
      expect(sessions.user.headerSets).toEqual([{ status: 'ACTIVE' }]);
    } finally {
      await context.close();
    }
  });

  it("an OAuth start link: Continue reaches the authorization server, and the flow's cookie is for the prefixed callback", async () => {
    const started = await cp.gql<{ startServerOAuth: { url: string } }>('mutation { startServerOAuth(name: "crm") { url } }');
    expect(started.startServerOAuth.url.startsWith(`${proxy.url}${PREFIX}/oauth/start/gho_`)).toBe(true);
    const context = await browser.newContext({ javaScriptEnabled: false });
    try {
      const page = await context.newPage();
      await page.goto(started.startServerOAuth.url);
      await Promise.all([page.waitForNavigation(), page.getByRole('button', { name: 'Continue', exact: true }).click()]);
      expect(new URL(page.url()).origin).toBe(asUrl);
      const callbackCookies = await context.cookies(`${proxy.url}${PREFIX}/oauth/callback`);
      expect(callbackCookies.map((c) => [c.name, c.path])).toEqual([['gh_oauth_flow', `${PREFIX}/oauth/callback`]]);
    } finally {
      await context.close();
    }
  });
});
