/**
 * A catalog listed through one user's own credential is that user's, never the server's (the per-user
 * catalog class). Before, saving per-user header values wrote what the upstream listed to *that user's*
 * values into `McpServer.tools` (shown to every admin, and quoted in tool-name warnings), and a node showed
 * the last catalog listed through *any* user's credential to every caller who had not connected yet: tool
 * names and descriptions of what one user can reach leaked to others.
 *
 * End to end on each dialect: a real control plane and node, an MCP SDK upstream that lists different
 * tools per credential (per-user headers over Streamable HTTP and legacy SSE), and per-user OAuth through
 * oidc-provider to an SDK server that lists per-subject tools. Alice connects everywhere and lists; then
 * Bob (not connected) sees only the connect tools, `McpServer.tools` of every per-user server stays null
 * across node reports (proved to have happened by a shared server's catalog changing afterwards), a
 * report such as an older node sends is not recorded for a per-user server, and Bob once connected sees
 * his own tools only.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../data-plane/log.js';
import { startNode, type DataPlaneNode } from '../../data-plane/node/node.js';
import { NODE_ID_HEADER } from '../../data-plane/snapshot/stream-protocol.js';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { openTestDatabase, testDialects, type TestDatabase } from '../support/db.js';
import { LogCapture } from '../support/log-capture.js';
import { postMcp } from '../support/mcp-http.js';
import { authorizeSharedOAuth, connectWithLink, startAuthorizationServer, startProtectedMcpServer, type AuthorizationServer, type ProtectedMcpServer } from '../support/oauth-upstream.js';
import { startPerCredentialUpstream, type PerCredentialUpstream } from '../support/per-credential-upstream.js';
import { startHttpUpstream, type HttpUpstream } from '../support/upstreams.js';
import { waitFor } from '../support/wait.js';
import { openOneTimeLink } from '../support/one-time-link.js';

const ALICE_TOKEN = 'tickets-token-of-alice-5e1f0c';
const BOB_TOKEN = 'tickets-token-of-bob-93ab4d';
/** What Alice's credentials list: names that must never reach Bob or an admin. */
const ALICE_TOOLS = ['alice_payroll_export', 'alice_board_minutes'];
const BOB_TOOLS = ['bob_ticket_triage'];
const PER_USER_SERVERS = ['tickets', 'tickets_sse', 'notes'] as const;
const CONNECT = 'gatehouse_connect_account';

interface ListedTool {
  name: string;
  description?: string;
}

