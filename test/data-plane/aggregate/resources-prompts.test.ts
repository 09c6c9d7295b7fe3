/**
 * The aggregated `/mcp` gains resources, resource templates, prompts and completions of every server the
 * key may use (issue 9 item 3), named so that two servers offering the same URI or prompt name never
 * collide (`gatehouse://{server}/{uri}`, `{server}-{prompt}`), with the SDK's real client.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { CallToolResultSchema, LoggingMessageNotificationSchema, type LoggingMessageNotification, type Progress } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STATIC_TEXT_URI, TEMPLATE } from '../../fixtures/conformance/content.js';
import { startConformanceFixture, type ConformanceFixture } from '../../fixtures/conformance/server.js';
import { startHttpUpstream, startSseUpstream, type HttpUpstream } from '../../support/upstreams.js';
import { buildSnapshot, connectClient, postMcp, resultText, startTestNode, type BuiltSnapshot, type TestNode } from '../helpers.js';

describe('aggregated /mcp: resources, templates, prompts, completions', () => {
  let node: TestNode;
  let http: HttpUpstream;
  let sse: HttpUpstream;
  let fixture: ConformanceFixture;
  let snapshot: BuiltSnapshot;
  let client: Client;
  let narrow: Client;

  beforeAll(async () => {
    http = await startHttpUpstream({ label: 'http' });
    sse = await startSseUpstream({ label: 'sse' });
    fixture = await startConformanceFixture();
    node = await startTestNode();
    snapshot = await buildSnapshot({
      servers: [
        { name: 'crm', url: http.url },
        { name: 'kb', connectionType: 'SSE', url: sse.url, toolsToExecute: ['echo', 'slow'] },
        { name: 'conf', url: fixture.url },
      ],
      keys: [
        { name: 'all', servers: [{ server: 'crm', tools: ['*'] }, { server: 'kb', tools: ['echo', 'slow'] }, { server: 'conf', tools: ['*'] }] },
        { name: 'narrow', servers: [{ server: 'crm', tools: ['echo'] }] },
      ],
    });
    node.apply(snapshot);
    client = await connectClient(node.mcpUrl, snapshot.keyValues.all ?? '');
    narrow = await connectClient(node.mcpUrl, snapshot.keyValues.narrow ?? '');
  });

  afterAll(async () => {
    await client?.close();
    await narrow?.close();
    await node?.close();
    await http?.close();
    await sse?.close();
    await fixture?.close();
  });

  it('announces resources, prompts and completions', () => {
    expect(client.getServerCapabilities()).toMatchObject({ tools: {}, resources: {}, prompts: {}, completions: {} });
  });

  it('lists every allowed server’s resources under unambiguous URIs, and reads each from its own server', async () => {
    const uris = (await client.listResources()).resources.map((r) => r.uri);
    expect(uris).toEqual(expect.arrayContaining(['gatehouse://crm/mem://note', 'gatehouse://kb/mem://note', `gatehouse://conf/${STATIC_TEXT_URI}`]));
    expect((await client.readResource({ uri: 'gatehouse://crm/mem://note' })).contents).toEqual([{ uri: 'gatehouse://crm/mem://note', mimeType: 'text/plain', text: 'http:note' }]);
    expect((await client.readResource({ uri: 'gatehouse://kb/mem://note' })).contents[0]).toMatchObject({ text: 'sse:note' });
  });

  it('lists templates with their expressions intact, and reads an expanded one', async () => {
    const templates = (await client.listResourceTemplates()).resourceTemplates.map((t) => t.uriTemplate);
    expect(templates).toContain(`gatehouse://conf/${TEMPLATE}`);
    const read = await client.readResource({ uri: 'gatehouse://conf/test://template/42/data' });
    expect(read.contents[0]?.uri).toBe('gatehouse://conf/test://template/42/data');
    expect(JSON.stringify(read.contents)).toContain('42');
  });

  it('names prompts {server}-{prompt}, gets them from the right server, and completes their arguments', async () => {
    const names = (await client.listPrompts()).prompts.map((p) => p.name);
    expect(names).toEqual(expect.arrayContaining(['crm-greet', 'kb-greet', 'conf-test_simple_prompt']));
    const got = await client.getPrompt({ name: 'kb-greet', arguments: { name: 'Ada' } });
    expect(got.messages[0]?.content).toMatchObject({ text: 'sse: hello Ada' });
    const completion = await client.complete({ ref: { type: 'ref/prompt', name: 'conf-test_prompt_with_arguments' }, argument: { name: 'arg1', value: '' } });
    expect(Array.isArray(completion.completion.values)).toBe(true);
  });

  it('shows a key only its servers, and refuses to read another server’s resource by name', async () => {
    const uris = (await narrow.listResources()).resources.map((r) => r.uri);
    expect(uris).toEqual(['gatehouse://crm/mem://note']);
    expect((await narrow.listPrompts()).prompts.map((p) => p.name)).toEqual(['crm-greet']);
    await expect(narrow.readResource({ uri: 'gatehouse://kb/mem://note' })).rejects.toMatchObject({ code: -32602 });
    await expect(narrow.getPrompt({ name: 'kb-greet', arguments: { name: 'x' } })).rejects.toMatchObject({ code: -32602 });
    await expect(narrow.readResource({ uri: 'mem://note' })).rejects.toMatchObject({ code: -32602 });
  });

  it('relays progress and log notifications during a tools/call, on the call’s own SSE answer', async () => {
    const progress: Progress[] = [];
    const done = await client.callTool({ name: 'conf-test_tool_with_progress' }, CallToolResultSchema, { onprogress: (p) => progress.push(p) });
    expect(resultText(done)).toBe('Progress tool completed');
    expect(progress.map((p) => p.progress)).toEqual([0, 50, 100]);
    const logs: LoggingMessageNotification['params'][] = [];
    client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => void logs.push(n.params));
    await client.callTool({ name: 'conf-test_tool_with_logging' });
    expect(logs.map((l) => l.data)).toEqual(['Tool execution started', 'Tool processing data', 'Tool execution completed']);
    // Progress from an SSE upstream over the pooled SDK client, matched back to the caller's token (the
    // upstream sleeps after it, so the notification and the response do not reach the client in one read).
    const fromPool: Progress[] = [];
    await client.callTool({ name: 'kb-slow', arguments: { ms: 300 } }, CallToolResultSchema, { onprogress: (p) => fromPool.push(p) });
    expect(fromPool).toEqual([{ progress: 1, total: 2 }]);
  });

  it('keeps a call without notifications a plain JSON answer', async () => {
    const res = await postMcp(node.mcpUrl, { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'crm-echo', arguments: { text: 'x' } } }, { authorization: `Bearer ${snapshot.keyValues.all ?? ''}` });
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(await res.json()).toMatchObject({ id: 1, result: { content: [{ type: 'text', text: 'http:x' }] } });
  });
});
