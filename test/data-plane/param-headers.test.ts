/**
 * `Mcp-Param-{Name}` on `/mcp` (MCP 2026-07-28 basic/transports/streamable-http §Custom Headers from Tool
 * Parameters): for a tool whose `inputSchema` marks a property `x-mcp-header`, a header that disagrees with
 * the argument (plain or Base64 sentinel), one sent for an argument not in the body, or (on the 2026-07-28
 * wire) one missing for an argument in the body is 400 HeaderMismatch (-32020) naming the header, recorded,
 * never forwarded, and never echoing a value. Headers a tool does not declare, and 2025 clients that send
 * none, pass as before. The upstream is a small MCP server over node:http whose `test_header_param` declares
 * `Region` as the conformance fixture's 2026 tool does (test/fixtures/conformance/modern.ts).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { RequestRecord } from '../../data-plane/pipeline/context.js';
import { hasParamHeaders, paramBindings, paramHeaderMismatch } from '../../data-plane/mcp/method-headers.js';
import { startHttpUpstream, type HttpUpstream } from '../support/upstreams.js';
import { waitFor } from '../support/wait.js';
import { MODERN_META, buildSnapshot, postMcp, startTestNode, type BuiltSnapshot, type TestNode } from './helpers.js';

let fixture: Server;
/** tools/call requests the upstream received. */
let forwardedCalls = 0;

const TOOLS = [
  { name: 'test_header_param', description: 'Mirrors its region argument into the Mcp-Param-Region header', inputSchema: { type: 'object', properties: { region: { type: 'string', 'x-mcp-header': 'Region' } } } },
];

function mcpUpstream(req: IncomingMessage, res: ServerResponse): void {
  let raw = '';
  req.on('data', (chunk: Buffer) => (raw += chunk.toString('utf8')));
  req.on('end', () => {
    if (req.method !== 'POST') {
      res.writeHead(405).end();
      return;
    }
    const message = JSON.parse(raw) as { id?: number; method?: string; params?: { protocolVersion?: string; arguments?: { region?: unknown } } };
    if (message.id === undefined) {
      res.writeHead(202).end();
      return;
    }
    if (message.method === 'tools/call') forwardedCalls++;
    const result =
      message.method === 'initialize'
        ? { protocolVersion: message.params?.protocolVersion ?? '2025-06-18', capabilities: { tools: {} }, serverInfo: { name: 'params', version: '1' } }
        : message.method === 'tools/list'
          ? { tools: TOOLS }
          : message.method === 'tools/call'
            ? { content: [{ type: 'text', text: `region=${String(message.params?.arguments?.region)}` }] }
            : {};
    const body = JSON.stringify({ jsonrpc: '2.0', id: message.id, result });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
  });
}
let upstream: HttpUpstream;
let node: TestNode;
let snapshot: BuiltSnapshot;
const records: RequestRecord[] = [];

beforeAll(async () => {
  fixture = createServer(mcpUpstream);
  await new Promise<void>((resolve) => fixture.listen(0, '127.0.0.1', resolve));
  upstream = await startHttpUpstream();
  node = await startTestNode({ hooks: { onRecord: (record) => records.push(record) } });
  snapshot = await buildSnapshot({
    servers: [
      { name: 'conf', url: `http://127.0.0.1:${(fixture.address() as AddressInfo).port}/mcp` },
      { name: 'crm', url: upstream.url },
    ],
    keys: [{ name: 'dev', servers: [{ server: 'conf', tools: ['*'] }, { server: 'crm', tools: ['echo'] }] }],
  });
  node.apply(snapshot);
  await waitFor(() => node.pool.catalogs().some((c) => c.server === 'conf'), { what: "the fixture's catalog" });
});

afterAll(async () => {
  await node?.close();
  await upstream?.close();
  fixture?.closeAllConnections();
  await new Promise((resolve) => fixture?.close(resolve));
});

beforeEach(() => {
  records.length = 0;
});

const TOOL = 'conf-test_header_param';
const b64 = (value: string): string => `=?base64?${Buffer.from(value, 'utf8').toString('base64')}?=`;

interface Answer {
  status: number;
  body: { error?: { code: number; message: string }; result?: { content?: { text: string }[] } };
}

