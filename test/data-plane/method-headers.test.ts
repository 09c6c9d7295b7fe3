/**
 * `Mcp-Method` / `Mcp-Name` on `/mcp` (MCP 2026-07-28 basic/transports/streamable-http §Request Metadata):
 * a request whose headers already decide its fate (a method `/mcp` does not serve, a tool the key may not
 * call) is refused before its body is read, and still recorded; headers that disagree with the body, or
 * required ones missing on the 2026-07-28 wire, are 400 HeaderMismatch (-32020) naming the header; Base64
 * sentinel values are decoded before comparing.
 */
import { request } from 'node:http';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { RequestRecord } from '../../data-plane/pipeline/context.js';
import { decodeMcpName } from '../../data-plane/mcp/method-headers.js';
import { startHttpUpstream, type HttpUpstream } from '../support/upstreams.js';
import { waitFor } from '../support/wait.js';
import { MODERN_META, buildSnapshot, postMcp, startTestNode, type BuiltSnapshot, type TestNode } from './helpers.js';

const VERSION = '2026-07-28';
const META = MODERN_META;

let upstream: HttpUpstream;
let node: TestNode;
let snapshot: BuiltSnapshot;
const records: RequestRecord[] = [];

beforeAll(async () => {
  upstream = await startHttpUpstream();
  node = await startTestNode({ hooks: { onRecord: (record) => records.push(record) } });
  snapshot = await buildSnapshot({ servers: [{ name: 'crm', url: upstream.url }], keys: [{ name: 'dev', servers: [{ server: 'crm', tools: ['echo', 'find-contact'] }] }] });
  node.apply(snapshot);
});

afterAll(async () => {
  await node?.close();
  await upstream?.close();
});

beforeEach(() => {
  records.length = 0;
});

const auth = (): Record<string, string> => ({ authorization: `Bearer ${snapshot.keyValues.dev ?? ''}` });
const toolCalls = (): number => upstream.requests.filter((r) => r.rpcMethod === 'tools/call').length;
const b64 = (value: string): string => `=?base64?${Buffer.from(value, 'utf8').toString('base64')}?=`;

interface RawAnswer {
  status: number;
  body: { id?: unknown; error?: { code: number; message: string; data?: { type?: string } }; result?: Record<string, unknown> };
}

/**
 * POSTs headers and the start of a body that never ends (announced as 1 MB, never sent): only an answer
 * given before the body is read can arrive.
 */
function postWithoutBody(headers: Record<string, string>): Promise<RawAnswer> {
  const url = new URL(node.mcpUrl);
  return new Promise<RawAnswer>((resolve, reject) => {
    const req = request({
      host: url.hostname,
      port: url.port,
      path: url.pathname,
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'content-length': String(1_000_000), ...headers },
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as RawAnswer['body'] });
        req.destroy();
      });
    });
    req.on('error', reject);
    req.write('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"crm-');
  });
}

async function post(body: unknown, headers: Record<string, string>): Promise<RawAnswer> {
  const res = await postMcp(node.mcpUrl, body, { ...auth(), ...headers });
  return { status: res.status, body: (await res.json()) as RawAnswer['body'] };
}

function callBody(name: string, meta: Record<string, unknown> = META): Record<string, unknown> {
  return { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name, arguments: { text: 'x', name: 'y' }, _meta: meta } };
}

describe('refused from the headers, before the body is read', () => {
  it('a tools/call whose Mcp-Name is a tool the key may not call (plain or Base64), or of an unknown server', async () => {
    const before = toolCalls();
    for (const name of ['crm-secret_tool', b64('crm-secret_tool'), 'nowhere-echo', b64('crm-ünïcode')]) {
      const answer = await postWithoutBody({ ...auth(), 'mcp-protocol-version': VERSION, 'mcp-method': 'tools/call', 'mcp-name': name });
      expect(answer.status, name).toBe(403);
      expect(answer.body.id, name).toBeNull();
      expect(answer.body.error?.code, name).toBe(-32003);
      expect(answer.body.error?.data?.type, name).toBe('tool_blocked');
    }
    expect(toolCalls()).toBe(before);
    // Each refusal reached the record stage.
    await waitFor(() => records.length >= 4, { what: 'four records' });
    expect(records.map((r) => [r.outcome, r.error, r.keyId])).toEqual(Array.from({ length: 4 }, () => ['refused', 'tool_blocked', 'key_dev']));
    expect(records[0]?.reason).toBe('mcp-name:not_granted');
    expect(records[2]?.reason).toBe('mcp-name:unknown_server');
    // What was refused, from the headers alone: the server and the upstream's own tool name (Base64 decoded),
    // or the name as sent when no configured server has its prefix.
    expect(records.map((r) => [r.method, r.server, r.tool])).toEqual([
      ['tools/call', 'crm', 'secret_tool'],
      ['tools/call', 'crm', 'secret_tool'],
      ['tools/call', null, 'nowhere-echo'],
      ['tools/call', 'crm', 'ünïcode'],
    ]);
  });

  it('a malformed Base64 Mcp-Name is recorded as the tools/call it claimed to be', async () => {
    const answer = await postWithoutBody({ ...auth(), 'mcp-protocol-version': VERSION, 'mcp-method': 'tools/call', 'mcp-name': '=?base64?QR==?=' });
    expect(answer.status).toBe(400);
    await waitFor(() => records.length >= 1, { what: 'a record' });
    expect(records[0]).toMatchObject({ outcome: 'invalid', error: 'header_mismatch', method: 'tools/call', server: null, tool: null });
  });

  it('a request whose Mcp-Method is not one /mcp serves: 404 with -32601', async () => {
    for (const method of ['tasks/get', 'sampling/createMessage', 'tools/delete']) {
      const answer = await postWithoutBody({ ...auth(), 'mcp-protocol-version': VERSION, 'mcp-method': method });
      expect(answer.status, method).toBe(404);
      expect(answer.body.error?.code, method).toBe(-32601);
      expect(answer.body.error?.message, method).toContain(method);
    }
    await waitFor(() => records.length >= 3, { what: 'three records' });
    expect(records.map((r) => [r.outcome, r.error, r.reason])).toEqual(Array.from({ length: 3 }, () => ['refused', 'not_found', 'mcp-method']));
    expect(records.map((r) => [r.method, r.server, r.tool])).toEqual(['tasks/get', 'sampling/createMessage', 'tools/delete'].map((m) => [m, null, null]));
  });

  it('still authenticates first: no key is 401, not a header answer', async () => {
    const answer = await postWithoutBody({ 'mcp-method': 'tasks/get' });
    expect(answer.status).toBe(401);
  });
});

