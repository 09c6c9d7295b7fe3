/**
 * Claude Code end to end on a PER_USER_OAUTH server: the first `claude -p` tool call gets the
 * auth-required answer naming the connect URL (the upstream is not called); the person completes the
 * consent in Chromium (oidc-provider's login and consent pages); the next `claude -p` call succeeds with
 * that person's own token (the upstream reports the token's subject).
 */
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../data-plane/log.js';
import { startNode, type DataPlaneNode } from '../../data-plane/node/node.js';
import { startAnthropicStandIn, type AnthropicStandIn } from '../support/anthropic-stand-in.js';
import { claudeMcpAdd, claudePrint, createClaudeHome, describeRun, type ClaudeHome } from '../support/claude-code.js';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { LogCapture } from '../support/log-capture.js';
import { startAuthorizationServer, startProtectedMcpServer, type AuthorizationServer, type ProtectedMcpServer } from '../support/oauth-upstream.js';
import { waitFor } from '../support/wait.js';
import { openOneTimeLinkInPage } from '../support/one-time-link.js';

const CONNECT_TOOL = 'mcp__gatehouse__notes-gatehouse_connect_account';
const WHOAMI_TOOL = 'mcp__gatehouse__notes-whoami';

describe('Claude Code on a per-user OAuth server', () => {
  let as: AuthorizationServer;
  let upstream: ProtectedMcpServer;
  let cp: TestControlPlane;
  let node: DataPlaneNode;
  let standIn: AnthropicStandIn;
  let home: ClaudeHome;
  let browser: Browser;

  beforeAll(async () => {
    as = await startAuthorizationServer();
    upstream = await startProtectedMcpServer(as);
    cp = await startTestControlPlane();
    await cp.gql(`mutation($i: CreateMcpServerInput!) { createMcpServer(input: $i) { errors { code } } }`, {
      i: { name: 'notes', connectionType: 'HTTP', connectionString: upstream.url, authType: 'PER_USER_OAUTH', toolsToExecute: ['*'] },
    });
    const user = await cp.gql<{ createUser: { user: { id: string } } }>('mutation { createUser(input: { email: "dana@example.com" }) { user { id } } }');
    const key = await cp.gql<{ createVirtualKey: { key: string } }>(`mutation($i: CreateVirtualKeyInput!) { createVirtualKey(input: $i) { key errors { code } } }`, {
      i: { name: 'dana', userId: user.createUser.user.id, servers: [{ server: 'notes', tools: ['*'] }] },
    });
    node = await startNode({ controlPlaneUrl: cp.url, nodeToken: cp.cp.nodeToken, port: 0, stateDir: null, logger: createLogger('test-node', { destination: new LogCapture() }) });
    await waitFor(async () => (await fetch(`${node.url}/readyz`)).ok, { what: 'node ready' });
    standIn = await startAnthropicStandIn({ toolName: CONNECT_TOOL, toolInput: {} });
    home = await createClaudeHome({ anthropicBaseUrl: standIn.url });
    await claudeMcpAdd(home, 'gatehouse', `${node.url}/mcp`, { Authorization: `Bearer ${key.createVirtualKey.key}` });
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await home?.cleanup();
    await standIn?.close();
    await node?.close();
    await cp?.close();
    await upstream?.close();
    await as?.close();
  });

  it('first call: auth required with the URL; consent in Chromium; next call succeeds with the user\'s token', async () => {
    const first = await claudePrint(home, 'Look up my notes.', [CONNECT_TOOL, WHOAMI_TOOL]);
    expect(first.exitCode, describeRun(first)).toBe(0);
    const seen = standIn.toolResultsSeen().find((r) => r.text.includes('/connect/ghc_'));
    expect(seen, describeRun(first)).toBeDefined();
    expect(seen?.isError).toBe(true);
    const url = /Open this URL to connect your account: (\S+)/.exec(seen?.text ?? '')?.[1] ?? '';
    expect(url.startsWith(`${cp.url}/connect/ghc_`)).toBe(true);
    expect(upstream.callers).toEqual([]);

    const context = await browser.newContext({ javaScriptEnabled: false });
    try {
      const page = await context.newPage();
      await openOneTimeLinkInPage(page, url);
      await page.getByRole('button', { name: 'Continue to sign in' }).click();
      await page.fill('input[name="login"]', 'dana-sub');
      await page.fill('input[name="password"]', 'any');
      await page.getByRole('button', { name: 'Sign-in' }).click();
      await page.getByRole('button', { name: 'Continue' }).click();
      await page.waitForURL(`${cp.url}/oauth/callback**`);
      expect(await page.textContent('main')).toContain('go back to Claude Code');
    } finally {
      await context.close();
    }

    standIn.setScript({ toolName: WHOAMI_TOOL, toolInput: {} });
    const second = await claudePrint(home, 'Look up my notes again.', [CONNECT_TOOL, WHOAMI_TOOL]);
    expect(second.exitCode, describeRun(second)).toBe(0);
    expect(standIn.toolResultsSeen()).toContainEqual(expect.objectContaining({ isError: false, text: 'sub:dana-sub' }));
    expect(upstream.callers).toEqual(['dana-sub']);
  }, 120_000);
});
