/**
 * `/anthropic`: token counts a provider reports are believed only up to what one call can use. A provider (or
 * a proxy in its place) answering `usage.input_tokens: 1e308` made the call's cost Infinity: the node's spend
 * report carried it as null, the control plane refused the batch, and the node resent that batch forever, so
 * no later call's spend (any key's) was persisted again. Now such a call is charged as if it used the bound
 * (a finite, reportable cost), and spend reporting goes on. A control plane, one node, a provider stand-in.
 */
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNode, type DataPlaneNode } from '../../data-plane/node/node.js';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { closeServer, listen } from '../support/upstreams.js';
import { waitFor } from '../support/wait.js';

const PRICE = { model: 'claude-sonnet-4*', inputPerMTok: 3, outputPerMTok: 15, cacheWritePerMTok: 3.75, cacheReadPerMTok: 0.3 };

describe('/anthropic usage the provider reports', () => {
  let cp: TestControlPlane;
  let provider: Server;
  let node: DataPlaneNode;
  const keys: Array<{ id: string; value: string }> = [];

  beforeAll(async () => {
    cp = await startTestControlPlane();
    provider = createServer((req, res) => {
      req.resume();
      const absurd = req.url?.includes('absurd=1') ?? false;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ model: 'claude-sonnet-4-5', content: [{ type: 'text', text: 'hi' }], usage: { input_tokens: absurd ? 1e308 : 1000, output_tokens: absurd ? 1e300 : 10 } }));
    });
    const providerUrl = `http://127.0.0.1:${await listen(provider, 0)}`;
    const upserted = await cp.gql<{ upsertProvider: { errors: unknown[] } }>(`mutation($input: UpsertProviderInput!) { upsertProvider(input: $input) { errors { code } } }`, {
      input: { name: 'anthropic', baseUrl: providerUrl, apiKey: 'sk-ant-usage-bounds-0123456789', prices: [PRICE] },
    });
    expect(upserted.upsertProvider.errors).toEqual([]);
    const user = await cp.gql<{ createUser: { user: { id: string } } }>(`mutation { createUser(input: { email: "usage@example.com" }) { user { id } } }`);
    for (const name of ['absurd', 'normal']) {
      const created = await cp.gql<{ createVirtualKey: { key: string; virtualKey: { id: string } } }>(
        `mutation($u: ID!, $n: String!) { createVirtualKey(input: { userId: $u, name: $n, servers: [], allowNoServers: true }) { key virtualKey { id } } }`,
        { u: user.createUser.user.id, n: name },
      );
      keys.push({ id: created.createVirtualKey.virtualKey.id, value: created.createVirtualKey.key });
    }
    node = await startNode({ controlPlaneUrl: cp.url, nodeToken: cp.cp.nodeToken, port: 0, nodeId: `usage-bounds-${Date.now()}`, stateDir: null });
    await waitFor(async () => (await fetch(`${node.url}/anthropic/v1/models`, { headers: { 'x-api-key': keys[0]!.value } })).status !== 503, { what: 'provider on node' });
  }, 60_000);

  afterAll(async () => {
    await node?.close();
    if (provider) await closeServer(provider);
    await cp?.close();
  });

  async function spendNanos(keyId: string): Promise<number> {
    const r = await cp.gql<{ virtualKey: { spend: { costNanoUsd: string } } }>(`query($id: ID!) { virtualKey(id: $id) { spend { costNanoUsd } } }`, { id: keyId });
    return Number(r.virtualKey.spend.costNanoUsd);
  }

  async function call(key: string, query = ''): Promise<number> {
    const res = await fetch(`${node.url}/anthropic/v1/messages${query}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'claude-sonnet-4-5', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }),
    });
    await res.text();
    return res.status;
  }

  it('a call reporting absurd token counts is charged a finite cost, and later calls\' spend is still persisted', async () => {
    expect(await call(keys[0]!.value, '?absurd=1')).toBe(200);
    expect(await call(keys[1]!.value)).toBe(200);
    // 1000 input + 10 output tokens at the price: 3,000,000 + 150,000 nano-USD.
    await waitFor(async () => (await spendNanos(keys[1]!.id)) === 3_150_000, { what: 'the normal call\'s spend persisted', timeoutMs: 10_000 });
    const absurd = await spendNanos(keys[0]!.id);
    expect(Number.isFinite(absurd)).toBe(true);
    expect(absurd).toBeGreaterThan(0);
  });
});
