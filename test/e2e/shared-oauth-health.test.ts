/**
 * A shared OAUTH server is watched like one with configured headers (issue 5 item 4): its catalog is fetched
 * with its token as soon as a node has both (no client needs to list tools first for `McpServer.tools` to
 * fill), and when idle it is probed with its token, so an upstream that goes away shows UNREACHABLE within
 * seconds with no traffic at all. Before, both skipped every server whose credential is not its configured
 * headers: an OAUTH server's tools stayed unknown to operators until someone listed them, and its status
 * said whatever the last call had seen. It is never asked without its token. Real control plane, node,
 * oidc-provider and an MCP SDK server that checks bearer tokens.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DataPlaneNode } from '../../data-plane/node/node.js';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { authorizeSharedOAuth, createSharedOAuthServer, startOAuthUpstream, type AuthorizationServer, type ProtectedMcpServer } from '../support/oauth-upstream.js';
import { startNodeOf } from '../support/node-of.js';
import { waitFor } from '../support/wait.js';

interface ServerView {
  status: string;
  statusReason: string | null;
  tools: { name: string }[] | null;
}

describe('a shared OAUTH server without client traffic', () => {
  let cp: TestControlPlane;
  let node: DataPlaneNode;
  let oauth: { as: AuthorizationServer; upstream: ProtectedMcpServer; close(): Promise<void> };
  let upstreamClosed = false;
  let refusedAtConsent = 0;

  const view = async (): Promise<ServerView> => (await cp.gql<{ mcpServer: ServerView }>('{ mcpServer(name: "wiki") { status statusReason tools { name } } }')).mcpServer;

  beforeAll(async () => {
    cp = await startTestControlPlane();
    oauth = await startOAuthUpstream();
    await createSharedOAuthServer(cp, 'wiki', oauth.upstream.url);
    node = await startNodeOf(cp, { reportIntervalMs: 100, upstreamProbeIntervalMs: 200 });
  }, 60_000);

  afterAll(async () => {
    await node?.close();
    await cp?.close();
    if (!upstreamClosed) await oauth?.close();
    else await oauth?.as.close();
  });

  it('fills McpServer.tools once the server has its token, asking only with the token', async () => {
    // The node has the server before it has a token: nothing can be listed yet, and nothing is asked.
    expect((await view()).tools ?? []).toEqual([]);
    await authorizeSharedOAuth(cp, 'wiki', 'ops-admin');
    // The control plane's discovery asked without a token on purpose (RFC 9728: the 401 names the metadata).
    refusedAtConsent = oauth.upstream.unauthorized();
    const listed = await waitFor(async () => {
      const tools = (await view()).tools;
      return tools && tools.length > 0 ? tools : null;
    }, { timeoutMs: 15_000, what: 'the catalog of wiki reported without any client' });
    expect(listed.map((t) => t.name)).toContain('whoami');
    expect(oauth.upstream.unauthorized()).toBe(refusedAtConsent);
    expect(oauth.upstream.callers).toEqual([]);
    expect((await view()).status).toBe('ACTIVE');
  });

  it('shows the upstream UNREACHABLE within seconds when it goes away, with no traffic', async () => {
    await oauth.upstream.close();
    upstreamClosed = true;
    const down = await waitFor(async () => {
      const server = await view();
      return server.status === 'UNREACHABLE' ? server : null;
    }, { timeoutMs: 15_000, what: 'wiki UNREACHABLE' });
    expect(down.statusReason).toMatch(/wiki/);
    expect(oauth.upstream.unauthorized()).toBe(refusedAtConsent);
  });
});
