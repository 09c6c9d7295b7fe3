/**
 * What an upstream lists, besides tool names, on every route: tool titles, annotation titles, descriptions
 * and schema descriptions, prompts and resources (names, URIs, titles, descriptions) passed no rule, so an
 * upstream's ANSI escapes (`\u001b[2J`: clear the screen), bidi overrides (U+202E) and zero-width
 * characters reached the MCP client (a terminal client prints them: tool poisoning, terminal injection) on
 * `/mcp`, on `/mcp/{server}` relayed from an HTTP upstream and answered over the pool (stdio, the
 * 2026-07-28 bridge). Now (snapshot/tool-names.ts `servableList`) a prompt or resource whose name or URI
 * holds one is left out like such a tool, and so is a tool or prompt whose parameter names do; display
 * text has them as U+FFFD (tab and newline kept in descriptions), and every left-out entry is logged with
 * its server, how many, and the names escaped, also on the pooled routes, which dropped tools silently.
 * The same for what it says about itself at initialize (instructions, server info), relayed or pooled.
 * Also: a tools/call by such a name on `/mcp/{server}` is recorded `invalid_tool_name` (as on `/mcp`), not
 * `not_granted`; error messages that repeat a caller's name (an `Mcp-Name` header's, Base64 decoded) have
 * it escaped; a stdio upstream's stderr is logged without its control characters.
 * In-process node, the SDK's own server as the hostile upstream (HTTP and stdio) and its client.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { RequestRecord } from '../../data-plane/pipeline/context.js';
import { MAX_SCHEMA_DEPTH, servableList } from '../../data-plane/snapshot/tool-names.js';
import { buildSnapshot, connectClient, MODERN_META, startTestNode, type BuiltSnapshot, type TestNode } from '../data-plane/helpers.js';
import { ANSI, DROPPED, hostileStdioCommand, offending, startHostileHttpUpstream, type HostileUpstream } from './hostile-upstream.js';

/** What no served string may hold: control and format characters but tab and newline (prose keeps those). */
const UNSHOWABLE_IN_PROSE = /[^\P{Cc}\t\n]|[\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u;
const UNSHOWABLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u;
/** `ANSI` as served in display text. */
const R = '\uFFFD[2J\uFFFD[31m';

let upstream: HostileUpstream;
let node: TestNode;
let snapshot: BuiltSnapshot;
const records: RequestRecord[] = [];
const clients: Client[] = [];

beforeAll(async () => {
  upstream = await startHostileHttpUpstream('docs');
  const stdio = hostileStdioCommand('local');
  snapshot = await buildSnapshot({
    servers: [
      { name: 'docs', url: upstream.url },
      { name: 'local', connectionType: 'STDIO', stdio: { command: stdio.command, args: stdio.args, env: {} } },
    ],
    keys: [{ name: 'all', servers: [{ server: 'docs', tools: ['*'] }, { server: 'local', tools: ['*'] }] }],
    sessionSecrets: { current: { id: 's1', secret: randomBytes(32).toString('base64url') } },
  });
  node = await startTestNode({ hooks: { onRecord: (record) => records.push(record) } });
  node.apply(snapshot);
}, 60_000);

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
  await node?.close();
  await upstream?.close();
});

const key = (): string => snapshot.keyValues.all ?? '';

async function connect(path: string): Promise<Client> {
  const client = await connectClient(`${node.url}${path}`, key());
  clients.push(client);
  return client;
}

interface Lists {
  tools: Array<Record<string, unknown> & { name: string }>;
  prompts: Array<Record<string, unknown> & { name: string }>;
  resources: Array<Record<string, unknown> & { uri: string }>;
  resourceTemplates: Array<Record<string, unknown> & { uriTemplate: string }>;
}

async function listsOf(client: Client): Promise<Lists> {
  const [tools, prompts, resources, templates] = await Promise.all([client.listTools(), client.listPrompts(), client.listResources(), client.listResourceTemplates()]);
  return { tools: tools.tools, prompts: prompts.prompts, resources: resources.resources, resourceTemplates: templates.resourceTemplates };
}

