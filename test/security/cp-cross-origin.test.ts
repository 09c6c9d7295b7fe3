/**
 * `/graphql` grants no cross-origin access. graphql-yoga's default CORS reflected any Origin with
 * `Access-Control-Allow-Credentials: true`, so a page on any other origin, opened in a browser that can
 * reach the control plane, could send requests there and read the answers. Checked with headers, and in
 * Chromium: a page served from another origin cannot read /graphql (with or without an admin token),
 * while the same request from the control plane's own origin (GraphiQL's) still works.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { closeServer } from '../support/upstreams.js';

describe('/graphql across origins', () => {
  let cp: TestControlPlane;
  let elsewhere: Server;
  let elsewhereUrl = '';
  let browser: Browser;

  beforeAll(async () => {
    cp = await startTestControlPlane();
    elsewhere = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>elsewhere</title>'));
    await new Promise<void>((resolve) => elsewhere.listen(0, '127.0.0.1', resolve));
    elsewhereUrl = `http://127.0.0.1:${(elsewhere.address() as AddressInfo).port}/`;
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    if (elsewhere) await closeServer(elsewhere);
    await cp?.close();
  });

  it('sends no CORS grant to another origin, on the preflight or on the answer', async () => {
    const origin = 'https://elsewhere.example';
    const preflight = await fetch(`${cp.url}/graphql`, {
      method: 'OPTIONS',
      headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' },
    });
    expect(preflight.headers.get('access-control-allow-origin')).toBeNull();
    expect(preflight.headers.get('access-control-allow-credentials')).toBeNull();
    const answer = await fetch(`${cp.url}/graphql`, {
      method: 'POST',
      headers: { origin, 'content-type': 'application/json', authorization: `Bearer ${cp.adminToken}` },
      body: JSON.stringify({ query: '{ configVersion }' }),
    });
    expect(answer.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('a page from another origin cannot read /graphql in Chromium; the control plane origin can', async () => {
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      const attempt = (target: string, token: string) =>
        page.evaluate(
          async ({ target, token }) => {
            try {
              const r = await fetch(target, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: '{"query":"{ configVersion }"}' });
              return `read: ${await r.text()}`;
            } catch (error) {
              return `refused: ${String(error)}`;
            }
          },
          { target, token },
        );
      await page.goto(elsewhereUrl);
      expect(await attempt(`${cp.url}/graphql`, cp.adminToken)).toMatch(/^refused/);
      // GraphiQL's own origin is unaffected.
      await page.goto(`${cp.url}/healthz`);
      expect(await attempt(`${cp.url}/graphql`, cp.adminToken)).toMatch(/^read: \{"data":\{"configVersion"/);
    } finally {
      await context.close();
    }
  });
});
