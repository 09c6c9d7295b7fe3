/**
 * Resources and prompts on the aggregated `/mcp` reach a shared OAUTH server with its token, never without.
 * They once travelled over the node's pooled SDK connection, which carries a server's configured headers
 * only: `prompts/get` failed with "refused the gateway's credentials (HTTP 401); an administrator must
 * update them" and the server's status became CREDENTIALS_REFUSED, though its token worked for every tool
 * call. A later fix refused such servers on `/mcp` (served on `/mcp/{server}` only). Now lists, reads, gets
 * go out with the token the credentials stage resolves, over that identity's own connection, and the
 * upstream sees no unauthenticated request. Real control plane, node, oidc-provider and an MCP SDK server
 * that checks bearer tokens (its resource and prompt name the token's subject).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DataPlaneNode } from '../../data-plane/node/node.js';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { postMcp } from '../support/mcp-http.js';
import { authorizeSharedOAuth, createSharedOAuthServer, startOAuthUpstream, type AuthorizationServer, type ProtectedMcpServer } from '../support/oauth-upstream.js';
import { startNodeOf } from '../support/node-of.js';

describe('aggregated resources and prompts with a shared OAUTH server', () => {
  let cp: TestControlPlane;
  let node: DataPlaneNode;
  let oauth: { as: AuthorizationServer; upstream: ProtectedMcpServer; close(): Promise<void> };
  let key = '';

  const status = async (): Promise<string> => (await cp.gql<{ mcpServer: { status: string } }>('{ mcpServer(name: "wiki") { status } }')).mcpServer.status;

  beforeAll(async () => {
    cp = await startTestControlPlane();
    oauth = await startOAuthUpstream();
    await createSharedOAuthServer(cp, 'wiki', oauth.upstream.url);
    const user = await cp.gql<{ createUser: { user: { id: string } } }>('mutation { createUser(input: { email: "erin@example.com" }) { user { id } } }');
    const created = await cp.gql<{ createVirtualKey: { key: string } }>('mutation($i: CreateVirtualKeyInput!) { createVirtualKey(input: $i) { key } }', {
      i: { name: 'erin', userId: user.createUser.user.id, servers: [{ server: 'wiki', tools: ['*'] }] },
    });
    key = created.createVirtualKey.key;
    await authorizeSharedOAuth(cp, 'wiki', 'ops-admin');
    node = await startNodeOf(cp, { reportIntervalMs: 100 });
  }, 60_000);

  afterAll(async () => {
    await node?.close();
    await cp?.close();
    await oauth?.close();
  });

  it('lists, reads and gets with the server\'s token, and sends its upstream nothing without it', async () => {
    const call = await postMcp(node.url, key, { id: 1, method: 'tools/call', params: { name: 'wiki-whoami', arguments: {} } });
    expect(JSON.stringify(call.body)).toContain('sub:ops-admin');
    const refusedBefore = oauth.upstream.unauthorized();

    const resources = await postMcp(node.url, key, { id: 2, method: 'resources/list', params: {} });
    expect((resources.body as { result: { resources: { uri: string }[] } }).result.resources.map((r) => r.uri)).toEqual(['gatehouse://wiki/mem://page']);
    const prompts = await postMcp(node.url, key, { id: 3, method: 'prompts/list', params: {} });
    expect((prompts.body as { result: { prompts: { name: string; description?: string }[] } }).result.prompts).toEqual([
      expect.objectContaining({ name: 'wiki-summary', description: 'summary prompt listed to ops-admin' }),
    ]);
    const got = await postMcp(node.url, key, { id: 4, method: 'prompts/get', params: { name: 'wiki-summary' } });
    expect(JSON.stringify(got.body)).toContain('summary for sub:ops-admin');
    const read = await postMcp(node.url, key, { id: 5, method: 'resources/read', params: { uri: 'gatehouse://wiki/mem://page' } });
    expect((read.body as { result: { contents: { uri: string; text: string }[] } }).result.contents).toEqual([
      expect.objectContaining({ uri: 'gatehouse://wiki/mem://page', text: 'page of sub:ops-admin' }),
    ]);

    // Nothing went upstream without the token, so nothing could be mistaken for a refused credential.
    expect(oauth.upstream.unauthorized()).toBe(refusedBefore);
    // And the server still works, and says so, after the node's next reports.
    const again = await postMcp(node.url, key, { id: 6, method: 'tools/call', params: { name: 'wiki-whoami', arguments: {} } });
    expect(JSON.stringify(again.body)).toContain('sub:ops-admin');
    expect(await status()).toBe('ACTIVE');
  });
});
