/**
 * The rules both planes share (`data-plane/snapshot/rules.ts`), proven on both sides with the same lists:
 * every header name the control plane refuses for `allowedExtraHeaders` is one the node drops (even from a
 * snapshot that lists it), every name it accepts is one the node forwards; header names that collide with
 * `Object.prototype` members work like any other; one Bearer parser; one `env.NAME` syntax.
 */
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRuntime } from '../../data-plane/config/runtime.js';
import { authenticate } from '../../data-plane/auth/authenticate.js';
import {
  CREDENTIAL_HEADERS,
  FRAMING_HEADERS,
  HOP_BY_HOP_HEADERS,
  MCP_TRANSPORT_HEADERS,
  parseBearer,
  parseEnvRef,
} from '../../data-plane/snapshot/rules.js';
import { SecretBox, parseEnvRef as controlPlaneParseEnvRef } from '../../control-plane/crypto/secret-box.js';
import { parseBearer as adminParseBearer } from '../../control-plane/graphql/admin-auth.js';
import { IssueList } from '../../control-plane/repos/errors.js';
import { planMcpServer } from '../../control-plane/repos/mcp-servers.js';
import { startHttpUpstream, type HttpUpstream } from '../support/upstreams.js';
import { buildSnapshot, postMcp, startTestNode, type TestNode } from '../data-plane/helpers.js';

const NEVER = [...HOP_BY_HOP_HEADERS, ...FRAMING_HEADERS, ...CREDENTIAL_HEADERS, ...MCP_TRANSPORT_HEADERS];
/** Valid tokens that are also members of Object.prototype, and ordinary names. */
const ORDINARY = ['constructor', '__proto__', 'tostring', 'hasownproperty', 'x-request-source', 'x-tenant'];

const box = new SecretBox(randomBytes(32));

function refusedByControlPlane(field: 'allowedExtraHeaders' | 'headers', name: string): boolean {
  const issues = new IssueList();
  planMcpServer(
    box,
    null,
    field === 'headers'
      ? { name: 'crm', connectionType: 'HTTP', connectionString: 'http://127.0.0.1:1/mcp', authType: 'HEADERS', headers: [{ name, value: 'v' }], toolsToExecute: ['*'] }
      : { name: 'crm', connectionType: 'HTTP', connectionString: 'http://127.0.0.1:1/mcp', toolsToExecute: ['*'], allowedExtraHeaders: [name] },
    issues,
  );
  return issues.all.some((i) => i.field?.startsWith(field) ?? false);
}

/** A POST through node:http (fetch refuses to send `Expect`). */
function rawPost(url: string, body: string, headers: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve(text));
    });
    req.on('error', reject);
    req.end(body);
  });
}

let upstream: HttpUpstream;
let node: TestNode;

beforeAll(async () => {
  upstream = await startHttpUpstream();
  node = await startTestNode();
});

afterAll(async () => {
  await node?.close();
  await upstream?.close();
});

