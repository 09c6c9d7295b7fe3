/**
 * JSON-RPC ids come back exactly as sent, or the request is refused: never answered under another id. An
 * integer beyond 2^53 − 1 parses to the nearest double (9007199254740993 becomes ...992), and a gateway that
 * re-serialises would answer a client with an id it never sent, or match the answer to another of its
 * requests. On `/mcp` and `/mcp/{server}`: the largest safe integers and long string ids are echoed byte for
 * byte; larger and fractional numbers get a typed invalid-request error (id null, since the id cannot be
 * repeated) and nothing reaches the upstream.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTwoServerNode, type TwoServerNode } from './raw-upstream.js';

let gateway: TwoServerNode;

beforeAll(async () => {
  gateway = await startTwoServerNode([{ name: 'dev', servers: [{ server: 'crm', tools: ['*'] }] }]);
});

afterAll(async () => {
  await gateway?.close();
});

/** Posts `body` as written (ids as raw JSON text). */
async function post(path: string, body: string): Promise<{ status: number; text: string }> {
  const res = await fetch(`${gateway.node.url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${gateway.snapshot.keyValues.dev ?? ''}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body,
  });
  return { status: res.status, text: await res.text() };
}

const callWithId = (idJson: string, tool: string): string => `{"jsonrpc":"2.0","id":${idJson},"method":"tools/call","params":{"name":"${tool}","arguments":{}}}`;
const listWithId = (idJson: string): string => `{"jsonrpc":"2.0","id":${idJson},"method":"tools/list","params":{}}`;

describe.each([
  ['/mcp', 'crm-lookup'],
  ['/mcp/crm', 'lookup'],
])('JSON-RPC ids on %s', (path, tool) => {
  it.each(['9007199254740991', '-9007199254740991', '0', `"${'x'.repeat(300)}"`, '"9007199254740993"'])('id %s comes back byte for byte', async (idJson) => {
    const answer = await post(path, callWithId(idJson, tool));
    expect(answer.status).toBe(200);
    expect(answer.text).toContain(`"id":${idJson}`);
    expect(answer.text).toContain('"result"');
  });

  it.each(['9007199254740993', '-9007199254740993', '1e300', '12345678901234567890', '1.5'])('id %s is refused with a typed error, and nothing reaches the upstream', async (idJson) => {
    for (const body of [callWithId(idJson, tool), listWithId(idJson)]) {
      const before = gateway.crm.requests.length;
      const answer = await post(path, body);
      expect(answer.status).toBe(400);
      const parsed = JSON.parse(answer.text) as { id?: unknown; error?: { code?: number; message?: string }; type?: string; message?: string };
      const message = parsed.error?.message ?? parsed.message ?? '';
      expect(message).toMatch(/integer within/);
      if (parsed.error) {
        expect(parsed.error.code).toBe(-32600);
        expect(parsed.id).toBeNull();
      }
      expect(gateway.crm.requests.slice(before).filter((r) => r.body.includes('tools/'))).toEqual([]);
    }
  });
});