describe('headers that pass the early check reach the body', () => {
  it('an allowed tool named plainly or in Base64 is called', async () => {
    for (const name of ['crm-echo', b64('crm-echo')]) {
      const answer = await post(callBody('crm-echo'), { 'mcp-protocol-version': VERSION, 'mcp-method': 'tools/call', 'mcp-name': name });
      expect(answer.status, name).toBe(200);
      expect(answer.body.result?.content, name).toEqual([{ type: 'text', text: 'http:x' }]);
    }
  });

  it('a notification or a 2025 request with matching headers is served as before', async () => {
    const note = await postMcp(node.mcpUrl, { jsonrpc: '2.0', method: 'notifications/initialized' }, { ...auth(), 'mcp-method': 'notifications/initialized' });
    expect(note.status).toBe(202);
    const old = await post({ jsonrpc: '2.0', id: 3, method: 'tools/list' }, { 'mcp-protocol-version': '2025-06-18', 'mcp-method': 'tools/list' });
    expect(old.status).toBe(200);
    // Without any header (a 2025 client), nothing is required.
    const bare = await post({ jsonrpc: '2.0', id: 4, method: 'tools/call', params: { name: 'crm-echo', arguments: { text: 'x' } } }, {});
    expect(bare.body.result?.content).toEqual([{ type: 'text', text: 'http:x' }]);
  });
});

describe('header/body mismatch: 400 HeaderMismatch (-32020) naming the header, nothing forwarded', () => {
  const cases: Array<[string, Record<string, string>, Record<string, unknown>, RegExp]> = [
    ['Mcp-Name names another allowed tool', { 'mcp-method': 'tools/call', 'mcp-name': 'crm-find-contact' }, callBody('crm-echo'), /Mcp-Name header value "crm-find-contact" does not match body value "crm-echo"/],
    ['Mcp-Name in Base64 of another tool', { 'mcp-method': 'tools/call', 'mcp-name': b64('crm-find-contact') }, callBody('crm-echo'), /Mcp-Name header value "crm-find-contact"/],
    ['Mcp-Name with malformed Base64', { 'mcp-method': 'tools/call', 'mcp-name': '=?base64?%%%?=' }, callBody('crm-echo'), /Mcp-Name header is not a valid/],
    ['Mcp-Method names another served method', { 'mcp-method': 'tools/list' }, callBody('crm-echo'), /Mcp-Method header value "tools\/list" does not match body value "tools\/call"/],
    ['Mcp-Method missing on the 2026-07-28 wire', {}, callBody('crm-echo'), /Mcp-Method header is required/],
    ['Mcp-Name missing for tools/call on the 2026-07-28 wire', { 'mcp-method': 'tools/call' }, callBody('crm-echo'), /Mcp-Name header is required/],
    ['MCP-Protocol-Version differs from _meta', { 'mcp-method': 'tools/call', 'mcp-name': 'crm-echo' }, callBody('crm-echo', { ...META, 'io.modelcontextprotocol/protocolVersion': '2025-11-25' }), /MCP-Protocol-Version header value "2026-07-28" does not match/],
  ];
  it.each(cases)('%s', async (_what, headers, body, message) => {
    const before = toolCalls();
    const answer = await post(body, { 'mcp-protocol-version': VERSION, ...headers });
    expect(answer.status).toBe(400);
    expect(answer.body.error?.code).toBe(-32020);
    expect(answer.body.error?.message).toMatch(/^Header mismatch: /);
    expect(answer.body.error?.message).toMatch(message);
    expect(toolCalls()).toBe(before);
    await waitFor(() => records.length >= 1, { what: 'a record' });
    // The record names what the body would have run (a malformed Mcp-Name is refused before the body: no tool).
    const early = headers['mcp-name']?.startsWith('=?base64?%') === true;
    expect(records[0]).toMatchObject({ outcome: 'invalid', error: 'header_mismatch', method: 'tools/call', server: early ? null : 'crm', tool: early ? null : 'echo' });
  });
});

describe('decodeMcpName', () => {
  it('decodes the sentinel strictly and leaves other values as they are', () => {
    expect(decodeMcpName('crm-echo')).toBe('crm-echo');
    expect(decodeMcpName(b64('Hello, 世界'))).toBe('Hello, 世界');
    expect(decodeMcpName(b64('=?base64?literal?='))).toBe('=?base64?literal?=');
    // Not the whole sentinel: a literal value.
    expect(decodeMcpName('=?base64?QQ==')).toBe('=?base64?QQ==');
    for (const bad of ['=?base64?abc?=', '=?base64?ab=c?=', '=?base64?QQ=?=', '=?base64?QR==?=', `=?base64?${Buffer.from([0xff, 0xfe]).toString('base64')}?=`]) {
      expect(decodeMcpName(bad), bad).toBeNull();
    }
  });
});
