/**
 * How a virtual key may be presented, on raw sockets (fetch folds repeated headers into one line). A
 * request with two `Authorization` lines was served as whichever key came first (node:http drops the
 * others), while a proxy in front may act on another line: a narrow key first and a wide one second, or the
 * other way round, reached different servers depending on who read the request. Now any repeat is refused
 * (400 `invalid_request`) on every pipeline route, before anything reaches an upstream.
 *
 * Pinned beside it: the key is taken from `Authorization: Bearer` only (any case and spacing RFC 6750
 * allows); never from the query string, cookies, `Proxy-Authorization`, `x-api-key` on `/mcp`, or an identity
 * header a caller could set (`x-gatehouse-user`, `x-forwarded-*`); hostile keys (very long, non-ASCII)
 * are a typed 401, a NUL a 400, never a 5xx.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTwoServerNode, type RawUpstream, type TwoServerNode } from './raw-upstream.js';
import { parseResponses, rawRequest, sendRaw, type RawResponse } from './raw-http.js';

let setup: TwoServerNode | undefined;
/** The node and its upstreams, once started. */
const t = (): TwoServerNode => setup as TwoServerNode;

beforeAll(async () => {
  setup = await startTwoServerNode([
    { name: 'narrow', servers: [{ server: 'crm', tools: ['echo'] }] },
    { name: 'wide', servers: [{ server: 'crm', tools: ['*'] }, { server: 'other', tools: ['*'] }] },
  ]);
});

afterAll(async () => {
  await setup?.close();
});

const narrow = (): string => t().snapshot.keyValues.narrow ?? '';
const wide = (): string => t().snapshot.keyValues.wide ?? '';
const JSON_HEADERS = ['Content-Type: application/json', 'Accept: application/json, text/event-stream'];
const callBody = (name: string): string => JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name, arguments: {} } });

async function send(path: string, headerLines: readonly string[], body = callBody('echo')): Promise<RawResponse> {
  const [answer] = parseResponses(await sendRaw(t().node.url, rawRequest('POST', path, [...JSON_HEADERS, ...headerLines], body)));
  if (!answer) throw new Error('no answer');
  return answer;
}

/** tools/call messages the upstreams received since the marks. */
function relayed(since: { crm: number; other: number }): number {
  const count = (u: RawUpstream, from: number) => u.requests.slice(from).filter((r) => r.body.includes('"tools/call"')).length;
  return count(t().crm, since.crm) + count(t().other, since.other);
}
const mark = () => ({ crm: t().crm.requests.length, other: t().other.requests.length });

describe('two Authorization lines', () => {
  const cases: [string, string, () => string[]][] = [
    ['narrow then wide, /mcp/other', '/mcp/other', () => [`Authorization: Bearer ${narrow()}`, `Authorization: Bearer ${wide()}`]],
    ['wide then narrow, /mcp/other', '/mcp/other', () => [`Authorization: Bearer ${wide()}`, `Authorization: Bearer ${narrow()}`]],
    ['wide then narrow, /mcp', '/mcp', () => [`Authorization: Bearer ${wide()}`, `authorization: Bearer ${narrow()}`]],
    ['the same key twice', '/mcp/crm', () => [`Authorization: Bearer ${narrow()}`, `AUTHORIZATION: Bearer ${narrow()}`]],
    ['a Basic line and a Bearer line', '/mcp/crm', () => ['Authorization: Basic dXNlcjpwYXNz', `Authorization: Bearer ${narrow()}`]],
    ['on /anthropic', '/anthropic/v1/messages', () => [`Authorization: Bearer ${wide()}`, `Authorization: Bearer ${narrow()}`]],
  ];
  for (const [label, path, lines] of cases) {
    it(`${label}: refused with a typed 400, nothing relayed`, async () => {
      const since = mark();
      const body = path === '/mcp' ? callBody('other-echo') : callBody('echo');
      const answer = await send(path, lines(), body);
      expect(answer.status).toBe(400);
      expect(JSON.parse(answer.body)).toMatchObject({ type: 'invalid_request' });
      expect(relayed(since)).toBe(0);
    });
  }

  it('one line still works (control)', async () => {
    const answer = await send('/mcp/other', [`Authorization: Bearer ${wide()}`]);
    expect(answer.status).toBe(200);
    expect(answer.body).toContain('tools/call:echo');
  });
});

describe('where a key is (not) taken from', () => {
  const refusals: [string, string, () => string[]][] = [
    ['the query string', `/mcp/crm?key=KEY&access_token=KEY`, () => []],
    ['a cookie', '/mcp/crm', () => [`Cookie: key=${narrow()}; access_token=${narrow()}`]],
    ['Proxy-Authorization', '/mcp/crm', () => [`Proxy-Authorization: Bearer ${narrow()}`]],
    ['x-api-key on /mcp/{server}', '/mcp/crm', () => [`x-api-key: ${narrow()}`]],
    ['identity headers alone', '/mcp/crm', () => ['X-Gatehouse-User: user_1', 'X-Forwarded-User: dev@example.com', 'X-Forwarded-For: 127.0.0.1', 'X-Remote-User: admin']],
    ['Bearer with no space', '/mcp/crm', () => [`Authorization: Bearer${narrow()}`]],
    ['two tokens on one line', '/mcp/crm', () => [`Authorization: Bearer ${narrow()}, Bearer ${wide()}`]],
  ];
  for (const [label, path, lines] of refusals) {
    it(`${label}: 401, nothing relayed`, async () => {
      const since = mark();
      const answer = await send(path.replaceAll('KEY', narrow()), lines());
      expect(answer.status).toBe(401);
      expect(['virtual_key_required', 'invalid_key']).toContain((JSON.parse(answer.body) as { type: string }).type);
      expect(relayed(since)).toBe(0);
    });
  }

  it('identity headers beside a narrow key widen nothing', async () => {
    const since = mark();
    const answer = await send('/mcp/other', [`Authorization: Bearer ${narrow()}`, 'X-Gatehouse-User: user_1', 'X-Gatehouse-Key: key_wide', 'X-Forwarded-User: admin']);
    expect(answer.status).toBe(404);
    expect(relayed(since)).toBe(0);
  });

  it.each([
    ['lower-case scheme', () => `bearer ${narrow()}`],
    ['upper-case scheme, tabs', () => `BEARER\t\t${narrow()}\t`],
    ['leading and trailing spaces', () => `   Bearer    ${narrow()}   `],
  ])('%s: accepted (RFC 6750 spelling)', async (_label, value) => {
    const answer = await send('/mcp/crm', [`Authorization: ${value()}`]);
    expect(answer.status).toBe(200);
  });

  it.each([
    ['15,000 characters', () => `Bearer gk_${'a'.repeat(15_000)}`],
    ['the key plus one character', () => `Bearer ${narrow()}x`],
    ['a non-ASCII character (UTF-8 on the wire)', () => `Bearer ${narrow()}\u00e9\u2603`],
  ])('a hostile key (%s) is a typed 401', async (_label, value) => {
    const answer = await send('/mcp/crm', [`Authorization: ${value()}`]);
    expect(answer.status).toBe(401);
    expect(JSON.parse(answer.body)).toMatchObject({ type: 'invalid_key' });
  });

  it('a NUL in the key is refused by the HTTP parser, not served', async () => {
    const since = mark();
    const [answer] = parseResponses(await sendRaw(t().node.url, rawRequest('POST', '/mcp/crm', [...JSON_HEADERS, `Authorization: Bearer ${narrow()}\u0000x`], callBody('echo'))));
    expect(answer?.status).toBe(400);
    expect(relayed(since)).toBe(0);
  });
});