describe('allowedExtraHeaders: one list, both planes', () => {
  it('the control plane refuses exactly the names the node never forwards', () => {
    for (const name of NEVER) expect(refusedByControlPlane('allowedExtraHeaders', name), name).toBe(true);
    for (const name of ORDINARY) expect(refusedByControlPlane('allowedExtraHeaders', name), name).toBe(false);
    for (const name of ['bad header', 'x:y', '', 'é']) expect(refusedByControlPlane('allowedExtraHeaders', name), name).toBe(true);
  });

  it('configured credential headers may be credentials, never transport, framing or hop-by-hop fields', () => {
    for (const name of CREDENTIAL_HEADERS) expect(refusedByControlPlane('headers', name), name).toBe(false);
    for (const name of [...HOP_BY_HOP_HEADERS, ...FRAMING_HEADERS, ...MCP_TRANSPORT_HEADERS]) expect(refusedByControlPlane('headers', name), name).toBe(true);
  });

  it('a snapshot that lists every refused name anyway (an older control plane): the node drops them all', async () => {
    const snap = await buildSnapshot({
      servers: [{ name: 'crm', url: upstream.url, allowedExtraHeaders: [...NEVER, ...ORDINARY].map((h) => h.toUpperCase()) }],
      keys: [{ name: 'dev', servers: [{ server: 'crm', tools: ['*'] }] }],
    });
    const runtime = buildRuntime(snap.payload, snap.dataKey, {}).runtime;
    expect([...(runtime.servers.get('crm')?.allowedExtraHeaders ?? [])].sort()).toEqual([...ORDINARY].sort());
  });

  it('names such as constructor or __proto__ work like any other header (no 500, the caller\'s value goes through)', async () => {
    const snap = await buildSnapshot({
      servers: [{ name: 'crm', url: upstream.url, allowedExtraHeaders: [...ORDINARY, 'expect', 'content-type'] }],
      keys: [{ name: 'dev', servers: [{ server: 'crm', tools: ['*'] }] }],
    });
    node.apply(snap);
    const auth = { authorization: `Bearer ${snap.keyValues.dev ?? ''}` };
    const call = (header: string, id: number): unknown => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'crm-whoami', arguments: { header } } });
    // Without any of the headers: prototype members must not be found on the caller's header object.
    const plain = await postMcp(node.mcpUrl, call('x-tenant', 1), auth);
    expect(plain.status).toBe(200);
    expect(((await plain.json()) as { result: { content: { text: string }[] } }).result.content[0]?.text).toBe('');
    const sent = await postMcp(node.mcpUrl, call('constructor', 2), { ...auth, constructor: 'c-value', 'x-tenant': 't-1' });
    expect(((await sent.json()) as { result: { content: { text: string }[] } }).result.content[0]?.text).toBe('c-value');
    // `expect` is never forwarded even though listed (it would stall the upstream connection).
    const expectHeader = await rawPost(node.mcpUrl, JSON.stringify(call('expect', 3)), { ...auth, 'content-type': 'application/json', expect: '100-continue' });
    expect((JSON.parse(expectHeader) as { result: { content: { text: string }[] } }).result.content[0]?.text).toBe('');
    expect(upstream.requests.some((r) => r.headers.expect !== undefined)).toBe(false);
  });
});

describe('one Bearer parser, one env.NAME syntax', () => {
  it('both planes parse Authorization the same way (RFC 6750 §2.1)', () => {
    const cases: [string | undefined, string | null][] = [
      ['Bearer abc', 'abc'],
      ['bearer\tabc ', 'abc'],
      ['BEARER  gk_x-y.z~+/=', 'gk_x-y.z~+/='],
      ['Bearer', null],
      ['Bearer a b', null],
      ['Basic abc', null],
      ['', null],
      [undefined, null],
      [`Bearer ${'x'.repeat(10_000)}`, 'x'.repeat(10_000)],
    ];
    for (const [header, token] of cases) {
      expect(parseBearer(header), String(header).slice(0, 30)).toBe(token);
      expect(adminParseBearer(header ?? null), String(header).slice(0, 30)).toBe(token);
    }
  });

  it('the node authenticates what the parser accepts, and refuses a malformed header as no key', async () => {
    const snap = await buildSnapshot({ servers: [], keys: [{ name: 'dev', servers: [] }] });
    const runtime = buildRuntime(snap.payload, snap.dataKey, {}).runtime;
    expect(authenticate(runtime, `bearer\t${snap.keyValues.dev ?? ''}`, Date.now()).ok).toBe(true);
    expect(authenticate(runtime, `Bearer ${snap.keyValues.dev ?? ''} extra`, Date.now())).toEqual({ ok: false, code: 'virtual_key_required' });
  });

  it('env.NAME references', () => {
    for (const [value, name] of [
      ['env.CRM_TOKEN', 'CRM_TOKEN'],
      ['env._x1', '_x1'],
      ['env.1X', null],
      ['env.A-B', null],
      ['ENV.A', null],
      ['env.', null],
    ] as const) {
      expect(parseEnvRef(value)).toBe(name);
      expect(controlPlaneParseEnvRef(value)).toBe(name);
    }
  });
});
