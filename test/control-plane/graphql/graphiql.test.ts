/**
 * GraphiQL works in an isolated network (the article's in-VPC deployment): real headless Chromium loads
 * /graphql from a real control plane with every request to anywhere else blocked, and runs a query with
 * the admin token typed into its headers editor. Nothing may be fetched from a CDN. Its page headers (no
 * framing, no fetches elsewhere) break nothing in it, and a page of another origin cannot frame it.
 */
import { createServer } from 'node:http';
import { chromium, type Browser } from 'playwright-core';
import { closeServer, listen } from '../../support/upstreams.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestControlPlane, type TestControlPlane } from '../../support/control-plane.js';

let cp: TestControlPlane;
let browser: Browser;

beforeAll(async () => {
  cp = await startTestControlPlane();
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
});
afterAll(async () => {
  await browser?.close();
  await cp?.close();
});

describe('GraphiQL at /graphql', () => {
  it('loads from the control plane alone and runs a query with the admin token', async () => {
    const context = await browser.newContext();
    const elsewhere: string[] = [];
    await context.route('**/*', async (route) => {
      const url = route.request().url();
      if (url.startsWith(`${cp.url}/`)) return route.continue();
      elsewhere.push(url);
      return route.abort('blockedbyclient');
    });
    const page = await context.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));
    page.on('console', (message) => {
      if (/Content Security Policy/i.test(message.text())) pageErrors.push(message.text());
    });

    const response = await page.goto(`${cp.url}/graphql`);
    expect(response?.status()).toBe(200);
    expect(response?.headers()['x-frame-options']).toBe('DENY');
    expect(response?.headers()['content-security-policy']).toContain("frame-ancestors 'none'");
    // The Variables and Headers editors share a pane; show the Headers one.
    await page.getByRole('button', { name: 'Headers' }).click({ timeout: 20_000 });
    const headers = page.locator('section[aria-label="Headers"] .view-lines:visible');
    const query = page.locator('section[aria-label="Operation Editor"] .view-lines:visible');
    await headers.waitFor({ timeout: 20_000 });

    // The editor auto-closes brackets and quotes as text goes in; whatever it added after the cursor goes.
    const replaceText = async (text: string) => {
      await page.keyboard.press('ControlOrMeta+A');
      await page.keyboard.insertText(text);
      await page.keyboard.press('Shift+End');
      await page.keyboard.press('Delete');
    };
    await headers.click();
    await replaceText(JSON.stringify({ Authorization: `Bearer ${cp.adminToken}` }));
    await query.click();
    await replaceText('query WhoAmI { viewer { name role } configVersion }');

    const answered = page.waitForResponse((r) => r.url() === `${cp.url}/graphql` && r.request().method() === 'POST' && (r.request().postData() ?? '').includes('WhoAmI'));
    await page.locator('button[aria-label^="Execute query"]').click();
    const answer = await answered;
    expect(answer.status()).toBe(200);
    expect(await answer.json()).toMatchObject({ data: { viewer: { role: 'ADMIN' } } });
    const result = page.locator('section[aria-label="Result Window"]');
    await expect.poll(() => result.innerText(), { timeout: 10_000 }).toMatch(/"role":\s*"ADMIN"/);

    expect(elsewhere).toEqual([]);
    expect(pageErrors).toEqual([]);
    await context.close();
  }, 60_000);

  it('cannot be framed by a page of another origin', async () => {
    const other = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(`<iframe name="g" src="${cp.url}/graphql"></iframe>`));
    const otherUrl = `http://localhost:${await listen(other, 0)}`;
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      // The frame ends on one document or the other: GraphiQL's, or Chromium's error page in its place.
      const settled = page.waitForEvent('framenavigated', { predicate: (f) => f.name() === 'g', timeout: 15_000 });
      await page.goto(otherUrl);
      expect((await settled).url()).toBe('chrome-error://chromewebdata/');
    } finally {
      await context.close();
      await closeServer(other);
    }
  }, 60_000);
});
