/**
 * Tool names with control characters on the data plane: the rule of data-plane/snapshot/tool-names.ts, the
 * one the control plane applies to the catalogs it stores, applied to what the node serves. An upstream
 * that lists a tool named with an ANSI escape (`\u001b[31m…`) or a bidi override (U+202E) beside its normal
 * tools had them passed to clients as listed, on `/mcp` (prefixed) and on `/mcp/{server}` (the upstream's
 * SSE answer relayed), where a terminal client (Claude Code) prints them; and a tools/call by such a name
 * reached the upstream. Now both lists leave them out and the call is refused before anything goes upstream.
 * The audit event of such a call kept the caller's name as sent (only U+0000 was replaced), so GraphQL
 * `auditEvents` showed the escape sequence; now the control plane stores tool and method names escaped
 * (`\u{1b}`). Real control plane (both dialects), in-process node, MCP SDK upstream and client.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { DataPlaneNode } from '../../data-plane/node/node.js';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { openTestDatabase, testDialects, type TestDatabase } from '../support/db.js';
import { postMcp } from '../support/mcp-http.js';
import { startNodeOf } from '../support/node-of.js';
import { startHttpUpstream, type HttpUpstream } from '../support/upstreams.js';
import { waitFor } from '../support/wait.js';

const ANSI = '\u001b[31mred';
const BIDI = 'safe\u202Eexe.txt';
/** Any character the rule refuses in a name. */
const UNSHOWABLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u;

describe.each(testDialects)('upstream tool names with control characters, on the node (%s)', (dialect) => {
  let testDb: TestDatabase | undefined;
  let cp: TestControlPlane;
  let node: DataPlaneNode;
  let upstream: HttpUpstream;
  let key: string;
  const clients: Client[] = [];

  const connect = async (path: string): Promise<Client> => {
    const client = new Client({ name: 'tool-names-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${node.url}${path}`), { requestInit: { headers: { authorization: `Bearer ${key}` } } }));
    clients.push(client);
    return client;
  };
  const upstreamCalls = (): number => upstream.requests.filter((r) => r.rpcMethod === 'tools/call').length;

  beforeAll(async () => {
    upstream = await startHttpUpstream({ label: 'docs' });
    // Registered on every session the node opens: listed beside the upstream's normal tools.
    upstream.addTool(ANSI);
    upstream.addTool(BIDI);
    if (dialect === 'postgres') testDb = await openTestDatabase('postgres');
    cp = await startTestControlPlane(testDb ? { databaseUrl: testDb.url, databaseSchema: testDb.searchPath } : {});
    await cp.gql('mutation($u: String!) { createMcpServer(input: { name: "docs", connectionType: HTTP, connectionString: $u, toolsToExecute: ["*"] }) { errors { code } } }', { u: upstream.url });
    const userId = (await cp.gql<{ createUser: { user: { id: string } } }>('mutation { createUser(input: { email: "names@example.com" }) { user { id } } }')).createUser.user.id;
    key = (
      await cp.gql<{ createVirtualKey: { key: string } }>('mutation($u: ID!) { createVirtualKey(input: { userId: $u, name: "names", servers: [{ server: "docs", tools: ["*"] }] }) { key } }', { u: userId })
    ).createVirtualKey.key;
    node = await startNodeOf(cp);
  }, 60_000);

  afterAll(async () => {
    for (const client of clients) await client.close().catch(() => undefined);
    await node?.close();
    await cp?.close();
    await upstream?.close();
    await testDb?.close();
  });

  it('/mcp lists only the tools whose names are tool names', async () => {
    const client = await connect('/mcp');
    const names = await waitFor(async () => {
      const listed = (await client.listTools()).tools.map((t) => t.name);
      return listed.includes('docs-echo') ? listed : null;
    }, { what: 'docs tools on /mcp' });
    expect(names).not.toContain(`docs-${ANSI}`);
    expect(names).not.toContain(`docs-${BIDI}`);
    expect(names.filter((n) => UNSHOWABLE.test(n))).toEqual([]);
  });

  it('/mcp/{server} lists only the tools whose names are tool names (the upstream answers over SSE)', async () => {
    const client = await connect('/mcp/docs');
    const names = (await client.listTools()).tools.map((t) => t.name);
    expect(names).toContain('echo');
    expect(names).not.toContain(ANSI);
    expect(names).not.toContain(BIDI);
    expect(names.filter((n) => UNSHOWABLE.test(n))).toEqual([]);
  });

  it('refuses a tools/call by such a name on both routes; the upstream never sees it', async () => {
    const aggregated = await connect('/mcp');
    const direct = await connect('/mcp/docs');
    const before = upstreamCalls();
    for (const [client, name] of [
      [aggregated, `docs-${ANSI}`],
      [aggregated, `docs-${BIDI}`],
      [direct, ANSI],
      [direct, BIDI],
    ] as const) {
      await expect(client.callTool({ name, arguments: {} }), JSON.stringify(name)).rejects.toThrow(/blocked|not allowed|-32003/i);
    }
    expect(upstreamCalls()).toBe(before);
    // The count does move for a call that does go upstream.
    expect(JSON.stringify(await direct.callTool({ name: 'echo', arguments: { text: 'hi' } }))).toContain('docs:hi');
    expect(upstreamCalls()).toBe(before + 1);
  });

  it('stores the audit events of such calls with the names escaped (GraphQL auditEvents)', async () => {
    const bad = await postMcp(node.url, key, { id: 1, method: 'tools/call', params: { name: `docs-${ANSI}`, arguments: {} } });
    expect(JSON.stringify(bad.body)).toContain('tool_blocked');
    // A method name is the caller's too: an unknown one is answered and recorded.
    await postMcp(node.url, key, { id: 2, method: 'evil\u001b[2J\u202E' });
    type Row = { method: string; tool: string | null };
    const rows = await waitFor(async () => {
      const page = await cp.gql<{ auditEvents: { edges: { node: Row }[] } }>('{ auditEvents(first: 100) { edges { node { method tool } } } }');
      const found = page.auditEvents.edges.map((e) => e.node);
      return found.some((r) => r.tool?.includes('red')) && found.some((r) => r.method.startsWith('evil')) ? found : null;
    }, { timeoutMs: 20_000, what: 'the audit events of the refused call and the unknown method' });
    expect(rows.find((r) => r.tool?.includes('red'))?.tool).toBe('docs-\\u{1b}[31mred');
    expect(rows.find((r) => r.method.startsWith('evil'))?.method).toBe('evil\\u{1b}[2J\\u{202e}');
    expect(rows.filter((r) => UNSHOWABLE.test(r.method) || UNSHOWABLE.test(r.tool ?? ''))).toEqual([]);
    const verified = await cp.gql<{ verifyAuditChain: { ok: boolean } }>('{ verifyAuditChain { ok } }');
    expect(verified.verifyAuditChain.ok).toBe(true);
  });
});
