/**
 * Issue 7 acceptance on real components: a control plane, one real upstream MCP server, three data-plane
 * nodes sharing one Redis. A key limited to N requests per minute gets exactly N successful tools/call
 * under concurrent load spread over the three nodes (the rest JSON-RPC -32004 rate_limited); a user
 * provisioned from an access profile sees exactly the profile's tools, and editing the profile removes a
 * tool from that key's tools/list on every node within a second.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNode, type DataPlaneNode } from '../../data-plane/node/node.js';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { postMcp, type RawResponse } from '../support/mcp-http.js';
import { startHttpUpstream, type HttpUpstream } from '../support/upstreams.js';
import { waitFor } from '../support/wait.js';

const redisUrl = process.env.TEST_REDIS_URL;

function rpcErrorCode(r: RawResponse): number | null {
  const body = r.body as { error?: { code?: number } } | null;
  return body?.error?.code ?? null;
}

function toolNames(r: RawResponse): string[] {
  const body = r.body as { result?: { tools?: Array<{ name: string }> } };
  return (body.result?.tools ?? []).map((t) => t.name).sort();
}

describe.skipIf(!redisUrl)('limits and profiles across three nodes sharing Redis', () => {
  let cp: TestControlPlane;
  let upstream: HttpUpstream;
  const nodes: DataPlaneNode[] = [];

  beforeAll(async () => {
    cp = await startTestControlPlane();
    upstream = await startHttpUpstream({ label: 'lim' });
    await cp.gql(`mutation($url: String!) { createMcpServer(input: { name: "tools", connectionType: HTTP, connectionString: $url, toolsToExecute: ["*"] }) { errors { code } } }`, { url: upstream.url });
    for (let i = 0; i < 3; i++) {
      nodes.push(await startNode({ controlPlaneUrl: cp.url, nodeToken: cp.cp.nodeToken, port: 0, nodeId: `lim-node-${i}-${Date.now()}`, stateDir: null, redisUrl: redisUrl!, logger: undefined }));
    }
    for (const node of nodes) await waitFor(async () => (await fetch(`${node.url}/readyz`)).ok, { what: 'node ready' });
  }, 60_000);

  afterAll(async () => {
    for (const node of nodes) await node.close();
    await upstream?.close();
    await cp?.close();
  });

  async function keyWith(extra: string): Promise<string> {
    const email = `u${Math.random().toString(36).slice(2)}@example.com`;
    const user = await cp.gql<{ createUser: { user: { id: string } } }>(`mutation($e: String!) { createUser(input: { email: $e }) { user { id } } }`, { e: email });
    const created = await cp.gql<{ createVirtualKey: { key: string; errors: unknown[] } }>(
      `mutation($u: ID!) { createVirtualKey(input: { userId: $u, name: "k", servers: [{ server: "tools", tools: ["*"] }], ${extra} }) { key errors { code field } } }`,
      { u: user.createUser.user.id },
    );
    expect(created.createVirtualKey.errors).toEqual([]);
    const key = created.createVirtualKey.key;
    for (const node of nodes) await waitFor(async () => (await postMcp(node.url, key, { id: 0, method: 'ping' })).status === 200, { what: 'key on node', intervalMs: 10 });
    return key;
  }

  it('exactly N tools/call succeed in the window under concurrent load over three nodes', async () => {
    const key = await keyWith('rateLimit: { requestsPerMinute: 12 }');
    const calls = Array.from({ length: 45 }, (_, i) =>
      postMcp(nodes[i % 3]!.url, key, { id: i + 1, method: 'tools/call', params: { name: 'tools-echo', arguments: { text: `n${i}` } } }),
    );
    const results = await Promise.all(calls);
    const ok = results.filter((r) => r.status === 200 && (r.body as { result?: unknown }).result !== undefined);
    const limited = results.filter((r) => rpcErrorCode(r) === -32004);
    expect(ok).toHaveLength(12);
    expect(limited).toHaveLength(33);
    expect((limited[0]!.body as { error: { data: { type: string } } }).error.data.type).toBe('rate_limited');
  });

  it('a provisioned key has exactly the profile\'s tools; a profile edit reaches every node within a second', async () => {
    const profile = await cp.gql<{ createAccessProfile: { accessProfile: { id: string }; errors: unknown[] } }>(
      `mutation { createAccessProfile(input: { name: "support", servers: [{ server: "tools", tools: ["echo", "add"] }] }) { accessProfile { id } errors { code field } } }`,
    );
    expect(profile.createAccessProfile.errors).toEqual([]);
    const provisioned = await cp.gql<{ provisionUser: { key: string; errors: unknown[] } }>(`mutation { provisionUser(input: { email: "support@example.com", profile: "support" }) { key errors { code field } } }`);
    expect(provisioned.provisionUser.errors).toEqual([]);
    const key = provisioned.provisionUser.key;
    for (const node of nodes) {
      await waitFor(async () => toolNames(await postMcp(node.url, key, { id: 1, method: 'tools/list' })).length > 0, { what: 'provisioned key served', intervalMs: 10 });
      expect(toolNames(await postMcp(node.url, key, { id: 1, method: 'tools/list' }))).toEqual(['tools-add', 'tools-echo']);
    }

    const started = Date.now();
    await cp.gql(`mutation($id: ID!) { updateAccessProfile(input: { id: $id, servers: [{ server: "tools", tools: ["echo"] }] }) { errors { code } } }`, { id: profile.createAccessProfile.accessProfile.id });
    await Promise.all(
      nodes.map((node) =>
        waitFor(async () => toolNames(await postMcp(node.url, key, { id: 2, method: 'tools/list' })).join(',') === 'tools-echo', { what: 'profile edit on node', intervalMs: 10 }),
      ),
    );
    expect(Date.now() - started).toBeLessThan(1_000);
    const blocked = await postMcp(nodes[2]!.url, key, { id: 3, method: 'tools/call', params: { name: 'tools-add', arguments: { a: 1, b: 2 } } });
    expect(rpcErrorCode(blocked)).toBe(-32003);
  });
});