/** The served entries of one upstream, named as the route names them (`prefix` on `/mcp`). */
function expectServed(lists: Lists, name: (n: string) => string, uri: (u: string) => string): void {
  expect(offending(lists, UNSHOWABLE_IN_PROSE)).toEqual([]);
  const tool = lists.tools.find((t) => t.name === name('poisoned'));
  expect(tool, 'the poisoned tool, sanitised').toBeDefined();
  expect(tool?.title).toBe(`Title${R}`);
  expect(tool?.description).toBe(`line one\nline two${R}\ttab \uFFFDgnp.exe\uFFFD`);
  expect(tool?.annotations).toEqual({ title: 'Ann\uFFFDx', readOnlyHint: true });
  expect((tool?.inputSchema as { properties: { path: { description: string } } }).properties.path.description).toBe(`Path${R}\nmore`);
  expect((tool?.outputSchema as { properties: { out: { description: string } } }).properties.out.description).toBe('Out\uFFFD');
  expect(lists.tools.map((t) => t.name)).toContain(name('echo'));
  for (const dropped of DROPPED.tools) expect(lists.tools.map((t) => t.name)).not.toContain(name(dropped));

  expect(lists.prompts.map((p) => p.name)).toEqual([name('welcome')]);
  expect(lists.prompts[0]).toMatchObject({ title: 'Welcome\uFFFD', description: `Says hi${R}\nsecond`, arguments: [{ name: 'name', description: 'Name\uFFFD' }] });

  expect(lists.resources.map((r) => r.uri)).toEqual([uri('mem://note')]);
  expect(lists.resources[0]).toMatchObject({ name: 'note', title: `Note${R}`, description: 'A note\uFFFD\nsecond', mimeType: `text/plain${R}` });

  expect(lists.resourceTemplates.map((t) => t.uriTemplate)).toEqual([uri('mem://items/{id}')]);
  expect(lists.resourceTemplates[0]).toMatchObject({ name: 'items', title: 'Items\uFFFD', description: `Items${R}` });
}

/** What the upstream said about itself at initialize, as the client got it. */
function expectServerInfo(client: Client, label: string): void {
  expect(client.getInstructions()).toBe(`Use these tools${R}\nfirst\uFFFD`);
  expect(client.getServerVersion()).toMatchObject({ name: `hostile-${label}\uFFFD`, version: `1.0${R}` });
}

interface LogLine {
  msg?: string;
  server?: string;
  method?: string;
  count?: number;
  dropped?: Array<{ name: string; field: string; problem: string }>;
}
const logLines = (): LogLine[] =>
  node.logs
    .text()
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as LogLine);

/** The log lines that say what was left out of `method`'s answers from `server`. */
const droppedLines = (server: string, method: string): LogLine[] => logLines().filter((l) => l.msg?.startsWith('left entries out of an upstream list') && l.server === server && l.method === method);

describe('what an upstream lists, on every route', () => {
  it('/mcp/{server} relayed from an HTTP upstream', async () => {
    const client = await connect('/mcp/docs');
    expectServed(await listsOf(client), (n) => n, (u) => u);
    expectServerInfo(client, 'docs');
  });

  it('/mcp/{server} answered over the pool (stdio)', async () => {
    const client = await connect('/mcp/local');
    expectServed(await listsOf(client), (n) => n, (u) => u);
    expectServerInfo(client, 'local');
  });

  it('/mcp, aggregated', async () => {
    const lists = await listsOf(await connect('/mcp'));
    for (const server of ['docs', 'local']) {
      expectServed(
        {
          tools: lists.tools.filter((t) => t.name.startsWith(`${server}-`)),
          prompts: lists.prompts.filter((p) => p.name.startsWith(`${server}-`)),
          resources: lists.resources.filter((r) => r.uri.startsWith(`gatehouse://${server}/`)),
          resourceTemplates: lists.resourceTemplates.filter((t) => t.uriTemplate.startsWith(`gatehouse://${server}/`)),
        },
        (n) => `${server}-${n}`,
        (u) => `gatehouse://${server}/${u}`,
      );
    }
  });

  it('/mcp/{server} over the 2026-07-28 bridge (a 2025 HTTP upstream, answered over the pool)', async () => {
    for (const [method, field] of [
      ['tools/list', 'tools'],
      ['prompts/list', 'prompts'],
      ['resources/list', 'resources'],
      ['resources/templates/list', 'resourceTemplates'],
    ] as const) {
      const res = await fetch(`${node.url}/mcp/docs`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key()}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2026-07-28', 'mcp-method': method },
        body: JSON.stringify({ jsonrpc: '2.0', id: 3, method, params: { _meta: MODERN_META } }),
      });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { result: Record<string, unknown[]> };
      expect(body.result[field]?.length, method).toBeGreaterThan(0);
      expect(offending(body.result[field], UNSHOWABLE_IN_PROSE), method).toEqual([]);
    }
  });

  it('logs what it left out: server, method, count, names escaped; no log line holds a raw control character', async () => {
    // The lists above were asked on every route; each left-out entry was logged where it was dropped.
    for (const server of ['docs', 'local']) {
      for (const [method, names] of [
        ['tools/list', DROPPED.tools],
        ['prompts/list', DROPPED.prompts],
        ['resources/list', DROPPED.resources],
        ['resources/templates/list', DROPPED.resourceTemplates],
      ] as const) {
        // `/mcp`'s tools are logged by its catalog (mcp/route.ts), once per catalog; every other list here.
        const lines = droppedLines(server, method);
        expect(lines.length, `${server} ${method}`).toBeGreaterThan(0);
        for (const line of lines) {
          expect(line.count).toBe(names.length);
          expect(line.dropped?.map((d) => d.name)).toEqual(names.map((n) => n.replace(/[\p{Cc}\p{Cf}]/gu, (c) => `\\u{${(c.codePointAt(0) ?? 0).toString(16)}}`)));
        }
      }
    }
    expect(droppedLines('local', 'tools/list')[0]?.dropped).toEqual([
      { name: 'bad\\u{1b}[2J\\u{1b}[31mname', field: 'name', problem: 'unshowable_characters' },
      { name: 'keyed', field: 'inputSchema', problem: 'unshowable_characters' },
    ]);
    // Parsed, so a JSON-escaped `\u001b` counts too (a log viewer prints it as the character).
    expect(logLines().flatMap((line) => offending(line, UNSHOWABLE_IN_PROSE))).toEqual([]);
  });
});

