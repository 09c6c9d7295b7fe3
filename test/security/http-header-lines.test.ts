/**
 * Header lines a request must carry once, and expectations, at the node's HTTP edge, on raw sockets (fetch
 * folds repeats and sets Host itself). node:http served a request with two `Host` lines as the first one
 * (a proxy in front may route on the other), answered an HTTP/1.1 request without Host, and an
 * `Expect:` other than 100-continue, with its bare status line; repeated `Content-Type` or MCP transport
 * fields (session id, method, name, `Mcp-Param-*`) were read as node:http picked or joined them. All are now
 * the table's `{type, message}` (400 `invalid_request`, 417 `expectation_failed`) on a closed connection,
 * before anything reaches an upstream. Node's own framing refusals (repeated Content-Length or
 * Transfer-Encoding) are typed too.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTwoServerNode, type TwoServerNode } from './raw-upstream.js';
import { parseResponses, rawRequest, sendRaw, type RawResponse } from './raw-http.js';

let setup: TwoServerNode | undefined;
const t = (): TwoServerNode => setup as TwoServerNode;

beforeAll(async () => {
  setup = await startTwoServerNode([{ name: 'dev', servers: [{ server: 'crm', tools: ['*'] }, { server: 'other', tools: ['*'] }] }]);
});

afterAll(async () => {
  await setup?.close();
});

const call = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { region: 'eu' } } });
const keyLine = (): string => `Authorization: Bearer ${t().snapshot.keyValues.dev ?? ''}`;
const jsonLines = (): string[] => ['Content-Type: application/json', 'Accept: application/json, text/event-stream', keyLine()];
/** Requests other than the pool's own (initialize, catalog) that reached an upstream. */
const relayed = (): number => [...t().crm.requests, ...t().other.requests].filter((r) => r.body.includes('"tools/call"')).length;

/** A request's bytes without rawRequest's Host line (the test writes its own). */
function withoutHost(method: string, path: string, version: string, lines: readonly string[], body = call): string {
  return `${method} ${path} HTTP/${version}\r\n${[...lines, `Content-Length: ${Buffer.byteLength(body)}`, 'Connection: close'].join('\r\n')}\r\n\r\n${body}`;
}

async function only(bytes: string): Promise<RawResponse> {
  const answers = parseResponses(await sendRaw(t().node.url, bytes));
  expect(answers).toHaveLength(1);
  return answers[0] as RawResponse;
}

function expectTyped(answer: RawResponse, status: number, type: string): void {
  expect(answer.status).toBe(status);
  expect(answer.headers['content-type']).toBe('application/json');
  expect(answer.headers.connection).toBe('close');
  expect(JSON.parse(answer.body)).toMatchObject({ type, message: expect.any(String) });
}

describe('Host', () => {
  const cases: [string, () => string][] = [
    ['two Host lines that differ', () => withoutHost('POST', '/mcp/crm', '1.1', ['Host: gatehouse.test', 'Host: evil.test', ...jsonLines()])],
    ['two equal Host lines', () => withoutHost('POST', '/mcp/crm', '1.1', ['Host: gatehouse.test', 'host: gatehouse.test', ...jsonLines()])],
    ['no Host on HTTP/1.1', () => withoutHost('POST', '/mcp/crm', '1.1', jsonLines())],
    ['a Host with a path in it', () => withoutHost('POST', '/mcp/crm', '1.1', ['Host: gatehouse.test/mcp/other', ...jsonLines()])],
    ['a Host with userinfo', () => withoutHost('POST', '/mcp/crm', '1.1', ['Host: user@gatehouse.test', ...jsonLines()])],
    ['a Host with a space', () => withoutHost('POST', '/mcp/crm', '1.1', ['Host: gatehouse.test evil.test', ...jsonLines()])],
  ];
  for (const [label, bytes] of cases) {
    it(`${label}: typed 400, nothing relayed`, async () => {
      const before = relayed();
      expectTyped(await only(bytes()), 400, 'invalid_request');
      expect(relayed()).toBe(before);
    });
  }

  it('also before /healthz and unknown paths', async () => {
    expectTyped(await only(withoutHost('GET', '/healthz', '1.1', ['Host: a', 'Host: b'], '')), 400, 'invalid_request');
    expectTyped(await only(withoutHost('GET', '/nowhere', '1.1', [], '')), 400, 'invalid_request');
  });

  it('HTTP/1.0 without Host, and one Host with a port or an IPv6 literal, are served (control)', async () => {
    expect((await only(withoutHost('POST', '/mcp/crm', '1.0', jsonLines()))).status).toBe(200);
    expect((await only(withoutHost('POST', '/mcp/crm', '1.1', ['Host: gatehouse.test:8080', ...jsonLines()]))).status).toBe(200);
    expect((await only(withoutHost('POST', '/mcp/crm', '1.1', ['Host: [::1]:8080', ...jsonLines()]))).status).toBe(200);
  });
});