describe.each(testDialects)('per-user catalogs stay with their user on %s', (dialect) => {
  let db: TestDatabase | null = null;
  let cp: TestControlPlane;
  let node: DataPlaneNode;
  let as: AuthorizationServer;
  let notes: ProtectedMcpServer;
  let tickets: PerCredentialUpstream;
  let crm: HttpUpstream;
  const users: Record<string, string> = {};
  const keys: Record<string, string> = {};
  const nodeId = `catalogs-${dialect}`;

  async function listTools(who: string, path = '/mcp'): Promise<ListedTool[]> {
    const response = await postMcp(node.url, keys[who] ?? null, { id: 1, method: 'tools/list', params: {} }, path);
    const body = response.body as { result?: { tools: ListedTool[] }; error?: unknown };
    if (!body.result) throw new Error(`tools/list on ${path} failed: ${JSON.stringify(body)}`);
    return body.result.tools;
  }

  async function connectLink(who: string, server: string): Promise<string> {
    const made = await cp.gql<{ createConnectLink: { url: string | null; errors: unknown[] } }>(
      'mutation($s: String!, $u: ID!) { createConnectLink(server: $s, userId: $u) { url errors { code message } } }',
      { s: server, u: users[who] },
    );
    expect(made.createConnectLink.errors).toEqual([]);
    return made.createConnectLink.url ?? '';
  }

  /** What a person does on the headers form, without a browser: open the link, press Continue, read the CSRF token, save. */
  async function saveHeaders(who: string, server: string, value: string): Promise<void> {
    const url = await connectLink(who, server);
    // The link's GET only shows a Continue page (previews must not spend it): press it.
    const link = await openOneTimeLink(url);
    expect(link.status).toBe(303);
    const cookie = (link.headers.getSetCookie()[0] ?? '').split(';')[0] ?? '';
    const page = await (await fetch(new URL(link.headers.get('location') ?? '', url), { headers: { cookie } })).text();
    const csrf = /name="csrf" value="([^"]+)"/.exec(page)?.[1] ?? '';
    const saved = await fetch(new URL('/connect/session/headers', url), {
      method: 'POST',
      headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ csrf, 'header:X-Tickets-Token': value }),
    });
    expect(await saved.text()).toContain('All set');
  }

  const serverTools = async (name: string): Promise<ListedTool[] | null> =>
    (await cp.gql<{ mcpServer: { tools: ListedTool[] | null } }>('query($n: String!) { mcpServer(name: $n) { tools { name description } } }', { n: name })).mcpServer.tools;

  beforeAll(async () => {
    if (dialect === 'postgres') db = await openTestDatabase('postgres');
    cp = await startTestControlPlane(db ? { databaseUrl: db.url, databaseSchema: db.searchPath } : {});
    as = await startAuthorizationServer();
    notes = await startProtectedMcpServer(as, { toolsFor: (sub) => ({ 'alice-at-notes': ['alice_notes_diary'], 'bob-at-notes': ['bob_notes_todo'], 'ops-admin': ['shared_wiki_search'] })[sub] ?? [] });
    tickets = await startPerCredentialUpstream({ header: 'x-tickets-token', catalogs: { [ALICE_TOKEN]: ALICE_TOOLS, [BOB_TOKEN]: BOB_TOOLS } });
    crm = await startHttpUpstream({ label: 'crm' });
    const servers = [
      { name: 'tickets', connectionType: 'HTTP', connectionString: tickets.url, authType: 'PER_USER_HEADERS', perUserHeaderKeys: ['X-Tickets-Token'] },
      { name: 'tickets_sse', connectionType: 'SSE', connectionString: tickets.sseUrl, authType: 'PER_USER_HEADERS', perUserHeaderKeys: ['X-Tickets-Token'] },
      { name: 'notes', connectionType: 'HTTP', connectionString: notes.url, authType: 'PER_USER_OAUTH' },
      { name: 'crm', connectionType: 'HTTP', connectionString: crm.url, authType: 'NONE' },
      // Shared OAuth: one token (an admin's) for every caller, so what it lists is the server's catalog.
      { name: 'wiki', connectionType: 'HTTP', connectionString: notes.url, authType: 'OAUTH' },
    ];
    for (const server of servers) {
      const made = await cp.gql<{ createMcpServer: { errors: unknown[] } }>('mutation($i: CreateMcpServerInput!) { createMcpServer(input: $i) { errors { field code message } } }', {
        i: { ...server, toolsToExecute: ['*'] },
      });
      expect(made.createMcpServer.errors).toEqual([]);
    }
    for (const who of ['alice', 'bob']) {
      const user = await cp.gql<{ createUser: { user: { id: string } } }>(`mutation { createUser(input: { email: "${who}@example.com" }) { user { id } } }`);
      users[who] = user.createUser.user.id;
      const key = await cp.gql<{ createVirtualKey: { key: string } }>('mutation($i: CreateVirtualKeyInput!) { createVirtualKey(input: $i) { key errors { code message } } }', {
        i: { name: `${who}-key`, userId: users[who], servers: servers.map((s) => ({ server: s.name, tools: ['*'] })) },
      });
      keys[who] = key.createVirtualKey.key;
    }
    node = await startNode({
      controlPlaneUrl: cp.url,
      nodeToken: cp.cp.nodeToken,
      port: 0,
      nodeId,
      stateDir: null,
      logger: createLogger('test-node', { destination: new LogCapture(), level: 'debug' }),
      // Reports often, so every listing below is followed by several reports within the test.
      reportIntervalMs: 100,
    });
    await waitFor(async () => (await fetch(`${node.url}/readyz`)).ok, { what: 'node ready' });
  }, 60_000);

  afterAll(async () => {
    await node?.close();
    await cp?.close().catch(() => undefined);
    await notes?.close();
    await as?.close();
    await tickets?.close();
    await crm?.close();
    await db?.close();
  });

  it("Alice's own credentials list Alice's tools, on /mcp and on /mcp/{server}", async () => {
    await authorizeSharedOAuth(cp, 'wiki', 'ops-admin');
    await saveHeaders('alice', 'tickets', ALICE_TOKEN);
    await saveHeaders('alice', 'tickets_sse', ALICE_TOKEN);
    const connected = await connectWithLink(await connectLink('alice', 'notes'), 'alice-at-notes');
    expect(connected.body).toContain('All set');
    const names = (await listTools('alice')).map((t) => t.name);
    for (const tool of ALICE_TOOLS) expect(names).toEqual(expect.arrayContaining([`tickets-${tool}`, `tickets_sse-${tool}`]));
    expect(names).toContain('notes-alice_notes_diary');
    expect(names).toContain('wiki-shared_wiki_search');
    // Legacy SSE relayed by the node: listed over Alice's own upstream connection, not the server's shared one
    // (opened with the configured headers only, which this upstream refuses), from initialize on.
    expect((await listTools('alice', '/mcp/tickets_sse')).map((t) => t.name).sort()).toEqual([...ALICE_TOOLS].sort());
    const client = new Client({ name: 'alice-agent', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${node.url}/mcp/tickets_sse`), { requestInit: { headers: { authorization: `Bearer ${keys.alice}` } } }));
    try {
      expect(client.getServerVersion()?.name).toBe('per-credential-upstream');
      expect((await client.listTools()).tools.map((t) => t.name).sort()).toEqual([...ALICE_TOOLS].sort());
    } finally {
      await client.close();
    }
  });

  it('Bob, not connected, sees only the connect tool of each per-user server: never what Alice listed', async () => {
    const tools = await listTools('bob');
    const perUser = tools.filter((t) => !t.name.startsWith('crm-') && !t.name.startsWith('wiki-'));
    expect(perUser.map((t) => t.name).sort()).toEqual(PER_USER_SERVERS.map((s) => `${s}-${CONNECT}`).sort());
    expect(JSON.stringify(tools)).not.toMatch(/alice/i);
    // Shared servers are listed as before, the shared OAuth one with the admin's token.
    expect(tools.map((t) => t.name)).toEqual(expect.arrayContaining(['crm-echo', 'wiki-shared_wiki_search']));
  });

  it("resources and prompts on /mcp go out with each caller's own credential: Alice gets hers, Bob (not connected) nothing of hers", async () => {
    const rpc = async (who: string, id: number, method: string, params: Record<string, unknown>): Promise<{ result?: Record<string, unknown>; error?: { code: number; message: string } }> =>
      (await postMcp(node.url, keys[who] ?? null, { id, method, params })).body as { result?: Record<string, unknown>; error?: { code: number; message: string } };

    const aliceResources = (await rpc('alice', 1, 'resources/list', {})).result?.resources as { uri: string }[];
    // (crm, a shared server, lists its own items too: not what this is about.)
    expect(aliceResources.map((r) => r.uri).filter((uri) => !uri.startsWith('gatehouse://crm/')).sort()).toEqual(['gatehouse://notes/mem://page', 'gatehouse://wiki/mem://page']);
    const alicePrompts = (await rpc('alice', 2, 'prompts/list', {})).result?.prompts as { name: string; description: string }[];
    expect(alicePrompts.filter((p) => !p.name.startsWith('crm-')).map((p) => [p.name, p.description]).sort()).toEqual([
      ['notes-summary', 'summary prompt listed to alice-at-notes'],
      ['wiki-summary', 'summary prompt listed to ops-admin'],
    ]);
    const read = await rpc('alice', 3, 'resources/read', { uri: 'gatehouse://notes/mem://page' });
    expect(JSON.stringify(read.result)).toContain('page of sub:alice-at-notes');
    expect(JSON.stringify((await rpc('alice', 4, 'prompts/get', { name: 'notes-summary' })).result)).toContain('summary for sub:alice-at-notes');

    // Bob has not connected to notes: its items are not listed for him, and asking by name says to connect.
    const bobListed = JSON.stringify([(await rpc('bob', 5, 'resources/list', {})).result, (await rpc('bob', 6, 'prompts/list', {})).result]);
    expect(bobListed).toContain('gatehouse://wiki/mem://page');
    expect(bobListed).not.toContain('gatehouse://notes/');
    expect(bobListed).not.toMatch(/alice/i);
    const bobRead = await rpc('bob', 7, 'resources/read', { uri: 'gatehouse://notes/mem://page' });
    expect(bobRead.result).toBeUndefined();
    expect(bobRead.error?.code).toBe(-32042);
    expect(JSON.stringify(bobRead)).not.toMatch(/alice/i);
  });

  it("no report and no saved form makes a user's catalog the server's McpServer.tools", async () => {
    // A catalog change of the shared server after every listing above: once GraphQL shows it, a report
    // sent after Alice's listings has been recorded.
    crm.addTool('added_after_listings');
    await waitFor(async () => ((await serverTools('crm')) ?? []).some((t) => t.name === 'added_after_listings'), { timeoutMs: 15_000, what: 'a report after the listings' });
    for (const server of PER_USER_SERVERS) expect(await serverTools(server)).toBeNull();
    // A catalog listed with a shared credential is the server's, also when that credential is an OAuth token.
    expect((await serverTools('wiki'))?.map((t) => t.name).sort()).toEqual(['shared_wiki_search', 'whoami']);

    // A report as a node of an older release sends it (a catalog for a per-user server) is not recorded.
    const report = await fetch(`${cp.url}/nodes/report`, {
      method: 'POST',
      headers: { authorization: `Bearer ${cp.cp.nodeToken}`, [NODE_ID_HEADER]: nodeId, 'content-type': 'application/json' },
      body: JSON.stringify({
        nodeId,
        appliedVersion: 1,
        missingEnv: [],
        lastRejection: null,
        health: 'OK',
        startedAt: new Date().toISOString(),
        catalogs: [{ server: 'tickets', tools: ALICE_TOOLS.map((name) => ({ name, description: null })) }],
      }),
    });
    expect(report.status).toBe(204);
    expect(await serverTools('tickets')).toBeNull();

    // Tool-name warnings quote a server's known catalog: a per-user server has none to quote.
    const updated = await cp.gql<{ updateMcpServer: { warnings: { message: string }[] } }>(
      'mutation { updateMcpServer(input: { name: "tickets", toolsToExecute: ["no_such_tool"] }) { warnings { message } errors { code } } }',
    );
    expect(JSON.stringify(updated.updateMcpServer)).not.toMatch(/alice/i);
    await cp.gql('mutation { updateMcpServer(input: { name: "tickets", toolsToExecute: ["*"] }) { errors { code } } }');
    expect(cp.responses.join('\n')).not.toMatch(/alice_(payroll|board|notes)/);
  });

  it('Bob once connected sees his own tools, never Alice\'s', async () => {
    await saveHeaders('bob', 'tickets', BOB_TOKEN);
    await saveHeaders('bob', 'tickets_sse', BOB_TOKEN);
    const connected = await connectWithLink(await connectLink('bob', 'notes'), 'bob-at-notes');
    expect(connected.body).toContain('All set');
    const tools = await waitFor(async () => {
      const listed = await listTools('bob');
      return listed.some((t) => t.name === 'tickets-bob_ticket_triage') ? listed : null;
    }, { what: "Bob's saved values in use" });
    const names = tools.map((t) => t.name);
    expect(names).toEqual(expect.arrayContaining(['tickets-bob_ticket_triage', 'tickets_sse-bob_ticket_triage', 'notes-bob_notes_todo']));
    expect(JSON.stringify(tools)).not.toMatch(/alice/i);
    // And Alice still sees hers, not Bob's.
    expect(JSON.stringify(await listTools('alice'))).not.toMatch(/bob_/);
    for (const server of PER_USER_SERVERS) expect(await serverTools(server)).toBeNull();
  });
});