async function call(args: Record<string, unknown>, headers: Record<string, string>, modern = false): Promise<Answer> {
  const params = modern ? { name: TOOL, arguments: args, _meta: MODERN_META } : { name: TOOL, arguments: args };
  const wire: Record<string, string> = modern ? { 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/call', 'mcp-name': TOOL } : { 'mcp-protocol-version': '2025-06-18' };
  const res = await postMcp(node.mcpUrl, { jsonrpc: '2.0', id: 5, method: 'tools/call', params }, { authorization: `Bearer ${snapshot.keyValues.dev ?? ''}`, ...wire, ...headers });
  return { status: res.status, body: (await res.json()) as Answer['body'] };
}

const forwarded = (): number => forwardedCalls;

describe('Mcp-Param headers that agree with the arguments pass', () => {
  it.each([
    ['plain', 'us-west1', 'us-west1', false],
    ['Base64 sentinel', 'zürich', b64('zürich'), false],
    ['plain, on the 2026-07-28 wire', 'us-west1', 'us-west1', true],
    ['Base64 of a value with spaces, on the 2026-07-28 wire', ' padded ', b64(' padded '), true],
  ])('%s', async (_what, region, header, modern) => {
    const answer = await call({ region }, { 'mcp-param-region': header }, modern);
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(answer.body.result, JSON.stringify(answer.body)).toBeDefined();
    expect(answer.body.result?.content?.[0]?.text).toBe(`region=${region}`);
  });

  it('a 2025 client that sends no Mcp-Param header, and a header the tool does not declare, change nothing', async () => {
    expect((await call({ region: 'eu' }, {})).body.result?.content?.[0]?.text).toBe('region=eu');
    const res = await postMcp(
      node.mcpUrl,
      { jsonrpc: '2.0', id: 6, method: 'tools/call', params: { name: 'crm-echo', arguments: { text: 'x' } } },
      { authorization: `Bearer ${snapshot.keyValues.dev ?? ''}`, 'mcp-param-region': 'anything', 'mcp-param-text': 'y' },
    );
    expect(((await res.json()) as Answer['body']).result?.content?.[0]?.text).toBe('http:x');
  });
});

describe('Mcp-Param headers that disagree: 400 HeaderMismatch naming the header, recorded, not forwarded', () => {
  it.each([
    ['another value', { region: 'us-west1' }, { 'mcp-param-region': 'eu-central9' }, false, /Mcp-Param-Region header value does not match the body's argument region/],
    ['another value in Base64', { region: 'us-west1' }, { 'mcp-param-region': b64('eu-central9') }, false, /Mcp-Param-Region header value does not match/],
    ['differs only in case', { region: 'us-west1' }, { 'mcp-param-region': 'US-WEST1' }, false, /Mcp-Param-Region header value does not match/],
    ['malformed Base64', { region: 'us-west1' }, { 'mcp-param-region': '=?base64?dXM=x?=' }, false, /Mcp-Param-Region header is not a valid/],
    ['sent for an argument not in the body', {}, { 'mcp-param-region': 'us-west1' }, false, /Mcp-Param-Region header is sent but the argument region is not in the body/],
    ['sent for a null argument', { region: null }, { 'mcp-param-region': 'us-west1' }, true, /Mcp-Param-Region header is sent but/],
    ['missing on the 2026-07-28 wire', { region: 'us-west1' }, {}, true, /the Mcp-Param-Region header is required/],
  ])('%s', async (_what, args, headers, modern, message) => {
    const before = forwarded();
    const answer = await call(args, headers, modern);
    expect(answer.status).toBe(400);
    expect(answer.body.error?.code).toBe(-32020);
    expect(answer.body.error?.message).toMatch(/^Header mismatch: /);
    expect(answer.body.error?.message).toMatch(message);
    // Neither side's value is echoed.
    for (const value of ['us-west1', 'eu-central9', 'US-WEST1']) expect(answer.body.error?.message).not.toContain(value);
    expect(forwarded()).toBe(before);
    await waitFor(() => records.length >= 1, { what: 'a record' });
    expect(records[0]).toMatchObject({ method: 'tools/call', server: 'conf', tool: 'test_header_param', outcome: 'invalid', error: 'header_mismatch', reason: 'mcp-param' });
  });
});

describe('declarations and comparison', () => {
  const schema = {
    type: 'object',
    properties: {
      count: { type: 'integer', 'x-mcp-header': 'Count' },
      dry: { type: 'boolean', 'x-mcp-header': 'Dry-Run' },
      where: { type: 'object', properties: { zone: { type: 'string', 'x-mcp-header': 'Zone' } } },
      list: { type: 'array', 'x-mcp-header': 'List' },
      bad: { type: 'string', 'x-mcp-header': 'has space' },
    },
  };

  it('reads valid declarations through properties only, and none from a tool that repeats a name', () => {
    expect(paramBindings(schema).map((b) => [b.label, b.path.join('.')])).toEqual([
      ['Mcp-Param-Count', 'count'],
      ['Mcp-Param-Dry-Run', 'dry'],
      ['Mcp-Param-Zone', 'where.zone'],
    ]);
    expect(paramBindings({ type: 'object', properties: { a: { type: 'string', 'x-mcp-header': 'X' }, b: { type: 'string', 'x-mcp-header': 'x' } } })).toEqual([]);
    expect(paramBindings(undefined)).toEqual([]);
  });

  it('compares integers numerically, booleans as true/false, nested arguments by path', () => {
    const bindings = paramBindings(schema);
    const check = (headers: Record<string, string>, args: unknown): string | null => paramHeaderMismatch(headers, bindings, args, false)?.message ?? null;
    expect(check({ 'mcp-param-count': '42.0', 'mcp-param-dry-run': 'true', 'mcp-param-zone': 'a' }, { count: 42, dry: true, where: { zone: 'a' } })).toBeNull();
    expect(check({ 'mcp-param-count': '43' }, { count: 42 })).toMatch(/Mcp-Param-Count/);
    expect(check({ 'mcp-param-count': '' }, { count: 0 })).toMatch(/Mcp-Param-Count/);
    expect(check({ 'mcp-param-dry-run': 'True' }, { dry: true })).toMatch(/Mcp-Param-Dry-Run/);
    expect(check({ 'mcp-param-zone': 'b' }, { where: { zone: 'a' } })).toMatch(/argument where\.zone/);
  });

  it('notices an Mcp-Param header in any letter case, and nothing else', () => {
    expect(hasParamHeaders(['Host', 'x', 'MCP-PARAM-Region', 'y'])).toBe(true);
    expect(hasParamHeaders(['mcp-param-x', 'y'])).toBe(true);
    expect(hasParamHeaders(['Host', 'x', 'mcp-param-', 'y', 'Mcp-Method', 'tools/call', 'x-mcp-param-a', 'b'])).toBe(false);
  });
});
