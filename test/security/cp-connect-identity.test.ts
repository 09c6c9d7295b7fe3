/**
 * Connect links act for the user they were issued to, whoever opens them. A link forwarded to someone
 * else (say, by a user who wants a colleague's credential behind their own key) led that person to a page
 * that asked for "your" values or "your" sign-in without saying for whom: what they entered was stored for
 * the sender's account, whose agent then used it. Every connect page (headers form and OAuth start, in
 * Chromium) now names the Gatehouse user the link is for, escaped, before anything is entered.
 */
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { openOneTimeLinkInPage } from '../support/one-time-link.js';

describe('connect pages name the account they connect', () => {
  let cp: TestControlPlane;
  let browser: Browser;
  let userId = '';

  beforeAll(async () => {
    cp = await startTestControlPlane();
    for (const [name, authType, keys] of [
      ['tickets', 'PER_USER_HEADERS', ['X-Tickets-Token']],
      ['notes', 'PER_USER_OAUTH', []],
    ] as const) {
      const made = await cp.gql<{ createMcpServer: { errors: unknown[] } }>('mutation($i: CreateMcpServerInput!) { createMcpServer(input: $i) { errors { code message } } }', {
        i: { name, connectionType: 'HTTP', connectionString: 'http://127.0.0.1:9/mcp', authType, perUserHeaderKeys: [...keys], toolsToExecute: ['*'] },
      });
      expect(made.createMcpServer.errors).toEqual([]);
    }
    const user = await cp.gql<{ createUser: { user: { id: string } } }>('mutation { createUser(input: { email: "mallory@example.com", name: "<b>Alice</b>" }) { user { id } } }');
    userId = user.createUser.user.id;
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await cp?.close();
  });

  it.each(['tickets', 'notes'])('the %s page says whose account the link is for before anything is entered', async (server) => {
    const link = await cp.gql<{ createConnectLink: { url: string } }>('mutation($s: String!, $u: ID!) { createConnectLink(server: $s, userId: $u) { url } }', { s: server, u: userId });
    const context = await browser.newContext({ javaScriptEnabled: false });
    try {
      const page = await context.newPage();
      await openOneTimeLinkInPage(page, link.createConnectLink.url);
      expect(new URL(page.url()).pathname).toBe('/connect/session');
      const text = await page.locator('main').innerText();
      expect(text).toContain('mallory@example.com');
      expect(text).toMatch(/If that is not you, close this page/);
      // The form comes after the notice, so it is read first.
      const html = await page.content();
      expect(html.indexOf('mallory@example.com')).toBeLessThan(html.indexOf('<form'));
    } finally {
      await context.close();
    }
  });
});
