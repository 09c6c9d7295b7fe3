/**
 * A key revoked, expired or rotated through GraphQL is refused by separately started nodes within one
 * second, with nothing restarted; and two nodes on one control plane serve the same key identically.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDialects } from '../support/db.js';
import { startGatewayFixture, type GatewayFixture } from '../support/gateway-fixture.js';
import { errorType, postMcp } from '../support/mcp-http.js';
import { spawnNode, type NodeProcess } from '../support/node-process.js';
import { waitFor } from '../support/wait.js';

describe.each(testDialects)('key changes reach every node on %s', (dialect) => {
  let gw: GatewayFixture;
  let nodes: NodeProcess[] = [];

  beforeAll(async () => {
    gw = await startGatewayFixture(dialect);
    nodes = await Promise.all(
      ['a', 'b'].map((id) => spawnNode({ controlPlaneUrl: gw.cp.url, nodeToken: gw.cp.cp.nodeToken, nodeId: `node-${id}-${dialect}`, env: gw.nodeEnv })),
    );
    for (const node of nodes) await waitFor(async () => (await fetch(`${node.url}/readyz`)).ok, { what: 'node ready' });
  }, 60_000);

  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    await gw?.close();
  });

  /** Waits until every node answers `key` with `type`; returns the time that took after `since`. */
  async function refusedEverywhere(key: string, type: string, since: number): Promise<number> {
    await Promise.all(
      nodes.map((node) =>
        waitFor(async () => errorType(await postMcp(node.url, key, { id: 1, method: 'ping' })) === type, { timeoutMs: 5_000, intervalMs: 10, what: `${type} on ${node.url}` }),
      ),
    );
    return Date.now() - since;
  }

  it('two nodes serve the same key identically', async () => {
    const lists = await Promise.all(nodes.map((n) => postMcp(n.url, gw.key, { id: 1, method: 'tools/list' })));
    for (const l of lists) expect(l.status).toBe(200);
    expect(lists[0]!.body).toEqual(lists[1]!.body);
    const names = ((lists[0]!.body as { result: { tools: { name: string }[] } }).result.tools.map((t) => t.name)).sort();
    expect(names).toEqual(gw.expectedTools);
    const calls = await Promise.all(nodes.map((n) => postMcp(n.url, gw.key, { id: 2, method: 'tools/call', params: { name: 'kb_sse-echo', arguments: { text: 'same' } } })));
    expect(calls[0]!.body).toEqual(calls[1]!.body);
    expect(JSON.stringify(calls[0]!.body)).toContain('sse:same');
  });

  it('a revoked key is refused by every node within 1 s', async () => {
    const { id, key } = await gw.gqlCreateKey([{ server: 'crm_http', tools: ['echo'] }]);
    for (const node of nodes) await waitFor(async () => (await postMcp(node.url, key, { id: 1, method: 'ping' })).status === 200, { what: 'new key accepted' });
    const started = Date.now();
    const r = await gw.cp.gql<{ revokeVirtualKey: { errors: unknown[] } }>(`mutation($id: ID!) { revokeVirtualKey(input: { id: $id }) { errors { code } } }`, { id });
    expect(r.revokeVirtualKey.errors).toEqual([]);
    const elapsed = await refusedEverywhere(key, 'key_revoked', started);
    expect(elapsed).toBeLessThan(1_000);
    // It travelled as a delta (keys only changed), not as the whole snapshot.
    for (const node of nodes) expect(node.logs.some((l) => l.includes('snapshot delta applied'))).toBe(true);
    const refused = await postMcp(nodes[0]!.url, key, { id: 1, method: 'tools/list' });
    expect(refused.status).toBe(403);
  });

  it('an expired key is refused by every node within 1 s of its expiry', async () => {
    const { id, key } = await gw.gqlCreateKey([{ server: 'crm_http', tools: ['echo'] }]);
    for (const node of nodes) await waitFor(async () => (await postMcp(node.url, key, { id: 1, method: 'ping' })).status === 200, { what: 'new key accepted' });
    const expiresAt = new Date(Date.now() + 1_500);
    const r = await gw.cp.gql<{ updateVirtualKey: { errors: unknown[] } }>(
      `mutation($id: ID!, $at: DateTime!) { updateVirtualKey(input: { id: $id, expiresAt: $at }) { errors { code message } } }`,
      { id, at: expiresAt.toISOString() },
    );
    expect(r.updateVirtualKey.errors).toEqual([]);
    const elapsed = await refusedEverywhere(key, 'key_expired', expiresAt.getTime());
    expect(elapsed).toBeLessThan(1_000);
  });

  it('a rotated key: the old value is refused, the new one works, on every node', async () => {
    const { id, key } = await gw.gqlCreateKey([{ server: 'crm_http', tools: ['echo'] }]);
    for (const node of nodes) await waitFor(async () => (await postMcp(node.url, key, { id: 1, method: 'ping' })).status === 200, { what: 'key accepted' });
    const started = Date.now();
    const r = await gw.cp.gql<{ rotateVirtualKey: { key: string; errors: unknown[] } }>(`mutation($id: ID!) { rotateVirtualKey(input: { id: $id }) { key errors { code } } }`, { id });
    expect(r.rotateVirtualKey.errors).toEqual([]);
    const fresh = r.rotateVirtualKey.key;
    expect(fresh).toMatch(/^gk_/);
    expect(fresh).not.toBe(key);
    expect(await refusedEverywhere(key, 'invalid_key', started)).toBeLessThan(1_000);
    // The same snapshot that drops the old hash carries the new one.
    for (const node of nodes) expect((await postMcp(node.url, fresh, { id: 1, method: 'ping' })).status).toBe(200);
  });

  it('a deleted key, and the keys of a deleted user, are refused by every node within 1 s', async () => {
    const { id: keyId, key } = await gw.gqlCreateKey([{ server: 'crm_http', tools: ['echo'] }]);
    const other = await gw.cp.gql<{ createUser: { user: { id: string } } }>(
      `mutation { createUser(input: { email: "leaver-${dialect}@example.com" }) { user { id } errors { code } } }`,
    );
    const leaverId = other.createUser.user.id;
    const leaver = await gw.cp.gql<{ createVirtualKey: { key: string } }>(
      `mutation($u: ID!) { createVirtualKey(input: { userId: $u, name: "leaver", servers: [], allowNoServers: true }) { key errors { code } } }`,
      { u: leaverId },
    );
    const leaverKey = leaver.createVirtualKey.key;
    for (const node of nodes) {
      for (const k of [key, leaverKey]) await waitFor(async () => (await postMcp(node.url, k, { id: 1, method: 'ping' })).status === 200, { what: 'keys accepted' });
    }
    const started = Date.now();
    await gw.cp.gql(`mutation($id: ID!) { deleteVirtualKey(input: { id: $id }) { errors { code } } }`, { id: keyId });
    await gw.cp.gql(`mutation($id: ID!) { deleteUser(input: { id: $id }) { errors { code } } }`, { id: leaverId });
    expect(await refusedEverywhere(key, 'invalid_key', started)).toBeLessThan(1_000);
    expect(await refusedEverywhere(leaverKey, 'invalid_key', started)).toBeLessThan(1_000);
  });

  it('the original key is unaffected by the others', async () => {
    for (const node of nodes) expect((await postMcp(node.url, gw.key, { id: 1, method: 'ping' })).status).toBe(200);
  });
});
