/**
 * Key scope on the aggregated `/mcp` beyond tools: resources, templates, prompts and completions of a
 * server the key is not granted never reach that server, whatever spelling the name or URI takes (case,
 * whitespace, look-alike hyphens, path tricks in `gatehouse://` URIs), alone or in a batch with allowed
 * calls; nor do those of a granted server that is disabled. The granted server and the others are
 * separate upstreams, so any request the hidden one records is a leak.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSnapshot, postMcp, startTestNode, type BuiltSnapshot, type TestNode } from '../data-plane/helpers.js';
import { startHttpUpstream, type HttpUpstream } from '../support/upstreams.js';

let granted: HttpUpstream;
let hidden: HttpUpstream;
let node: TestNode;
let snapshot: BuiltSnapshot;

beforeAll(async () => {
  granted = await startHttpUpstream({ label: 'granted' });
  hidden = await startHttpUpstream({ label: 'hidden' });
  node = await startTestNode();
  snapshot = await buildSnapshot({
    servers: [
      { name: 'crm', url: granted.url },
      { name: 'hidden', url: hidden.url },
      // Granted, but disabled: as unreachable for the key as a server it is not granted.
      { name: 'off', url: hidden.url, disabled: true },
    ],
    keys: [{ name: 'narrow', servers: [{ server: 'crm', tools: ['echo'] }, { server: 'off', tools: ['*'] }] }],
  });
  node.apply(snapshot);
});

/** What the hidden upstream was asked on a caller's behalf (the node's own catalog fetches, tools/list, do not count). */
function relayedToHidden(since: number): string[] {
  const own = new Set(['initialize', 'tools/list']);
  return hidden.requests.slice(since).flatMap((r) => (r.rpcMethod !== null && !own.has(r.rpcMethod) && !r.rpcMethod.startsWith('notifications/') ? [r.rpcMethod] : []));
}

afterAll(async () => {
  await node?.close();
  await granted?.close();
  await hidden?.close();
});

const auth = (): Record<string, string> => ({ authorization: `Bearer ${snapshot.keyValues.narrow ?? ''}` });
const rpc = (id: number, method: string, params: Record<string, unknown>): Record<string, unknown> => ({ jsonrpc: '2.0', id, method, params });

describe('/mcp never relays to a server the key is not granted', () => {
  const messages: [string, Record<string, unknown>][] = [
    ['tools/call hidden-echo', rpc(1, 'tools/call', { name: 'hidden-echo', arguments: { text: 'x' } })],
    ['tools/call HIDDEN-echo', rpc(1, 'tools/call', { name: 'HIDDEN-echo', arguments: { text: 'x' } })],
    ['tools/call " hidden-echo"', rpc(1, 'tools/call', { name: ' hidden-echo', arguments: { text: 'x' } })],
    ['tools/call hidden\u2010echo (unicode hyphen)', rpc(1, 'tools/call', { name: 'hidden\u2010echo', arguments: { text: 'x' } })],
    ['tools/call crm-secret_tool (granted server, tool not granted)', rpc(1, 'tools/call', { name: 'crm-secret_tool', arguments: {} })],
    ['resources/read gatehouse://hidden/…', rpc(1, 'resources/read', { uri: 'gatehouse://hidden/mem://note' })],
    ['resources/read gatehouse://crm/../hidden/…', rpc(1, 'resources/read', { uri: 'gatehouse://crm/../hidden/mem://note' })],
    ['resources/read gatehouse://HIDDEN/…', rpc(1, 'resources/read', { uri: 'gatehouse://HIDDEN/mem://note' })],
    ['resources/read gatehouse://hidden%2F…', rpc(1, 'resources/read', { uri: 'gatehouse://hidden%2Fmem://note' })],
    ['prompts/get hidden-greet', rpc(1, 'prompts/get', { name: 'hidden-greet', arguments: { name: 'x' } })],
    ['completion/complete on a hidden prompt', rpc(1, 'completion/complete', { ref: { type: 'ref/prompt', name: 'hidden-greet' }, argument: { name: 'name', value: 'x' } })],
    ['completion/complete on a hidden resource', rpc(1, 'completion/complete', { ref: { type: 'ref/resource', uri: 'gatehouse://hidden/mem://{x}' }, argument: { name: 'x', value: 'x' } })],
    ['tools/call off-echo (disabled server)', rpc(1, 'tools/call', { name: 'off-echo', arguments: { text: 'x' } })],
    ['resources/read gatehouse://off/… (disabled server)', rpc(1, 'resources/read', { uri: 'gatehouse://off/mem://note' })],
    ['prompts/get off-greet (disabled server)', rpc(1, 'prompts/get', { name: 'off-greet', arguments: { name: 'x' } })],
    ['resources/subscribe on a hidden resource', rpc(1, 'resources/subscribe', { uri: 'gatehouse://hidden/mem://note' })],
  ];
  for (const [label, message] of messages) {
    it(label, async () => {
      const before = hidden.requests.length;
      const res = await postMcp(node.mcpUrl, message, auth());
      expect(res.status).toBeLessThan(500);
      const body = await res.text();
      expect(body).not.toContain('hidden:');
      expect(body).not.toContain('classified');
      expect(relayedToHidden(before)).toEqual([]);
    });
  }

  it('a batch mixing an allowed call with hidden ones runs only the allowed one', async () => {
    const before = hidden.requests.length;
    const res = await postMcp(node.mcpUrl, [rpc(1, 'tools/call', { name: 'crm-echo', arguments: { text: 'ok' } }), ...messages.map(([, m], i) => ({ ...m, id: 10 + i }))], auth());
    const body = await res.text();
    expect(body).toContain('granted:ok');
    expect(body).not.toContain('hidden:');
    expect(relayedToHidden(before)).toEqual([]);
  });

  it('lists show nothing of the hidden server', async () => {
    for (const method of ['tools/list', 'resources/list', 'resources/templates/list', 'prompts/list']) {
      const body = await (await postMcp(node.mcpUrl, rpc(1, method, {}), auth())).text();
      expect(body, method).not.toContain('hidden');
    }
  });
});
