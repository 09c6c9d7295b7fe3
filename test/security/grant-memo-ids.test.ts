/**
 * A key's grants are its own, whatever its tool names hold. The node memoised grant lists (keys from one
 * profile share one tools map) under an id made by joining server and tool names with U+0000/U+0001/U+0002,
 * and tool names are free text (the control plane takes any 1 to 128 characters). So a key granted one
 * oddly named tool on `crm`, `"x\u0002other\u0001*"`, had the same id as another key's list `crm: [x],
 * other: [*]`, and, built after it, got that key's map: every tool of a server it was never granted; a
 * grant `"a\u0000b"` became the tools `a` and `b`. Checked on a real node with two recording upstreams.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTwoServerNode, type RawUpstream, type TwoServerNode } from './raw-upstream.js';

let setup: TwoServerNode | undefined;
/** The node and its upstreams, once started. */
const t = (): TwoServerNode => setup as TwoServerNode;

beforeAll(async () => {
  // The wide key comes first, so its list is memoised before the odd ones are looked up.
  setup = await startTwoServerNode([
    { name: 'wide', servers: [{ server: 'crm', tools: ['x'] }, { server: 'other', tools: ['*'] }] },
    { name: 'odd', servers: [{ server: 'crm', tools: ['x\u0002other\u0001*'] }] },
    { name: 'pair', servers: [{ server: 'crm', tools: ['a', 'b'] }] },
    { name: 'joined', servers: [{ server: 'crm', tools: ['a\u0000b'] }] },
  ]);
});

afterAll(async () => {
  await setup?.close();
});

async function call(key: string, path: string, tool: string): Promise<{ status: number; text: string }> {
  const res = await fetch(`${t().node.url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${t().snapshot.keyValues[key] ?? ''}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: tool, arguments: {} } }),
  });
  return { status: res.status, text: await res.text() };
}

/** tools/call names an upstream received since `since`. */
function calls(upstream: RawUpstream, since: number): string[] {
  return upstream.requests.slice(since).flatMap((r) => {
    const m = (r.body === '' ? null : JSON.parse(r.body)) as { method?: string; params?: { name?: string } } | null;
    return m?.method === 'tools/call' ? [m.params?.name ?? ''] : [];
  });
}

describe('grant lists whose tool names hold separator characters', () => {
  it('the control: the wide key reaches other', async () => {
    const answer = await call('wide', '/mcp', 'other-anything');
    expect(answer.text).toContain('tools/call:anything');
  });

  it('a key granted one tool on crm gets nothing on other, on /mcp or /mcp/other', async () => {
    const before = t().other.requests.length;
    const aggregated = await call('odd', '/mcp', 'other-anything');
    expect(aggregated.status).toBe(200);
    expect(JSON.parse(aggregated.text)).toMatchObject({ error: { code: -32003, data: { type: 'tool_blocked' } } });
    const direct = await call('odd', '/mcp/other', 'anything');
    expect(direct.status).toBe(404);
    expect(JSON.parse(direct.text)).toMatchObject({ type: 'not_found' });
    expect(calls(t().other, before)).toEqual([]);
  });

  it('nor crm-x, which it was not granted either', async () => {
    const before = t().crm.requests.length;
    const answer = await call('odd', '/mcp', 'crm-x');
    expect(JSON.parse(answer.text)).toMatchObject({ error: { data: { type: 'tool_blocked' } } });
    expect(calls(t().crm, before)).toEqual([]);
  });

  it('a grant "a\\u0000b" is that one name, not the tools a and b', async () => {
    expect((await call('pair', '/mcp', 'crm-a')).text).toContain('tools/call:a');
    const before = t().crm.requests.length;
    for (const tool of ['a', 'b']) {
      const answer = await call('joined', '/mcp/crm', tool);
      expect(JSON.parse(answer.text)).toMatchObject({ error: { data: { type: 'tool_blocked' } } });
    }
    expect(calls(t().crm, before)).toEqual([]);
  });
});
