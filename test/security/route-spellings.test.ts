/**
 * Key scope on `/mcp/{server}` and `/mcp` under every spelling of the route and the tool name (probed,
 * found to hold; pinned here). The node routes on the raw path without decoding or normalising it, and
 * names a server only when the rest of the path is exactly a server name, so a percent-encoded, cased,
 * dotted, doubled, suffixed (`/`, `;`), look-alike or overlong spelling, or an absolute-form target, is a
 * typed 404 (or node's typed 400), never another server. Tool names are matched exactly against the
 * key's grant after the first hyphen (server names have none): a tool named with the separator, its case,
 * look-alike hyphens or another Unicode normalisation of a granted name is refused and never relayed.
 * Raw sockets: fetch would normalise the paths itself.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTwoServerNode, type RawUpstream, type TwoServerNode } from './raw-upstream.js';
import { parseResponses, rawRequest, sendRaw } from './raw-http.js';

let setup: TwoServerNode | undefined;
const t = (): TwoServerNode => setup as TwoServerNode;

beforeAll(async () => {
  setup = await startTwoServerNode([
    // `é` in NFC; `b-c` holds the separator.
    { name: 'narrow', servers: [{ server: 'crm', tools: ['echo', 'b-c', '\u00e9'] }] },
    { name: 'split', servers: [{ server: 'crm', tools: ['b-c'] }, { server: 'other', tools: ['c'] }] },
  ]);
});

afterAll(async () => {
  await setup?.close();
});

const callBody = (name: string): string => JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name, arguments: {} } });

async function post(keyName: string, path: string, body: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const headers = ['Content-Type: application/json', 'Accept: application/json, text/event-stream', `Authorization: Bearer ${t().snapshot.keyValues[keyName] ?? ''}`];
  const [answer] = parseResponses(await sendRaw(t().node.url, Buffer.from(rawRequest('POST', path, headers, body), 'utf8')));
  if (!answer) throw new Error('no answer');
  return { status: answer.status, json: JSON.parse(answer.body) as Record<string, unknown> };
}

/** tools/call names an upstream received since `since`. */
function relayed(upstream: RawUpstream, since: number): string[] {
  return upstream.requests.slice(since).flatMap((r) => {
    const m = (r.body === '' ? null : JSON.parse(r.body)) as { method?: string; params?: { name?: string } } | null;
    return m?.method === 'tools/call' ? [m.params?.name ?? ''] : [];
  });
}

describe('/mcp/{server}: spellings of a server the key is not granted', () => {
  const spellings = [
    '/mcp/%6fther',
    '/mcp/%6F%74%68%65%72',
    '/mcp/OTHER',
    '/MCP/other',
    '/Mcp/other',
    '/mcp/other/',
    '/mcp//other',
    '/mcp/crm/../other',
    '/mcp/./other',
    '/mcp/crm/%2e%2e/other',
    '/mcp/crm%2F..%2Fother',
    '/mcp/crm;/../other',
    '/mcp/other;crm',
    '/mcp/other%00',
    '/mcp/other%20',
    '/mcp/%D0%BEther',
    '/mcp\\other',
    '//mcp/other',
    'http://gatehouse.test/mcp/other',
    `/mcp/other${'/'.repeat(2_000)}`,
    `/mcp/${'o'.repeat(8_000)}`,
  ];
  for (const path of spellings) {
    it(path.length > 60 ? `${path.slice(0, 40)}… (${path.length} characters)` : path, async () => {
      const before = { crm: t().crm.requests.length, other: t().other.requests.length };
      const answer = await post('narrow', path, callBody('echo'));
      expect([400, 404]).toContain(answer.status);
      expect(typeof answer.json.type).toBe('string');
      expect(relayed(t().other, before.other)).toEqual([]);
      expect(relayed(t().crm, before.crm)).toEqual([]);
    });
  }

  it('the granted server with a query string is that server (control)', async () => {
    const before = t().crm.requests.length;
    const answer = await post('narrow', '/mcp/crm?server=other&x=/mcp/other', callBody('echo'));
    expect(answer.status).toBe(200);
    expect(relayed(t().crm, before)).toEqual(['echo']);
  });
});

describe('tool names with the separator, case, look-alikes and normalisation', () => {
  it('server crm with tool b-c and server other with tool c are told apart on /mcp', async () => {
    const before = { crm: t().crm.requests.length, other: t().other.requests.length };
    expect((await post('split', '/mcp', callBody('crm-b-c'))).status).toBe(200);
    expect((await post('split', '/mcp', callBody('other-c'))).status).toBe(200);
    expect(relayed(t().crm, before.crm)).toEqual(['b-c']);
    expect(relayed(t().other, before.other)).toEqual(['c']);
  });

  const refusedAggregated = [
    'crm-b',
    'crm-b-c-',
    'crm--b-c',
    'crm-b--c',
    'crm-b\u2010c',
    'crm-b\u2011c',
    'crm-B-C',
    'CRM-b-c',
    'crm-\uff42-c',
    'crm-b-c\u200b',
    'crm-b-c ',
    ' crm-b-c',
    'crm\u2010b-c',
    'crm_other-c',
    'other-b-c',
    'crm-c',
    'crm-e\u0301',
    'crm-\u00c9',
  ];
  for (const name of refusedAggregated) {
    it(`/mcp tools/call ${JSON.stringify(name)} is tool_blocked, never relayed`, async () => {
      const before = { crm: t().crm.requests.length, other: t().other.requests.length };
      const answer = await post(name === 'crm-c' || name === 'other-b-c' ? 'split' : 'narrow', '/mcp', callBody(name));
      expect(answer.status).toBe(200);
      expect(answer.json).toMatchObject({ error: { code: -32003, data: { type: 'tool_blocked' } } });
      expect(relayed(t().crm, before.crm)).toEqual([]);
      expect(relayed(t().other, before.other)).toEqual([]);
    });
  }

  for (const name of ['B-C', 'b\u2010c', 'b', 'c', 'e\u0301', '\u00c9', 'echo\u0000', 'ECHO']) {
    it(`/mcp/crm tools/call ${JSON.stringify(name)} is tool_blocked, never relayed`, async () => {
      const before = t().crm.requests.length;
      const answer = await post('narrow', '/mcp/crm', callBody(name));
      expect(answer.json).toMatchObject({ error: { code: -32003, data: { type: 'tool_blocked' } } });
      expect(relayed(t().crm, before)).toEqual([]);
    });
  }

  it('the granted spellings reach the upstream with exactly the granted names (control)', async () => {
    const before = t().crm.requests.length;
    expect((await post('narrow', '/mcp', callBody('crm-\u00e9'))).status).toBe(200);
    expect((await post('narrow', '/mcp/crm', callBody('b-c'))).status).toBe(200);
    expect(relayed(t().crm, before)).toEqual(['\u00e9', 'b-c']);
  });
});