describe('refusals that repeat a name', () => {
  it('/mcp/{server} records a tools/call by a name that breaks the rule as invalid_tool_name, and its message escapes it', async () => {
    for (const path of ['/mcp/docs', '/mcp/local']) {
      const before = records.length;
      const res = await fetch(`${node.url}${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key()}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 4, method: 'tools/call', params: { name: DROPPED.tools[0], arguments: {} } }),
      });
      const body = (await res.json()) as { error?: { message: string } };
      expect(body.error?.message).toContain('bad\\u{1b}[2J');
      expect(body.error?.message).not.toMatch(UNSHOWABLE);
      const record = records.slice(before).find((r) => r.method === 'tools/call');
      expect(record, path).toMatchObject({ outcome: 'denied', error: 'tool_blocked', reason: 'invalid_tool_name' });
    }
  });

  it('an Mcp-Name refusal on /mcp and a header mismatch on /mcp/{server} escape the name they repeat', async () => {
    const name = `docs-evil${ANSI}\u202Egnp.exe`;
    const encoded = `=?base64?${Buffer.from(name, 'utf8').toString('base64')}?=`;
    const refused = await fetch(`${node.url}/mcp`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key()}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-method': 'tools/call', 'mcp-name': encoded },
      body: JSON.stringify({ jsonrpc: '2.0', id: 5, method: 'tools/call', params: { name, arguments: {} } }),
    });
    const refusal = (await refused.json()) as { error?: { message: string } };
    expect(refusal.error?.message).toContain('docs-evil\\u{1b}[2J\\u{1b}[31m\\u{202e}gnp.exe');
    expect(refusal.error?.message).not.toMatch(UNSHOWABLE);

    // A header that disagrees with the body is named in the answer: escaped too (JSON quoting leaves U+202E).
    const mismatched = await fetch(`${node.url}/mcp/docs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key()}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-method': 'tools/call', 'mcp-name': encoded },
      body: JSON.stringify({ jsonrpc: '2.0', id: 6, method: 'tools/call', params: { name: 'echo', arguments: { text: 'x' } } }),
    });
    expect(mismatched.status).toBe(400);
    const mismatch = (await mismatched.json()) as { error?: { message: string } };
    expect(mismatch.error?.message).toContain('\\u{202e}gnp.exe');
    expect(mismatch.error?.message).not.toMatch(UNSHOWABLE);
  });
});

describe('servableList (pure)', () => {
  it('leaves out a tool whose schema nests past the bound instead of walking it, and keeps a list that needs nothing as it is', () => {
    let deep: Record<string, unknown> = { type: 'string', description: `deep${ANSI}` };
    for (let i = 0; i < 10_000; i++) deep = { type: 'object', properties: { x: deep } };
    const shallow = { name: 'fine', description: 'plain\ttext\nsecond line', inputSchema: { type: 'object', properties: { a: { type: 'string', description: 'ok' } } } };
    expect(servableList('tools', [shallow, { name: 'deep', inputSchema: deep }])).toEqual({ items: [shallow], dropped: [{ name: 'deep', field: 'inputSchema', problem: 'schema_too_deep' }] });
    const list = [shallow];
    expect(servableList('tools', list).items).toBe(list);
    // The bound is far above any real schema: one just within it is served, sanitised.
    let within: Record<string, unknown> = { type: 'string', description: `d${ANSI}` };
    for (let i = 0; i < MAX_SCHEMA_DEPTH / 2 - 2; i++) within = { type: 'object', properties: { x: within } };
    expect(offending(servableList('tools', [{ name: 'within', inputSchema: within }]).items, UNSHOWABLE_IN_PROSE)).toEqual([]);
    expect(servableList('tools', [{ name: 'within', inputSchema: within }]).items).toHaveLength(1);
  });
});
