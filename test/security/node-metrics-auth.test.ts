/**
 * A node's `/metrics` names every MCP server and says which are down or refuse their credentials, on the
 * port every developer's laptop reaches: it is served only to a scraper presenting the node's
 * GATEHOUSE_METRICS_TOKEN, and refused (typed 401) to everyone else, virtual keys included, and to
 * everyone when no token is configured.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSnapshot, startTestNode, type BuiltSnapshot, type TestNode } from '../data-plane/helpers.js';
import { TEST_METRICS_TOKEN } from '../support/node-metrics.js';

let withToken: TestNode;
let withoutToken: TestNode;
let snapshot: BuiltSnapshot;

beforeAll(async () => {
  withToken = await startTestNode();
  withoutToken = await startTestNode({ metricsToken: null });
  snapshot = await buildSnapshot({ servers: [{ name: 'secretcrm', url: 'http://127.0.0.1:9/mcp' }], keys: [{ name: 'dev', servers: [{ server: 'secretcrm', tools: ['*'] }] }] });
  withToken.apply(snapshot);
  withoutToken.apply(snapshot);
});

afterAll(async () => {
  await withToken?.close();
  await withoutToken?.close();
});

async function scrape(node: TestNode, authorization?: string): Promise<{ status: number; text: string }> {
  const res = await fetch(`${node.url}/metrics`, { headers: authorization === undefined ? {} : { authorization } });
  return { status: res.status, text: await res.text() };
}

describe("a node's /metrics", () => {
  it('is served to the metrics token', async () => {
    const answer = await scrape(withToken, `Bearer ${TEST_METRICS_TOKEN}`);
    expect(answer.status).toBe(200);
    expect(answer.text).toContain('gatehouse_snapshot_version');
  });

  it.each([
    ['no credential', undefined],
    ['an empty bearer', 'Bearer '],
    ['a wrong token', 'Bearer not-the-metrics-token'],
    ['the token with a suffix', `Bearer ${TEST_METRICS_TOKEN}x`],
    ['a prefix of the token', `Bearer ${TEST_METRICS_TOKEN.slice(0, -1)}`],
    ['basic auth', `Basic ${Buffer.from(`x:${TEST_METRICS_TOKEN}`).toString('base64')}`],
    ['a huge value', `Bearer ${'x'.repeat(8000)}`],
  ])('is refused with %s (typed 401, names no server)', async (_, authorization) => {
    const answer = await scrape(withToken, authorization);
    expect(answer.status).toBe(401);
    expect(JSON.parse(answer.text)).toMatchObject({ type: 'metrics_token_required' });
    expect(answer.text).not.toContain('secretcrm');
  });

  it('is refused to a virtual key', async () => {
    const answer = await scrape(withToken, `Bearer ${snapshot.keyValues.dev ?? ''}`);
    expect(answer.status).toBe(401);
    expect(answer.text).not.toContain('secretcrm');
  });

  it('is refused to everyone when the node has no metrics token', async () => {
    for (const authorization of [undefined, 'Bearer ', `Bearer ${TEST_METRICS_TOKEN}`, 'Bearer null', 'Bearer undefined']) {
      const answer = await scrape(withoutToken, authorization);
      expect(answer.status).toBe(401);
      expect(answer.text).not.toContain('secretcrm');
    }
  });
});
