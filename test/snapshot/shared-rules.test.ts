/**
 * The rules both planes share (`data-plane/snapshot/rules.ts`), proven on both sides with the same lists:
 * every header name the control plane refuses for `allowedExtraHeaders` is one the node drops (even from a
 * snapshot that lists it), every name it accepts is one the node forwards; header names that collide with
 * `Object.prototype` members work like any other; one Bearer parser; one `env.NAME` syntax; one rule for
 * which parts of a URL are credentials (`data-plane/snapshot/url-credentials.ts`): the parts the control
 * plane hides when it shows a URL are the parts a node keeps out of answers, and what it shows the node
 * leaves in them (the node used its own rule: every query value of 8+ characters, so `api-version=2024-06-01`
 * was cut out of answers while a `/t/<token>` path token was not).
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
import { redactUrl } from '../../control-plane/repos/url-secrets.js';
import { scrubText } from '../../data-plane/secrets/scrubber.js';
import { generateDataKey } from '../../data-plane/snapshot/seal.js';
import type { SnapshotPayload } from '../../data-plane/snapshot/schema.js';
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

describe('one rule for the credential parts of a URL, both planes', () => {
  /** A URL, the parts of it that are credentials (as a server reads them) and harmless parts of it. */
  const CASES: { url: string; credentials: string[]; harmless: string[] }[] = [
    {
      url: 'https://res.openai.azure.com/openai?api-version=2024-06-01&api-key=azureApiKey0123456789abcdef',
      credentials: ['azureApiKey0123456789abcdef'],
      harmless: ['2024-06-01', 'api-version', 'res.openai.azure.com'],
    },
    { url: 'https://gw.example/t/tok3nValue/v1', credentials: ['tok3nValue'], harmless: ['gw.example', '/v1'] },
    { url: 'https://api.example/v1?key=AIzaSyD0123456789abcdefghij&region=europe-west1', credentials: ['AIzaSyD0123456789abcdefghij'], harmless: ['europe-west1'] },
    { url: 'https://api.example/9c1f4a7e-0d3b-4c8e-9f21-6a5b7c8d9e0f/messages', credentials: ['9c1f4a7e-0d3b-4c8e-9f21-6a5b7c8d9e0f'], harmless: ['messages'] },
    { url: 'https://blob.example/c?sv=2024-08-04&sig=abc%2Bdef%3D%3Dxyz1', credentials: ['abc+def==xyz1', 'abc%2Bdef%3D%3Dxyz1'], harmless: ['2024-08-04'] },
    // `+` in a path is itself (a base64 token), not a space as in a query.
    { url: 'https://api.example/v1/ab+cdEF0123456789ghij/x', credentials: ['ab+cdEF0123456789ghij'], harmless: ['/v1/'] },
    { url: 'https://api.example/v1#fragmentSecret', credentials: ['fragmentSecret'], harmless: ['api.example'] },
    { url: 'https://svc-user:hunter2pass@api.example/v1', credentials: ['hunter2pass', 'svc-user'], harmless: ['api.example'] },
    { url: 'https://api.anthropic.com/v1?beta=true&api-version=2024-06-01&region=europe-west1', credentials: [], harmless: ['2024-06-01', 'europe-west1', 'api.anthropic.com'] },
    { url: 'https://login.example/oauth/token?client_id=gatehouse-prod', credentials: [], harmless: ['gatehouse-prod', '/oauth/token'] },
  ];

  /** What the node keeps out of a provider's answers for a provider at `url` (besides its API key). */
  function nodeProviderSecrets(url: string): readonly string[] {
    const payload: SnapshotPayload = {
      format: 1,
      version: 1,
      issuedAt: new Date().toISOString(),
      trustedKeys: [],
      servers: [],
      keys: [],
      users: [],
      sessionSecrets: null,
      providers: [{ id: 'p1', name: 'llm', kind: 'ANTHROPIC', baseUrl: { kind: 'plain', value: url }, apiKey: { kind: 'plain', value: 'providerApiKey' }, prices: [] }],
    };
    const secrets = buildRuntime(payload, generateDataKey(), {}).runtime.providers.get('llm')?.server?.secrets;
    if (secrets === undefined) throw new Error(`provider at ${url} is unusable`);
    return secrets.filter((s) => s !== 'providerApiKey');
  }

  it('the parts the control plane shows as *** are the parts the node scrubs; what it shows the node leaves', () => {
    for (const { url, credentials, harmless } of CASES) {
      const shown = redactUrl(new URL(url));
      const secrets = nodeProviderSecrets(url);
      expect(shown.secret, url).toBe(credentials.length > 0);
      // A URL with no credential in it is no secret on either plane: nothing of it is cut out of answers.
      if (credentials.length === 0) expect(secrets, url).toEqual([]);
      for (const credential of credentials) {
        expect(shown.shown, url).not.toContain(credential);
        expect(scrubText(`echo: ${credential} .`, secrets), url).not.toContain(credential);
      }
      for (const text of harmless) {
        expect(shown.shown, url).toContain(text);
        expect(scrubText(`echo: ${text} .`, secrets), url).toBe(`echo: ${text} .`);
      }
      // The whole URL, echoed as sent, is cut out too when it holds a credential.
      if (credentials.length > 0) expect(scrubText(`GET ${url}`, secrets), url).not.toContain(credentials[0]);
    }
  });

  it('a server\'s connection URL: its credential parts leave answers alone too', async () => {
    const snap = await buildSnapshot({
      servers: [{ name: 'crm', url: 'https://crm.example/t/tok3nValue/mcp?api_key=crmKey0123456789abcd&api-version=2024-06-01' }],
      keys: [],
    });
    const secrets = buildRuntime(snap.payload, snap.dataKey, {}).runtime.servers.get('crm')?.secrets ?? [];
    const echo = 'api_key was crmKey0123456789abcd, token tok3nValue, api-version 2024-06-01';
    expect(scrubText(echo, secrets)).not.toMatch(/crmKey0123456789abcd|tok3nValue/);
    expect(scrubText(echo, secrets)).toContain('2024-06-01');
  });
});