describe('other fields sent once', () => {
  const cases: [string, string[]][] = [
    ['Content-Type', ['Content-Type: text/plain']],
    ['Mcp-Session-Id', ['Mcp-Session-Id: a', 'Mcp-Session-Id: b']],
    ['Mcp-Protocol-Version', ['MCP-Protocol-Version: 2025-06-18', 'Mcp-Protocol-Version: 2025-11-25']],
    ['Mcp-Method', ['Mcp-Method: tools/call', 'Mcp-Method: tools/list']],
    ['Mcp-Name', ['Mcp-Name: echo', 'Mcp-Name: secret']],
    ['Mcp-Param-Region', ['Mcp-Param-Region: us', 'mcp-param-region: eu']],
    ['Last-Event-ID', ['Last-Event-ID: 1', 'Last-Event-ID: 2']],
    ['Origin', ['Origin: http://a.test', 'Origin: http://b.test']],
    ['X-Api-Key', ['X-Api-Key: a', 'X-Api-Key: b']],
  ];
  for (const [label, lines] of cases) {
    for (const path of ['/mcp/crm', '/mcp']) {
      it(`${label} twice on ${path}: typed 400 naming it, nothing relayed`, async () => {
        const before = relayed();
        const answer = await only(rawRequest('POST', path, [...jsonLines(), ...lines], call));
        expectTyped(answer, 400, 'invalid_request');
        expect((JSON.parse(answer.body) as { message: string }).message.toLowerCase()).toContain(label.toLowerCase());
        expect(relayed()).toBe(before);
      });
    }
  }

  it('distinct Mcp-Param-* names, each once, pass this check (control)', async () => {
    const answer = await only(rawRequest('POST', '/mcp/crm', [...jsonLines(), 'Mcp-Param-Region: eu', 'Mcp-Param-Zone: a'], call));
    expect(answer.status).toBe(200);
  });
});

describe("node's framing refusals are typed", () => {
  const start = (): string => `POST /mcp/crm HTTP/1.1\r\nHost: gatehouse.test\r\n${jsonLines().join('\r\n')}\r\n`;
  it.each([
    ['Content-Length twice, different values', () => `${start()}Content-Length: ${call.length}\r\nContent-Length: 1\r\n\r\n${call}`],
    ['Transfer-Encoding twice', () => `${start()}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`],
    ['an HTTP version node does not speak', () => start().replace('HTTP/1.1', 'HTTP/3.0') + `Content-Length: ${call.length}\r\n\r\n${call}`],
  ])('%s', async (_label, bytes) => {
    const before = relayed();
    expectTyped(await only(bytes()), 400, 'invalid_request');
    expect(relayed()).toBe(before);
  });
});

describe('Expect', () => {
  it.each(['Expect: 200-ok', 'Expect: nothing', 'Expect: 100'])('%s: typed 417, nothing relayed', async (line) => {
    const before = relayed();
    expectTyped(await only(rawRequest('POST', '/mcp/crm', [...jsonLines(), line], call)), 417, 'expectation_failed');
    expect(relayed()).toBe(before);
  });

  it('100-continue still gets 100 then the answer (control)', async () => {
    const answers = parseResponses(await sendRaw(t().node.url, rawRequest('POST', '/mcp/crm', [...jsonLines(), 'Expect: 100-continue'], call)));
    expect(answers.map((a) => a.status)).toEqual([100, 200]);
  });
});
