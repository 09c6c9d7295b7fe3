/**
 * `/mcp/{server}` in front of stdio and legacy SSE upstreams (issue 9 item 1): reached through the node's
 * pooled connection, with the SDK's real client: initialize with the upstream's own capabilities, the key's
 * tools only, a denied call refused, resources, prompts and progress relayed, stateless (no session id, no
 * GET stream), and one pooled connection shared by every caller.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CallToolResultSchema, type Progress } from '@modelcontextprotocol/sdk/types.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readStdioStarts, startSseUpstream, stdioUpstreamCommand, type HttpUpstream } from '../../support/upstreams.js';
import { buildSnapshot, resultText, startTestNode, type BuiltSnapshot, type TestNode } from '../helpers.js';

describe('/mcp/{server} through the pooled connection (stdio, legacy SSE)', () => {
  let node: TestNode;
  let sse: HttpUpstream;
  let snapshot: BuiltSnapshot;
  let recordFile: string;
  const clients: Client[] = [];

  async function connect(server: string, keyName: string): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
    const client = new Client({ name: 'pooled-test', version: '1.0.0' });
    const transport = new StreamableHTTPClientTransport(new URL(`${node.url}/mcp/${server}`), {
      requestInit: { headers: { authorization: `Bearer ${snapshot.keyValues[keyName] ?? ''}` } },
    });
    await client.connect(transport);
    clients.push(client);
    return { client, transport };
  }

  beforeAll(async () => {
    recordFile = join(mkdtempSync(join(tmpdir(), 'gatehouse-pooled-')), 'starts.jsonl');
    const stdio = stdioUpstreamCommand(recordFile, 'stdio');
    sse = await startSseUpstream({ label: 'sse' });
    node = await startTestNode();
    snapshot = await buildSnapshot({
      servers: [
        { name: 'local', connectionType: 'STDIO', stdio: { command: stdio.command, args: stdio.args, env: {} }, toolsToExecute: ['echo', 'add', 'slow'] },
        { name: 'kb', connectionType: 'SSE', url: sse.url, headers: { 'x-api-key': { secret: 'sse-secret-4d2f' } } },
      ],
      keys: [
        { name: 'dev', servers: [{ server: 'local', tools: ['echo', 'slow'] }, { server: 'kb', tools: ['*'] }] },
        { name: 'other', servers: [{ server: 'local', tools: ['*'] }] },
      ],
    });
    node.apply(snapshot);
  }, 30_000);

  afterAll(async () => {
    for (const client of clients) await client.close().catch(() => undefined);
    await node?.close();
    await sse?.close();
  });

  it('serves a stdio upstream statelessly: its capabilities, the key’s tools only, a denied call refused', async () => {
    const { client, transport } = await connect('local', 'dev');
    expect(transport.sessionId).toBeUndefined();
    expect(client.getServerVersion()?.name).toBe('upstream-stdio');
    expect(client.getServerCapabilities()).toMatchObject({ tools: {}, resources: {}, prompts: {} });
    expect(client.getServerCapabilities()?.logging).toBeUndefined();
    expect((await client.listTools()).tools.map((t) => t.name).sort()).toEqual(['echo', 'slow']);
    expect(resultText(await client.callTool({ name: 'echo', arguments: { text: 'hi' } }))).toBe('stdio:hi');
    await expect(client.callTool({ name: 'add', arguments: { a: 1, b: 2 } })).rejects.toMatchObject({ code: -32003 });
  });

  it('relays resources, prompts and progress over the pooled connection', async () => {
    const { client } = await connect('local', 'dev');
    expect((await client.listResources()).resources.map((r) => r.uri)).toEqual(['mem://note']);
    expect((await client.readResource({ uri: 'mem://note' })).contents[0]).toMatchObject({ text: 'stdio:note' });
    expect((await client.listPrompts()).prompts.map((p) => p.name)).toEqual(['greet']);
    expect((await client.getPrompt({ name: 'greet', arguments: { name: 'Ada' } })).messages[0]?.content).toMatchObject({ text: 'stdio: hello Ada' });
    const progress: Progress[] = [];
    // The upstream sleeps after reporting progress: the SDK client drops a progress notification that arrives
    // in the same read as its response (it handles notifications a microtask later), so they must not coalesce.
    const slow = await client.callTool({ name: 'slow', arguments: { ms: 300 } }, CallToolResultSchema, { onprogress: (p) => progress.push(p) });
    expect(resultText(slow)).toBe('slept 300');
    expect(progress).toEqual([{ progress: 1, total: 2 }]);
  });

  it('serves a legacy SSE upstream the same way, with its credential header', async () => {
    const { client } = await connect('kb', 'dev');
    expect(resultText(await client.callTool({ name: 'echo', arguments: { text: 'x' } }))).toBe('sse:x');
    expect((await client.readResource({ uri: 'mem://note' })).contents[0]).toMatchObject({ text: 'sse:note' });
    const posts = sse.requests.filter((r) => r.rpcMethod === 'tools/call');
    expect(posts.at(-1)?.headers['x-api-key']).toBe('sse-secret-4d2f');
    expect(JSON.stringify(posts.at(-1)?.headers)).not.toContain(snapshot.keyValues.dev);
  });

  it('shares one upstream process between callers, and refuses GET (no stream, no session)', async () => {
    await connect('local', 'other');
    expect(readStdioStarts(recordFile)).toHaveLength(1);
    const get = await fetch(`${node.url}/mcp/local`, { headers: { authorization: `Bearer ${snapshot.keyValues.dev}`, accept: 'text/event-stream' } });
    expect(get.status).toBe(405);
    expect(await get.json()).toMatchObject({ type: 'method_not_allowed' });
  });
});
