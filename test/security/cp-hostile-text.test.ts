/**
 * Hostile text on the control plane, on every test dialect: U+0000 in any string that reaches SQL (GraphQL
 * arguments, values hidden inside a cursor, an HTTP route's filter, an audit event a node forwards from a
 * caller) and cursors whose values do not fit the column they page over. PostgreSQL refuses NUL in text and
 * a non-number compared with a bigint, so each of these was an "Unexpected error." (or a 5xx, or a cut
 * stream); and an audit batch holding a caller's tool name with a NUL was answered 503 on every resend,
 * stalling that node's audit shipping behind it. Each now gets an answer: a typed error, an empty result,
 * or the value stored with U+FFFD in place of the NUL (and the audit chain still verifies).
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeCursor } from '../../control-plane/repos/pagination.js';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { openTestDatabase, testDialects, type TestDatabase } from '../support/db.js';

interface GraphQLAnswer {
  status: number;
  body: { data?: Record<string, unknown> | null; errors?: Array<{ message: string; extensions?: { code?: string } }> };
}

const NUL = 'a\u0000b';

describe.each(testDialects)('control plane under NUL bytes and foreign cursors on %s', (dialect) => {
  let testDb: TestDatabase | undefined;
  let cp: TestControlPlane;

  beforeAll(async () => {
    if (dialect === 'postgres') testDb = await openTestDatabase('postgres');
    cp = await startTestControlPlane(testDb ? { databaseUrl: testDb.url, databaseSchema: testDb.searchPath } : {});
  }, 60_000);
  afterAll(async () => {
    await cp?.close();
    await testDb?.close();
  });

  async function graphql(query: string, variables: Record<string, unknown> = {}): Promise<GraphQLAnswer> {
    const response = await fetch(`${cp.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${cp.adminToken}` },
      body: JSON.stringify({ query, variables }),
    });
    return { status: response.status, body: (await response.json()) as GraphQLAnswer['body'] };
  }

  function expectAnswered(what: string, answer: GraphQLAnswer): void {
    const internal = (answer.body.errors ?? []).filter((e) => e.extensions?.code === 'INTERNAL_SERVER_ERROR' || e.message === 'Unexpected error.');
    expect({ what, status: answer.status, internal }).toEqual({ what, status: answer.status < 500 ? answer.status : 'a 5xx', internal: [] });
  }

  it('answers every GraphQL argument holding U+0000 without an internal error', async () => {
    const { createUser } = await cp.gql<{ createUser: { user: { id: string } } }>('mutation { createUser(input: {email: "nul@example.com"}) { user { id } } }');
    const userId = createUser.user.id;
    const probes: Array<[string, string, Record<string, unknown>]> = [
      ['mcpServer(name)', 'query($s: String!) { mcpServer(name: $s) { id } }', { s: NUL }],
      ['provider(name)', 'query($s: String!) { provider(name: $s) { name } }', { s: NUL }],
      ['user(id)', 'query($s: ID!) { user(id: $s) { id } }', { s: NUL }],
      ['accessProfile(id)', 'query($s: String!) { accessProfile(id: $s) { id } }', { s: NUL }],
      ['auditEvents(filter)', 'query($s: String!) { auditEvents(filter: {server: $s, tool: $s, key: $s, user: $s, outcome: $s}) { edges { node { id } } } }', { s: NUL }],
      ['a literal \\u0000 in the document', 'query { mcpServer(name: "a\\u0000b") { id } }', {}],
      ['createMcpServer(connectionString)', 'mutation($s: String!) { createMcpServer(input: {name: "nul_url", connectionType: HTTP, connectionString: $s}) { errors { code } } }', { s: `http://127.0.0.1:1/${NUL}` }],
      ['createMcpServer(stdio)', 'mutation($s: String!) { createMcpServer(input: {name: "nul_stdio", connectionType: STDIO, stdio: {command: $s, args: [$s], env: []}}) { errors { code } } }', { s: NUL }],
      ['createAdminToken(name)', 'mutation($s: String!) { createAdminToken(input: {name: $s, role: VIEWER}) { errors { code } } }', { s: NUL }],
      ['setAuditSettings(target)', 'mutation($s: String!) { setAuditSettings(input: {scope: SERVER, target: $s}) { errors { code } } }', { s: NUL }],
      ['approveNode(id)', 'mutation($s: ID!) { approveNode(input: {id: $s, fingerprint: "x"}) { errors { code } } }', { s: NUL }],
      ['revokeVirtualKey(id)', 'mutation($s: ID!) { revokeVirtualKey(input: {id: $s}) { errors { code } } }', { s: NUL }],
      ['deleteUser(id)', 'mutation($s: ID!) { deleteUser(input: {id: $s}) { errors { code } } }', { s: NUL }],
      ['revokeAdminToken(id)', 'mutation($s: ID!) { revokeAdminToken(input: {id: $s}) { errors { code } } }', { s: NUL }],
      ['createConnectLink(server)', 'mutation($s: String!, $u: ID!) { createConnectLink(server: $s, userId: $u) { errors { code } } }', { s: NUL, u: userId }],
      ['revokeUserOAuthConnection(server)', 'mutation($s: String!, $u: ID!) { revokeUserOAuthConnection(server: $s, userId: $u) { errors { code } } }', { s: NUL, u: userId }],
      ['updateUser(email)', 'mutation($u: ID!, $s: String!) { updateUser(input: {id: $u, email: $s}) { errors { code } } }', { u: userId, s: `x${NUL}@example.com` }],
    ];
    for (const [what, query, variables] of probes) expectAnswered(what, await graphql(query, variables));
    // A lookup by a value no row can hold finds nothing.
    expect((await graphql('query($s: String!) { mcpServer(name: $s) { id } }', { s: NUL })).body.data).toEqual({ mcpServer: null });
  });

  it('refuses a cursor whose values do not fit the key it pages over, as a cursor from another list', async () => {
    const foreign: Array<[string, string]> = [
      ['users', encodeCursor(['2020-01-01T00:00:00.000Z', NUL])],
      ['mcpServers', encodeCursor([NUL, NUL])],
      ['nodes', encodeCursor([NUL])],
      ['auditEvents', encodeCursor(['not a number'])],
      ['auditEvents', encodeCursor([NUL])],
      ['auditEvents', encodeCursor(['99999999999999999999999'])],
    ];
    for (const [list, cursor] of foreign) {
      const answer = await graphql(`query($c: String!) { ${list}(first: 5, after: $c) { edges { cursor } } }`, { c: cursor });
      expectAnswered(`${list} after ${cursor}`, answer);
    }
    const audit = await graphql('query($c: String!) { auditEvents(after: $c) { edges { cursor } } }', { c: encodeCursor(['x']) });
    expect(audit.body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', reason: 'INVALID_CURSOR' });
  });

  it('stores an audit event whose tool name holds U+0000 (no 503 loop), shows it, and the chain still verifies', async () => {
    const event = { id: randomUUID(), time: new Date().toISOString(), node: 'n1', method: 'tools/call', server: 'crm', tool: `lookup${NUL}`, outcome: 'denied', denyReason: `tool${NUL}`, arguments: { [NUL]: NUL }, latencyMs: 1 };
    const ingest = await fetch(`${cp.url}/nodes/audit`, {
      method: 'POST',
      headers: { authorization: `Bearer ${cp.cp.nodeToken}`, 'x-gatehouse-node-id': 'n1', 'content-type': 'application/json' },
      body: JSON.stringify({ events: [event] }),
    });
    expect(ingest.status).toBe(200);
    expect(await ingest.json()).toMatchObject({ accepted: 1, rejected: [] });

    const listed = await cp.gql<{ auditEvents: { edges: Array<{ node: { id: string; tool: string; arguments: unknown } }> } }>(
      '{ auditEvents(first: 10) { edges { node { id tool arguments } } } }',
    );
    const stored = listed.auditEvents.edges.find((e) => e.node.id === event.id)?.node;
    // The event is kept; its tool name, the caller's, is stored with the NUL escaped like every control
    // character (data-plane/snapshot/tool-names.ts); other text is shown as sent (columns hold U+FFFD).
    expect(stored?.tool).toBe('lookupa\\u{0}b');
    expect(stored?.arguments).toEqual({ [NUL]: NUL });
    const verified = await cp.gql<{ verifyAuditChain: { ok: boolean; checkedEvents: number } }>('{ verifyAuditChain { ok checkedEvents } }');
    expect(verified.verifyAuditChain).toEqual({ ok: true, checkedEvents: 1 });

    // The export filter with a NUL answers a complete (here: empty) stream, not a cut one.
    const exported = await fetch(`${cp.url}/audit/export?tool=${encodeURIComponent(NUL)}&server=${encodeURIComponent(NUL)}`, {
      headers: { authorization: `Bearer ${cp.adminToken}` },
    });
    expect(exported.status).toBe(200);
    expect(await exported.text()).toBe('');
  });
});
