/**
 * The connect pages in headless Chromium (playwright-core, Debian's /usr/bin/chromium), driven from real
 * auth-required answers of a node: the per-user OAuth consent clicked through oidc-provider's login and
 * consent pages, the per-user headers form (verified against the upstream before saving, never showing a
 * stored value, replace and clear, NEEDS_UPDATE when the server's keys change), and the refusals a person
 * must be able to read: a replayed link, an expired link, a forged CSRF token.
 */
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../data-plane/log.js';
import { startNode, type DataPlaneNode } from '../../data-plane/node/node.js';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { LogCapture } from '../support/log-capture.js';
import { postMcp } from '../support/mcp-http.js';
import { startAuthorizationServer, startProtectedMcpServer, type AuthorizationServer, type ProtectedMcpServer } from '../support/oauth-upstream.js';
import { startHttpUpstream, type HttpUpstream } from '../support/upstreams.js';
import { waitFor } from '../support/wait.js';
import { openOneTimeLinkInPage } from '../support/one-time-link.js';

interface Required {
  kind: string;
  server: string;
  url: string;
  required_header_keys?: string[];
}

const GOOD_KEY = 'tickets-key-of-carol-0123456789';
const OTHER_KEY = 'tickets-key-replaced-9876543210';

describe('connect pages in Chromium', () => {
  let as: AuthorizationServer;
  let protectedUpstream: ProtectedMcpServer;
  let tickets: HttpUpstream;
  let cp: TestControlPlane;
  let node: DataPlaneNode;
  let browser: Browser;
  let key = '';
  const nodeLogs = new LogCapture();

  async function callTool(name: string, args: Record<string, unknown> = {}): Promise<{ text: string; isError: boolean; required: Required | undefined }> {
    const response = await postMcp(node.url, key, { id: 1, method: 'tools/call', params: { name, arguments: args } });
    if (!(response.body as { result?: unknown }).result) throw new Error(`no result: ${JSON.stringify(response.body)}`);
    const result = (response.body as { result: { content: Array<{ text?: string }>; isError?: boolean; structuredContent?: { mcp_auth_required?: Required } } }).result;
    return { text: result.content.map((c) => c.text ?? '').join(''), isError: result.isError === true, required: result.structuredContent?.mcp_auth_required };
  }

  /** The per-user header the tickets upstream got on its latest tools/call. */
  function lastTicketsToken(): string | undefined {
    const header = tickets.requests.filter((r) => r.rpcMethod === 'tools/call').at(-1)?.headers['x-tickets-token'];
    return Array.isArray(header) ? header.join(', ') : header;
  }

  async function requiredUrl(tool: string): Promise<Required> {
    const answer = await callTool(tool, tool.endsWith('whoami') && tool.startsWith('tickets') ? { header: 'x-tickets-token' } : {});
    expect(answer.isError).toBe(true);
    if (!answer.required) throw new Error(`expected auth-required, got: ${answer.text}`);
    return answer.required;
  }

  async function withPage<T>(fn: (page: Page) => Promise<T>): Promise<T> {
    const context = await browser.newContext({ javaScriptEnabled: false });
    try {
      return await fn(await context.newPage());
    } finally {
      await context.close();
    }
  }

  beforeAll(async () => {
    as = await startAuthorizationServer();
    protectedUpstream = await startProtectedMcpServer(as);
    tickets = await startHttpUpstream({ label: 'tickets', requireHeader: { name: 'x-tickets-token', values: [GOOD_KEY, OTHER_KEY] } });
    cp = await startTestControlPlane();
    await cp.gql(`mutation($i: CreateMcpServerInput!) { createMcpServer(input: $i) { errors { code } } }`, {
      i: { name: 'notes', connectionType: 'HTTP', connectionString: protectedUpstream.url, authType: 'PER_USER_OAUTH', toolsToExecute: ['*'] },
    });
    const made = await cp.gql<{ createMcpServer: { errors: unknown[] } }>(`mutation($i: CreateMcpServerInput!) { createMcpServer(input: $i) { errors { field code message } } }`, {
      i: { name: 'tickets', connectionType: 'HTTP', connectionString: tickets.url, authType: 'PER_USER_HEADERS', perUserHeaderKeys: ['X-Tickets-Token'], toolsToExecute: ['*'] },
    });
    expect(made.createMcpServer.errors).toEqual([]);
    const user = await cp.gql<{ createUser: { user: { id: string } } }>('mutation { createUser(input: { email: "carol@example.com" }) { user { id } } }');
    const created = await cp.gql<{ createVirtualKey: { key: string } }>(`mutation($i: CreateVirtualKeyInput!) { createVirtualKey(input: $i) { key errors { code message } } }`, {
      i: { name: 'carol', userId: user.createUser.user.id, servers: [{ server: 'notes', tools: ['*'] }, { server: 'tickets', tools: ['*'] }] },
    });
    key = created.createVirtualKey.key;
    if (!key) throw new Error(`no key: ${JSON.stringify(created)}`);
    node = await startNode({ controlPlaneUrl: cp.url, nodeToken: cp.cp.nodeToken, port: 0, stateDir: null, logger: createLogger('test-node', { destination: nodeLogs }) });
    await waitFor(async () => (await fetch(`${node.url}/readyz`)).ok, { what: 'node ready' });
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await node?.close();
    await cp?.close();
    await tickets?.close();
    await protectedUpstream?.close();
    await as?.close();
  });

  it('per-user OAuth: the link leads through sign-in and consent to a success page; the next call succeeds', async () => {
    const required = await requiredUrl('notes-whoami');
    expect(required).toMatchObject({ kind: 'oauth', server: 'notes' });
    await withPage(async (page) => {
      await openOneTimeLinkInPage(page, required.url);
      // The one-time token is spent and gone from the address bar.
      expect(new URL(page.url()).pathname).toBe('/connect/session');
      await page.getByRole('button', { name: 'Continue to sign in' }).click();
      expect(page.url().startsWith(as.issuer)).toBe(true);
      await page.fill('input[name="login"]', 'carol-at-notes');
      await page.fill('input[name="password"]', 'whatever');
      await page.getByRole('button', { name: 'Sign-in' }).click();
      await page.getByRole('button', { name: 'Continue' }).click();
      await page.waitForURL(`${cp.url}/oauth/callback**`);
      expect(await page.textContent('h1')).toBe('All set');
      expect(await page.textContent('main')).toContain('go back to Claude Code');
    });
    expect((await callTool('notes-whoami')).text).toBe('sub:carol-at-notes');

    // Replayed: the same link again is refused with a page that says so.
    await withPage(async (page) => {
      const response = await page.goto(required.url);
      expect(response?.status()).toBe(410);
      expect(await page.textContent('h1')).toBe('This link was already used');
    });
  });

  it('an expired link and a forged CSRF token are refused with clear pages', async () => {
    const expired = await requiredUrl('tickets-whoami');
    await cp.cp.db.updateTable('connect_links').set({ expires_at: new Date(Date.now() - 1000).toISOString() }).where('used_at', 'is', null).execute();
    await withPage(async (page) => {
      const response = await page.goto(expired.url);
      expect(response?.status()).toBe(410);
      expect(await page.textContent('h1')).toBe('This link has expired');
    });

    const fresh = await requiredUrl('tickets-whoami');
    await withPage(async (page) => {
      await openOneTimeLinkInPage(page, fresh.url);
      // A forged form: the right session cookie, a wrong CSRF token (set without page scripts).
      const forged = await page.context().request.post(`${cp.url}/connect/session/headers`, {
        form: { csrf: 'forged-token', 'header:X-Tickets-Token': GOOD_KEY },
        headers: { cookie: (await page.context().cookies()).map((c) => `${c.name}=${c.value}`).join('; ') },
      });
      expect(forged.status()).toBe(403);
      expect(await forged.text()).toContain('This form could not be accepted');
    });
    expect((await callTool('tickets-whoami', { header: 'x-tickets-token' })).isError).toBe(true);
  });

  it('per-user headers: the form asks for exactly the keys, verifies them upstream, never shows them, replaces and clears', async () => {
    const required = await requiredUrl('tickets-whoami');
    expect(required).toMatchObject({ kind: 'headers', server: 'tickets', required_header_keys: ['X-Tickets-Token'] });
    await withPage(async (page) => {
      await openOneTimeLinkInPage(page, required.url);
      expect(await page.locator('input[type="password"]').count()).toBe(1);
      expect(await page.textContent('label')).toBe('X-Tickets-Token');
      // A value the upstream refuses is not saved.
      await page.fill('input[name="header:X-Tickets-Token"]', 'not-the-right-key');
      await page.getByRole('button', { name: 'Save' }).click();
      expect(await page.textContent('h1')).toBe('The server did not accept these values');
      await page.goBack();
      await page.fill('input[name="header:X-Tickets-Token"]', GOOD_KEY);
      await page.getByRole('button', { name: 'Save' }).click();
      expect(await page.textContent('h1')).toBe('All set');
      expect(await page.content()).not.toContain(GOOD_KEY);
    });
    // Echoed back, the user's own value is removed from the result (the caller never reads a credential the
    // gateway injected); the upstream's recorded request shows which value went.
    expect((await callTool('tickets-whoami', { header: 'x-tickets-token' })).text).toBe('[redacted]');
    expect(lastTicketsToken()).toBe(GOOD_KEY);

    // A new link shows the form again, empty, saying values are stored: never the value.
    const again = await requiredUrlAfterRevealing();
    await withPage(async (page) => {
      await openOneTimeLinkInPage(page, again);
      expect(await page.content()).not.toContain(GOOD_KEY);
      expect(await page.textContent('main')).toContain('You have values stored');
      expect(await page.inputValue('input[name="header:X-Tickets-Token"]')).toBe('');
      await page.fill('input[name="header:X-Tickets-Token"]', OTHER_KEY);
      await page.getByRole('button', { name: 'Save' }).click();
      expect(await page.textContent('h1')).toBe('All set');
    });
    await waitFor(async () => {
      await callTool('tickets-whoami', { header: 'x-tickets-token' });
      return lastTicketsToken() === OTHER_KEY;
    }, { what: 'replaced value used' });

    const clear = await requiredUrlAfterRevealing();
    await withPage(async (page) => {
      await openOneTimeLinkInPage(page, clear);
      await page.getByRole('button', { name: 'Clear my values' }).click();
      expect(await page.textContent('h1')).toBe('Cleared');
    });
    await waitFor(async () => (await callTool('tickets-whoami', { header: 'x-tickets-token' })).required?.kind === 'headers', { what: 'cleared values dropped on the node' });
    expect(nodeLogs.text()).not.toContain(GOOD_KEY);
    expect(cp.logs.text()).not.toContain(OTHER_KEY);
  });

  it('changing perUserHeaderKeys asks users to update their values', async () => {
    const required = await requiredUrl('tickets-whoami');
    await withPage(async (page) => {
      await openOneTimeLinkInPage(page, required.url);
      await page.fill('input[name="header:X-Tickets-Token"]', GOOD_KEY);
      await page.getByRole('button', { name: 'Save' }).click();
      expect(await page.textContent('h1')).toBe('All set');
    });
    await waitFor(async () => {
      await callTool('tickets-whoami', { header: 'x-tickets-token' });
      return lastTicketsToken() === GOOD_KEY;
    }, { what: 'value in use' });
    await cp.gql('mutation { updateMcpServer(input: { name: "tickets", perUserHeaderKeys: ["X-Tickets-Token", "X-Team"] }) { errors { code } } }');
    const update = await waitFor(async () => (await callTool('tickets-whoami', { header: 'x-tickets-token' })).required, { what: 'NEEDS_UPDATE' });
    expect(update.required_header_keys).toEqual(['X-Tickets-Token', 'X-Team']);
    const status = await cp.gql<{ users: { edges: Array<{ node: { headerSets: Array<{ status: string; server: { name: string } }> } }> } }>(
      '{ users(first: 10) { edges { node { headerSets { status server { name } } } } } }',
    );
    expect(status.users.edges[0]?.node.headerSets).toEqual([{ status: 'NEEDS_UPDATE', server: { name: 'tickets' } }]);
  });

  /** While the user has values, no tool call offers a link: an admin hands one out (createConnectLink). */
  async function requiredUrlAfterRevealing(): Promise<string> {
    const users = await cp.gql<{ users: { edges: Array<{ node: { id: string } }> } }>('{ users(first: 1) { edges { node { id } } } }');
    const link = await cp.gql<{ createConnectLink: { url: string } }>('mutation($u: ID!) { createConnectLink(userId: $u, server: "tickets") { url errors { code } } }', {
      u: users.users.edges[0]?.node.id,
    });
    return link.createConnectLink.url;
  }
});
