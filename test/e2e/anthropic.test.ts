/**
 * `/anthropic` end to end (issue 7): a control plane with a provider (API key sealed, prices with cache
 * prices), one node, and the Messages API stand-in. The virtual key is accepted as Bearer or x-api-key and
 * never reaches the provider, which sees the provider key; streaming and JSON answers pass through; usage
 * (input, output, cache-write, cache-read tokens) is priced and the key's spend in GraphQL equals it
 * exactly; an unpriced model is model_blocked; once the budget is spent the next call is 402
 * budget_exceeded before it reaches the provider; a provider outage is a typed 502.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNode, type DataPlaneNode } from '../../data-plane/node/node.js';
import { expectedNanos, startAnthropicStandIn, type AnthropicStandIn, type WireUsage } from '../support/anthropic-stand-in.js';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { waitFor } from '../support/wait.js';

const PROVIDER_KEY = 'sk-ant-provider-secret-0123456789';
const PRICE = { model: 'claude-sonnet-4*', inputPerMTok: 3, outputPerMTok: 15, cacheWritePerMTok: 3.75, cacheReadPerMTok: 0.3 };

const nanos = (u: WireUsage): number => expectedNanos(PRICE, u);

describe('/anthropic through one node', () => {
  let cp: TestControlPlane;
  let standIn: AnthropicStandIn;
  let node: DataPlaneNode;
  let keyId: string;
  let key: string;

  beforeAll(async () => {
    cp = await startTestControlPlane();
    standIn = await startAnthropicStandIn({ toolName: 'x', toolInput: {}, cacheTokens: { creation: 120, read: 2048 } });
    const provider = await cp.gql<{ upsertProvider: { errors: unknown[] } }>(
      `mutation($input: UpsertProviderInput!) { upsertProvider(input: $input) { errors { code field } } }`,
      { input: { name: 'anthropic', baseUrl: standIn.url, apiKey: PROVIDER_KEY, prices: [PRICE] } },
    );
    expect(provider.upsertProvider.errors).toEqual([]);
    const user = await cp.gql<{ createUser: { user: { id: string } } }>(`mutation { createUser(input: { email: "llm@example.com" }) { user { id } } }`);
    const created = await cp.gql<{ createVirtualKey: { key: string; virtualKey: { id: string } } }>(
      `mutation($u: ID!) { createVirtualKey(input: { userId: $u, name: "llm", servers: [], allowNoServers: true, budgets: [{ maxUsd: 0.05, period: DAILY }] }) { key virtualKey { id } } }`,
      { u: user.createUser.user.id },
    );
    key = created.createVirtualKey.key;
    keyId = created.createVirtualKey.virtualKey.id;
    node = await startNode({ controlPlaneUrl: cp.url, nodeToken: cp.cp.nodeToken, port: 0, nodeId: `anthropic-${Date.now()}`, stateDir: null });
    await waitFor(async () => (await fetch(`${node.url}/anthropic/v1/models`, { headers: { 'x-api-key': key } })).status !== 503, { what: 'provider on node' });
  }, 60_000);

  afterAll(async () => {
    await node?.close();
    await standIn?.close();
    await cp?.close();
  });

  const messages = (extra: Record<string, unknown> = {}) =>
    JSON.stringify({ model: 'claude-sonnet-4-5', max_tokens: 100, messages: [{ role: 'user', content: 'hello there' }], ...extra });

  async function spendNanos(): Promise<number> {
    const r = await cp.gql<{ virtualKey: { spend: { costNanoUsd: string } } }>(`query($id: ID!) { virtualKey(id: $id) { spend { costNanoUsd } } }`, { id: keyId });
    return Number(r.virtualKey.spend.costNanoUsd);
  }

  it('streams SSE event by event with the provider key injected and the virtual key never forwarded; usage is priced exactly', async () => {
    const before = standIn.requests.length;
    const res = await fetch(`${node.url}/anthropic/v1/messages?beta=true`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
      body: messages({ stream: true }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const text = await res.text();
    const events = [...text.matchAll(/^event: (\w+)$/gm)].map((m) => m[1]);
    expect(events[0]).toBe('message_start');
    expect(events.at(-1)).toBe('message_stop');

    const seen = standIn.requests[before]!;
    expect(seen.url).toBe('/v1/messages?beta=true');
    expect(seen.headers['x-api-key']).toBe(PROVIDER_KEY);
    expect(seen.headers.authorization).toBeUndefined();
    expect(seen.headers['anthropic-version']).toBe('2023-06-01');
    expect(JSON.stringify(seen.headers)).not.toContain(key);

    const start = JSON.parse(/event: message_start\ndata: (.*)/.exec(text)![1]!) as { message: { usage: { input_tokens: number; cache_creation_input_tokens: number; cache_read_input_tokens: number } } };
    const delta = JSON.parse(/event: message_delta\ndata: (.*)/.exec(text)![1]!) as { usage: { output_tokens: number } };
    const expected = nanos({ ...start.message.usage, output_tokens: delta.usage.output_tokens });
    expect(start.message.usage.cache_read_input_tokens).toBe(2048);
    await waitFor(async () => (await spendNanos()) === expected, { what: `spend ${expected} nano-USD in GraphQL` });
  });

  it('passes a JSON answer through with x-api-key auth and charges it on top', async () => {
    const before = await spendNanos();
    const res = await fetch(`${node.url}/anthropic/v1/messages`, { method: 'POST', headers: { 'x-api-key': key, 'content-type': 'application/json' }, body: messages() });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { usage: { input_tokens: number; output_tokens: number; cache_creation_input_tokens: number; cache_read_input_tokens: number } };
    expect(standIn.requests.at(-1)!.headers['x-api-key']).toBe(PROVIDER_KEY);
    await waitFor(async () => (await spendNanos()) === before + nanos(body.usage), { what: 'JSON call charged' });
  });

  it('passes count_tokens through; refuses an unpriced model, a bad key and an unknown path with typed errors', async () => {
    const count = await fetch(`${node.url}/anthropic/v1/messages/count_tokens`, { method: 'POST', headers: { 'x-api-key': key, 'content-type': 'application/json' }, body: messages() });
    expect(count.status).toBe(200);
    expect(((await count.json()) as { input_tokens: number }).input_tokens).toBeGreaterThan(0);

    const before = standIn.requests.length;
    const blocked = await fetch(`${node.url}/anthropic/v1/messages`, { method: 'POST', headers: { 'x-api-key': key }, body: JSON.stringify({ model: 'gpt-9', messages: [] }) });
    expect(blocked.status).toBe(403);
    expect(await blocked.json()).toMatchObject({ type: 'model_blocked', error: { type: 'model_blocked' } });
    const bad = await fetch(`${node.url}/anthropic/v1/messages`, { method: 'POST', headers: { 'x-api-key': 'gk_nope' }, body: messages() });
    expect(bad.status).toBe(401);
    expect(((await bad.json()) as { type: string }).type).toBe('invalid_key');
    const unknown = await fetch(`${node.url}/anthropic/v1/files`, { headers: { 'x-api-key': key } });
    expect(unknown.status).toBe(404);
    expect(standIn.requests.length).toBe(before);
  });

  it('refuses with 402 budget_exceeded once the budget is spent, before the provider sees the call', async () => {
    // Each call costs about 0.0011 USD (2048 cache-read + 120 cache-write tokens + a few): spend the 0.05 budget.
    for (let i = 0; i < 100 && (await spendNanos()) < 50_000_000; i++) {
      const r = await fetch(`${node.url}/anthropic/v1/messages`, { method: 'POST', headers: { 'x-api-key': key }, body: messages({ max_tokens: 1 }) });
      if (r.status === 402) break;
      await r.arrayBuffer();
    }
    const before = standIn.requests.length;
    const refused = await waitFor(async () => {
      const r = await fetch(`${node.url}/anthropic/v1/messages`, { method: 'POST', headers: { authorization: `Bearer ${key}` }, body: messages({ stream: true }) });
      return r.status === 402 ? r : (await r.arrayBuffer(), null);
    }, { what: '402' });
    const body = (await refused.json()) as { type: string; message: string; error: { message: string } };
    expect(body.type).toBe('budget_exceeded');
    expect(body.error.message).toMatch(/daily budget of \$0\.05/);
    // The node reports spend every second: GraphQL catches up with the counters.
    const spent = await waitFor(async () => {
      const n = await spendNanos();
      return n >= 50_000_000 ? n : null;
    }, { what: 'spend persisted' });
    // Calls were sequential: at most the one in flight at the crossing went over.
    expect(spent).toBeLessThan(50_000_000 + 2_000_000);
    expect(standIn.requests.length).toBeLessThanOrEqual(before + 1);
  });
});
