/**
 * Limits count every call: a JSON-RPC batch on `/mcp/{server}` (MCP 2025-03-26 clients may send one) holding
 * several tools/call messages must go through the limits stage once per call (rate limits, budgets and
 * per-tool prices are per call), as `/mcp` does per message. Counted with a recording limiter in the
 * node's real pipeline; the upstream is the raw recorder.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatewayError } from '../../data-plane/errors.js';
import type { LimitSubject, Limiter } from '../../data-plane/pipeline/limits.js';
import { startRawServerNode, type RawServerNode } from './raw-upstream.js';

let crm: RawServerNode;
const admitted: LimitSubject[] = [];
/** Calls of tool `priced` are refused past the first one (stands in for a budget or a rate limit). */
let pricedLeft = 1;
const limiter: Limiter = {
  admit(subject) {
    admitted.push(subject);
    if (subject.tool === 'priced' && pricedLeft-- <= 0) return new GatewayError('rate_limited', { headers: { 'retry-after': '60' } });
    return { settle: () => undefined };
  },
};

beforeAll(async () => {
  crm = await startRawServerNode({ hooks: { limiter } });
});

afterAll(async () => {
  await crm?.close();
});

const call = (id: number, name: string): Record<string, unknown> => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: {} } });

/** tools/call messages that reached the upstream since `since`. */
function upstreamCalls(since: number): string[] {
  return crm.upstream.requests.slice(since).flatMap((r) => {
    const parsed = JSON.parse(r.body || 'null') as unknown;
    const messages = (Array.isArray(parsed) ? parsed : [parsed]) as { method?: string; params?: { name?: string } }[];
    return messages.filter((m) => m?.method === 'tools/call').map((m) => m.params?.name ?? '');
  });
}

describe('a batch of tools/call messages on /mcp/{server}', () => {
  it('is admitted per call: the limits stage sees each tool', async () => {
    admitted.length = 0;
    const before = crm.upstream.requests.length;
    const answer = await crm.post('/mcp/crm', [call(1, 'echo'), call(2, 'add'), call(3, 'whoami')]);
    expect(answer.status).toBeLessThan(500);
    const ran = upstreamCalls(before);
    // Every call that ran upstream was admitted for that tool.
    expect(admitted.filter((s) => s.method === 'tools/call').map((s) => s.tool).sort()).toEqual(expect.arrayContaining(ran.sort()));
    expect(admitted.filter((s) => s.method === 'tools/call').length).toBeGreaterThanOrEqual(ran.length);
  });

  it('a call the limits refuse never runs, whatever its place in the batch', async () => {
    pricedLeft = 1;
    const before = crm.upstream.requests.length;
    await crm.post('/mcp/crm', [call(1, 'echo'), call(2, 'priced'), call(3, 'priced'), call(4, 'priced')]);
    expect(upstreamCalls(before).filter((name) => name === 'priced').length).toBeLessThanOrEqual(1);
  });
});
