/**
 * `/graphql` under hostile input, over real HTTP to the control plane's listener, on every test dialect.
 * Without a token every request (deep, huge, invalid, malformed, any Content-Type or method) answers the
 * same 401 before its body is read; with a token every malformed request gets a typed JSON error (never a
 * 500, never an empty body), and a pathologically deep document a depth-limit error before graphql-js
 * parses it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_REQUEST_BODY_BYTES, QUERY_LIMITS } from '../../../control-plane/graphql/yoga.js';
import { maxBracketNesting, nestsDeeperThan } from '../../../control-plane/graphql/request-guard.js';
import { startTestControlPlane, type TestControlPlane } from '../../support/control-plane.js';
import { openTestDatabase, testDialects, type TestDatabase } from '../../support/db.js';

interface Answer {
  status: number;
  contentType: string | null;
  body: { data?: unknown; errors?: Array<{ message: string; extensions?: { code?: string } }> };
}

/** Fields nested `depth` levels deep: `{ a { a { … b } } }`. */
function nestedQuery(depth: number, field = 'a'): string {
  return `{${`${field}{`.repeat(depth)}b${'}'.repeat(depth)}}`;
}

const ANONYMOUS_401 = 'an admin token is required: send Authorization: Bearer <token>';

describe.each(testDialects)('/graphql hostile input over HTTP on %s', (dialect) => {
  let testDb: TestDatabase | undefined;
  let cp: TestControlPlane;
  let url: string;

  beforeAll(async () => {
    if (dialect === 'postgres') testDb = await openTestDatabase('postgres');
    cp = await startTestControlPlane(testDb ? { databaseUrl: testDb.url, databaseSchema: testDb.searchPath } : {});
    url = `${cp.url}/graphql`;
  }, 60_000);
  afterAll(async () => {
    await cp?.close();
    await testDb?.close();
  });

  async function send(init: RequestInit & { query?: string; token?: string | null }): Promise<Answer> {
    const headers = new Headers(init.headers);
    const token = init.token === undefined ? null : init.token;
    if (token !== null) headers.set('authorization', `Bearer ${token}`);
    const response = await fetch(`${url}${init.query ?? ''}`, { ...init, headers });
    const text = await response.text();
    let body: Answer['body'];
    try {
      body = JSON.parse(text) as Answer['body'];
    } catch {
      throw new Error(`HTTP ${response.status} ${response.headers.get('content-type')}: body is not JSON: ${JSON.stringify(text.slice(0, 200))}`);
    }
    return { status: response.status, contentType: response.headers.get('content-type'), body };
  }

  const json = { 'content-type': 'application/json', accept: 'application/json' };
  const post = (body: string, extra: Record<string, string> = {}): RequestInit => ({ method: 'POST', headers: { ...json, ...extra }, body });

  /** Requests that would be wrong even with a token, each in a different way. */
  function hostileRequests(): Array<[string, RequestInit & { query?: string }]> {
    return [
      ['a query nested 2,000 levels', post(JSON.stringify({ query: nestedQuery(2_000) }))],
      ['a query nested 100,000 levels', post(JSON.stringify({ query: nestedQuery(100_000) }))],
      ['a list value nested 50,000 levels', post(JSON.stringify({ query: `{ configVersion(x: ${'['.repeat(50_000)}${']'.repeat(50_000)}) }` }))],
      ['a body over the size limit', post(JSON.stringify({ query: `{ configVersion } #${'x'.repeat(MAX_REQUEST_BODY_BYTES)}` }))],
      ['an invalid query', post(JSON.stringify({ query: '{ noSuchField { secrets } }' }))],
      ['a syntax error', post(JSON.stringify({ query: '{ configVersion' }))],
      ['malformed JSON', post('{"query": "{ configVersion }"')],
      ['a JSON array', post('[{"query": "{ configVersion }"}]')],
      ['a JSON number', post('42')],
      ['JSON null', post('null')],
      ['a text/plain POST', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{ configVersion }' }],
      ['a multipart POST', { method: 'POST', headers: { 'content-type': 'multipart/form-data; boundary=x' }, body: '--x--' }],
      ['a POST with no Content-Type', { method: 'POST', body: new Uint8Array(Buffer.from('{}')) }],
      ['a GET with malformed variables', { method: 'GET', headers: { accept: 'application/json' }, query: `?query=${encodeURIComponent('{ configVersion }')}&variables=%7Bx` }],
      ['a GET with malformed extensions', { method: 'GET', headers: { accept: 'application/json' }, query: `?query=${encodeURIComponent('{ configVersion }')}&extensions=nope` }],
      ['a GET with no query', { method: 'GET', headers: { accept: 'application/json' }, query: '?query=' }],
      ['a form POST with malformed variables', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'query=%7BconfigVersion%7D&variables=%7Bx' }],
      ['a PUT', { method: 'PUT', headers: json, body: '{}' }],
      ['a DELETE', { method: 'DELETE' }],
      ['an Accept no one serves', post(JSON.stringify({ query: '{ configVersion }' }), { accept: 'image/png' })],
    ];
  }

  it('answers every request without a valid token with the same 401, before reading the body', async () => {
    for (const token of [null, 'gha_not-a-real-token']) {
      for (const [what, init] of [...hostileRequests(), ['a valid query', post(JSON.stringify({ query: '{ configVersion }' }))] as const]) {
        const answer = await send({ ...init, token });
        expect({ what, status: answer.status }).toEqual({ what, status: 401 });
        expect(answer.body.data ?? null).toBeNull();
        expect(answer.body.errors?.map((e) => e.extensions?.code)).toEqual(['UNAUTHENTICATED']);
        if (token === null) expect(answer.body.errors?.[0]?.message).toBe(ANONYMOUS_401);
        expect(answer.contentType).toMatch(/^application\/json/);
      }
    }
  });

  it('answers every malformed request from an ADMIN token with a typed JSON error, never a 500', async () => {
    for (const [what, init] of hostileRequests()) {
      const answer = await send({ ...init, token: cp.adminToken });
      expect(answer.contentType, what).toMatch(/^application\/json/);
      expect(answer.status, what).toBeLessThan(500);
      expect(answer.body.data ?? null, what).toBeNull();
      expect(answer.body.errors?.length, what).toBe(1);
      const [error] = answer.body.errors ?? [];
      expect(error?.message, what).not.toMatch(/Unexpected error|stack|at \w+ \(|SyntaxError|position \d+/);
      expect(JSON.stringify(answer.body), what).not.toContain('originalError');
    }
  });

  it('gives a negative page size on every connection a BAD_USER_INPUT naming the argument', async () => {
    const connections = ['mcpServers', 'users', 'virtualKeys', 'accessProfiles', 'adminTokens', 'nodes', 'auditEvents'];
    for (const connection of connections) {
      for (const size of ['first', 'last'] as const) {
        const answer = await cp.gql(`{ ${connection}(${size}: -1) { edges { cursor } } }`).catch((error: unknown) => String(error));
        expect({ connection, size, answer }).toMatchObject({ connection, size, answer: expect.stringContaining('"code":"BAD_USER_INPUT","field":"' + size + '"') });
      }
    }
  });

  it('names the accepted Content-Types in a 415 (with or without a token the body is JSON)', async () => {
    const answer = await send({ method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{ configVersion }', token: cp.adminToken });
    expect(answer.status).toBe(415);
    expect(answer.body.errors?.[0]?.extensions?.code).toBe('UNSUPPORTED_MEDIA_TYPE');
    expect(answer.body.errors?.[0]?.message).toMatch(/text\/plain.*not supported.*application\/json/);
  });

  it('refuses bad JSON and bad GET parameters with 400 BAD_REQUEST and a fixed message', async () => {
    for (const [what, init] of hostileRequests().filter(([what]) => /malformed|JSON (array|number|null)/.test(what))) {
      const answer = await send({ ...init, token: cp.adminToken });
      expect({ what, status: answer.status, code: answer.body.errors?.[0]?.extensions?.code }).toEqual({ what, status: 400, code: 'BAD_REQUEST' });
    }
    const wrongMethod = await send({ method: 'PATCH', headers: json, body: '{}', token: cp.adminToken });
    expect(wrongMethod.status).toBe(405);
  });

  it('refuses a deeply nested document with a depth-limit error before parsing it, and a deep-but-legal one by field depth', async () => {
    for (const depth of [2_000, 100_000, maxBracketNesting(QUERY_LIMITS.maxDepth) + 1]) {
      const answer = await send({ ...post(JSON.stringify({ query: nestedQuery(depth) })), token: cp.adminToken });
      expect(answer.status).toBe(400);
      expect(answer.body.errors?.[0]?.message).toMatch(new RegExp(`depth limit of ${QUERY_LIMITS.maxDepth} exceeded`, 'i'));
    }
    // Within the bracket bound but past the field-depth limit: armor's own depth error.
    const answer = await send({ ...post(JSON.stringify({ query: nestedQuery(QUERY_LIMITS.maxDepth + 2, 'users') })), token: cp.adminToken });
    expect(answer.body.errors?.[0]?.message).toMatch(/depth limit/i);
    // A real query at the limit still runs.
    const ok = await send({ ...post(JSON.stringify({ query: '{ mcpServers(first: 5) { edges { node { name headers { name } } } } configVersion }' })), token: cp.adminToken });
    expect(ok.status).toBe(200);
    expect(ok.body.errors).toBeUndefined();
  });

  it('gives a request with an Accept it cannot serve a JSON 406, and keeps its error when it has one', async () => {
    const accepted = await send({ ...post(JSON.stringify({ query: '{ configVersion }' }), { accept: 'image/png' }), token: cp.adminToken });
    expect(accepted.status).toBe(406);
    expect(accepted.body.errors?.[0]?.extensions?.code).toBe('NOT_ACCEPTABLE');
    expect(accepted.body.errors?.[0]?.message).toMatch(/application\/json/);
  });

  it('still serves GraphiQL to a browser and queries by GET', async () => {
    const page = await fetch(url, { headers: { accept: 'text/html' } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('Gatehouse');
    const get = await send({ method: 'GET', headers: { accept: 'application/json' }, query: `?query=${encodeURIComponent('{ configVersion }')}`, token: cp.adminToken });
    expect(get.status).toBe(200);
    expect(get.body.data).toEqual({ configVersion: expect.any(Number) });
  });
});

describe('nestsDeeperThan', () => {
  it('counts brackets as the lexer sees them: not in strings, block strings or comments', () => {
    expect(nestsDeeperThan('{ a { b } }', 2)).toBe(false);
    expect(nestsDeeperThan('{ a { b { c } } }', 2)).toBe(true);
    expect(nestsDeeperThan('{ a(x: [[1]]) }', 3)).toBe(true);
    const brackets = '{'.repeat(50);
    expect(nestsDeeperThan(`{ a(x: "${brackets}\\"${brackets}") }`, 2)).toBe(false);
    expect(nestsDeeperThan(`{ a(x: """${brackets}\\"""${brackets}""") }`, 2)).toBe(false);
    expect(nestsDeeperThan(`# ${brackets}\n{ a }`, 2)).toBe(false);
    expect(nestsDeeperThan(`{ a(x: "unterminated ${brackets}\n{{{ }`, 2)).toBe(true);
  });
});
