/**
 * Hostile input at the parse stage (issue 5): params nesting thousands of levels deep, anywhere in the
 * message (arguments, `_meta`), are refused with a JSON-RPC invalid-params error naming the bound, and
 * another caller's call in flight on the same upstream at the same moment is not disturbed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_JSON_DEPTH, exceedsDepth } from '../../data-plane/pipeline/json-depth.js';
import { startHttpUpstream, type HttpUpstream } from '../support/upstreams.js';
import { buildSnapshot, postMcp, startTestNode, type BuiltSnapshot, type TestNode } from './helpers.js';

let upstream: HttpUpstream;
let node: TestNode;
let snapshot: BuiltSnapshot;

function nested(depth: number): unknown {
  let value: unknown = 'leaf';
  for (let i = 0; i < depth; i++) value = i % 2 === 0 ? { a: value } : [value];
  return value;
}

/** The same nesting as JSON text, built without recursion (JSON.stringify itself would overflow here). */
function nestedJson(depth: number): string {
  let open = '';
  let close = '';
  for (let i = depth - 1; i >= 0; i--) {
    open += i % 2 === 0 ? '{"a":' : '[';
    close = (i % 2 === 0 ? '}' : ']') + close;
  }
  return `${open}"leaf"${close}`;
}

beforeAll(async () => {
  upstream = await startHttpUpstream();
  node = await startTestNode();
  snapshot = await buildSnapshot({
    servers: [{ name: 'crm', url: upstream.url }],
    keys: [{ name: 'a', servers: [{ server: 'crm', tools: ['*'] }] }, { name: 'b', servers: [{ server: 'crm', tools: ['*'] }] }],
  });
  node.apply(snapshot);
});

afterAll(async () => {
  await node?.close();
  await upstream?.close();
});

describe('nesting depth', () => {
  it('exceedsDepth counts objects and arrays alike and survives any depth', () => {
    expect(exceedsDepth('x', 0)).toBe(false);
    expect(exceedsDepth({}, 1)).toBe(false);
    expect(exceedsDepth({ a: [] }, 1)).toBe(true);
    expect(exceedsDepth(nested(MAX_JSON_DEPTH - 1))).toBe(false);
    expect(exceedsDepth(nested(200_000))).toBe(true);
  });

  it('a deeply nested tools/call is -32602 naming the bound; another caller\'s call in flight completes', async () => {
    const auth = (key: string): Record<string, string> => ({ authorization: `Bearer ${snapshot.keyValues[key] ?? ''}` });
    const slow = postMcp(node.mcpUrl, { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'crm-slow', arguments: { ms: 300 } } }, auth('b'));
    const deep = nestedJson(5_000);
    const hostile = [`{"name":"crm-echo","arguments":{"text":"x","deep":${deep}}}`, `{"name":"crm-echo","arguments":{"text":"x"},"_meta":{"deep":${deep}}}`];
    for (const [i, params] of hostile.entries()) {
      const res = await postMcp(node.mcpUrl, `{"jsonrpc":"2.0","id":${10 + i},"method":"tools/call","params":${params}}`, auth('a'));
      expect(res.status).toBe(200);
      expect((await res.json()) as unknown).toEqual({ jsonrpc: '2.0', id: 10 + i, error: { code: -32602, message: `params nest deeper than ${MAX_JSON_DEPTH} levels` } });
    }
    const answer = (await (await slow).json()) as { result: { isError?: boolean; content: { text: string }[] } };
    expect(answer.result.isError).not.toBe(true);
    // Nothing deep reached the upstream; a call within the bound works.
    expect(upstream.requests.filter((r) => r.rpcMethod === 'tools/call')).toHaveLength(1);
    const fine = await postMcp(node.mcpUrl, { jsonrpc: '2.0', id: 20, method: 'tools/call', params: { name: 'crm-echo', arguments: { text: 'ok', deep: nested(20) } } }, auth('a'));
    expect(((await fine.json()) as { result: { content: { text: string }[] } }).result.content[0]?.text).toBe('http:ok');
  });
});
