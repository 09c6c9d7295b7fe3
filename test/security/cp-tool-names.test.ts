/**
 * Tool names with control characters and other junk. The catalogs nodes report carry the upstream's own tool
 * names, and the control plane stored and showed them as sent: an ANSI escape (`\u001b[31m`), a bidi
 * override (U+202E), a zero-width space, a newline, an empty or 500-character name reached McpServer.tools
 * and the warnings naming catalog tools; an admin's toolsToExecute and a key grant's tools took control
 * characters too (only length was checked). Now (data-plane/snapshot/tool-names.ts) such a tool is left out
 * of the stored catalog with a warning whose names are escaped, descriptions keep tab and newline only,
 * a catalog stored before is shown by the same rule, and admin lists (toolsToExecute, grants, tool prices)
 * refuse such names (INVALID_VALUE, the name not echoed). Printable names outside the spec's SHOULD pattern (a space) are kept: nodes serve them.
 * Both dialects.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NODE_ID_HEADER } from '../../data-plane/snapshot/stream-protocol.js';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { openTestDatabase, testDialects, type TestDatabase } from '../support/db.js';

/** What must never be in a stored name or description (tab and newline allowed in descriptions). */
const UNSHOWABLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u;
const UNSHOWABLE_IN_PROSE = /[^\P{Cc}\t\n]|[\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u;

const HOSTILE_NAMES = ['red\u001b[31mtool', 'evil\u202Egnp.exe', 'zero\u200Bwidth', 'line\nbreak', 'bell\u0007', 'del\u007f', 'c1\u0085', 'sep\u2028x', 'lone\uD800', '', 'x'.repeat(200)];

interface ToolsRead {
  mcpServer: { tools: Array<{ name: string; description: string | null }> | null };
}

describe.each(testDialects)('tool names with control characters on %s', (dialect) => {
  let testDb: TestDatabase | undefined;
  let cp: TestControlPlane;

  beforeAll(async () => {
    if (dialect === 'postgres') testDb = await openTestDatabase('postgres');
    cp = await startTestControlPlane(testDb ? { databaseUrl: testDb.url, databaseSchema: testDb.searchPath } : {});
    const made = await cp.gql<{ createMcpServer: { errors: unknown[] } }>('mutation { createMcpServer(input: {name: "crm", connectionType: HTTP, connectionString: "http://127.0.0.1:9/mcp", toolsToExecute: ["*"]}) { errors { code } } }');
    expect(made.createMcpServer.errors).toEqual([]);
  }, 60_000);
  afterAll(async () => {
    await cp?.close();
    await testDb?.close();
  });

  const readTools = async () => (await cp.gql<ToolsRead>('{ mcpServer(name: "crm") { tools { name description } } }')).mcpServer.tools ?? [];

  it('leaves tools whose names cannot be names out of a reported catalog, logged escaped', async () => {
    const tools = [
      { name: 'search', description: 'Finds\taccounts.\nSecond line \u001b[2J cleared \u202E reversed' },
      { name: 'get weather', description: null },
      { name: 'ok.tool-1_x', description: 'fine' },
      ...HOSTILE_NAMES.map((name) => ({ name, description: 'hostile' })),
    ];
    const report = { nodeId: 'n1', appliedVersion: null, missingEnv: [], lastRejection: null, health: 'OK', startedAt: new Date().toISOString(), catalogs: [{ server: 'crm', tools }] };
    const posted = await fetch(`${cp.url}/nodes/report`, {
      method: 'POST',
      headers: { authorization: `Bearer ${cp.cp.nodeToken}`, [NODE_ID_HEADER]: 'n1', 'content-type': 'application/json' },
      body: JSON.stringify(report),
    });
    expect(posted.status).toBe(204);

    const stored = await readTools();
    expect(stored.map((t) => t.name)).toEqual(['search', 'get weather', 'ok.tool-1_x']);
    expect(stored[0]?.description).toBe('Finds\taccounts.\nSecond line \uFFFD[2J cleared \uFFFD reversed');
    for (const tool of stored) {
      expect(tool.name).not.toMatch(UNSHOWABLE);
      expect(tool.description ?? '').not.toMatch(UNSHOWABLE_IN_PROSE);
    }
    // The warning says which tools were left out, escaped: no raw control or format character in the log.
    const warning = cp.logs.lines.map((line) => JSON.parse(line) as { msg?: string; dropped?: Array<{ name: string; problem: string }> }).find((line) => line.msg?.startsWith('left tools out of a reported catalog'));
    const dropped = warning?.dropped ?? [];
    expect(dropped.map((d) => d.problem)).toEqual([...Array(9).fill('unshowable_characters'), 'empty', 'too_long']);
    expect(dropped[0]?.name).toBe('red\\u{1b}[31mtool');
    expect(dropped[1]?.name).toBe('evil\\u{202e}gnp.exe');
    expect(cp.logs.text()).not.toMatch(/[\u0080-\u009f\u200b\u202e\u2028]/);
  });

  it('shows a catalog stored before the rule by the same rule', async () => {
    const legacy = JSON.stringify([{ name: 'search', description: 'ok' }, { name: 'evil\u202Egnp', description: null }, { name: 'note', description: 'a\u001bb' }]);
    await cp.cp.db.updateTable('mcp_servers').set({ tools: legacy }).where('name', '=', 'crm').execute();
    expect(await readTools()).toEqual([
      { name: 'search', description: 'ok' },
      { name: 'note', description: 'a\uFFFDb' },
    ]);
  });

  it("refuses such names in a server's toolsToExecute, a key grant's tools and a tool price table, without echoing them", async () => {
    const { createUser } = await cp.gql<{ createUser: { user: { id: string } } }>('mutation { createUser(input: {email: "tools@example.com"}) { user { id } } }');
    for (const name of HOSTILE_NAMES) {
      const server = await cp.gql<{ updateMcpServer: { errors: Array<{ field: string; code: string; message: string }> } }>(
        'mutation($t: [String!]!) { updateMcpServer(input: {name: "crm", toolsToExecute: $t}) { errors { field code message } } }',
        { t: ['search', name] },
      );
      expect(server.updateMcpServer.errors.map((e) => [e.field, e.code])).toEqual([['input.toolsToExecute.1', 'INVALID_VALUE']]);
      const key = await cp.gql<{ createVirtualKey: { errors: Array<{ field: string; code: string; message: string }> } }>(
        'mutation($u: ID!, $t: [String!]!) { createVirtualKey(input: {userId: $u, name: "k", servers: [{server: "crm", tools: $t}]}) { errors { field code message } } }',
        { u: createUser.user.id, t: [name] },
      );
      expect(key.createVirtualKey.errors.map((e) => e.code)).toEqual(['INVALID_VALUE']);
      for (const error of [...server.updateMcpServer.errors, ...key.createVirtualKey.errors]) expect(error.message).not.toMatch(UNSHOWABLE);
    }
    for (const name of HOSTILE_NAMES) {
      const priced = await cp.gql<{ setToolPricing: { errors: Array<{ field: string; code: string }> } }>(
        'mutation($t: String!) { setToolPricing(input: {server: "crm", prices: [{tool: "search", usdPerCall: 0.01}, {tool: $t, usdPerCall: 0.01}]}) { errors { field code } } }',
        { t: name },
      );
      expect(priced.setToolPricing.errors).toEqual([{ field: 'input.prices.1.tool', code: 'INVALID_VALUE' }]);
    }
    const fine = await cp.gql<{ updateMcpServer: { errors: unknown[] } }>('mutation { updateMcpServer(input: {name: "crm", toolsToExecute: ["search", "get weather"]}) { errors { code } } }');
    expect(fine.updateMcpServer.errors).toEqual([]);
  });
});
