/**
 * The conformance fixture upstream (`test/fixtures/conformance/`): the official suite's server requirement
 * sets for 2025-11-25 and 2026-07-28 run straight against it, so the fixture's own failures are known
 * (`"fixture"` in `expected-failures.json`: only the optional tasks extension); and what it records for
 * gateway tests (answers to its input requests, cancellations) checked with the SDK's real client.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CallToolResultSchema, CreateMessageRequestSchema, ElicitRequestSchema, ListRootsRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startConformanceFixture, type ConformanceFixture } from '../fixtures/conformance/server.js';
import { waitFor } from '../support/wait.js';
import { judge, loadExpectedFailures, REVISIONS, runRevision, type RevisionRun } from './runner.js';

describe('MCP conformance suite, server requirement sets, against the fixture itself', () => {
  let fixture: ConformanceFixture;
  const runs: RevisionRun[] = [];

  beforeAll(async () => {
    fixture = await startConformanceFixture();
    for (const revision of REVISIONS) runs.push(await runRevision(fixture.url, revision));
  }, 180_000);

  afterAll(async () => {
    await fixture?.close();
  });

  it('records checks for every scenario of both requirement sets', () => {
    for (const run of runs) {
      expect(run.results.map((r) => r.scenario).sort(), run.output).toEqual([...run.scenarios].sort());
      for (const result of run.results) expect(result.checks.length, `${run.revision} ${result.scenario}`).toBeGreaterThan(0);
    }
  });

  it('passes every scenario except the listed ones (the optional tasks extension), which still fail', () => {
    const verdict = judge(runs, loadExpectedFailures().fixture);
    expect(verdict.unexpected).toEqual([]);
    expect(verdict.stale).toEqual([]);
    expect(verdict.expected.every((f) => f.key.startsWith('tasks-'))).toBe(true);
    // SHOULD-level checks pass too: the fixture is the reference gateway runs are compared with.
    expect(verdict.warnings).toEqual([]);
  });
});

describe('what the fixture records for gateway tests', () => {
  let fixture: ConformanceFixture;
  let client: Client;

  beforeAll(async () => {
    fixture = await startConformanceFixture();
    client = new Client({ name: 'fixture-test', version: '1.0.0' }, { capabilities: { elicitation: {}, sampling: {}, roots: {} } });
    client.setRequestHandler(ElicitRequestSchema, () => ({ action: 'accept', content: { username: 'ada', email: 'ada@example.com' } }));
    client.setRequestHandler(CreateMessageRequestSchema, () => ({ role: 'assistant', model: 'm', content: { type: 'text', text: 'Paris' } }));
    client.setRequestHandler(ListRootsRequestSchema, () => ({ roots: [{ uri: 'file:///work', name: 'work' }] }));
    await client.connect(new StreamableHTTPClientTransport(new URL(fixture.url)));
  });

  afterAll(async () => {
    await client?.close();
    await fixture?.close();
  });

  it('2025 era: answers to elicitation, sampling and roots reach the fixture and shape the result', async () => {
    const elicited = await client.callTool({ name: 'test_elicitation', arguments: { message: 'who are you?' } });
    expect(JSON.stringify(elicited.content)).toContain('ada@example.com');
    const sampled = await client.callTool({ name: 'test_sampling', arguments: { prompt: 'capital of France?' } });
    expect(JSON.stringify(sampled.content)).toContain('LLM response: Paris');
    const roots = await client.callTool({ name: 'test_list_roots', arguments: {} });
    expect(JSON.stringify(roots.content)).toContain('file:///work');
    const inputs = fixture.events.events.filter((e) => e.kind === 'input').map((e) => (e.kind === 'input' ? `${e.method}:${e.tool}` : ''));
    expect(inputs).toEqual(['elicitation/create:test_elicitation', 'sampling/createMessage:test_sampling', 'roots/list:test_list_roots']);
  });

  it('2025 era: a cancelled call is recorded as cancelled', async () => {
    const abort = new AbortController();
    const call = client.callTool({ name: 'test_cancellable', arguments: { ms: 20_000 } }, CallToolResultSchema, { signal: abort.signal });
    await waitFor(() => fixture.events.events.some((e) => e.kind === 'http' && e.rpcName === 'test_cancellable' && e.era === 'legacy'));
    abort.abort();
    await expect(call).rejects.toThrow();
    await waitFor(() => fixture.events.events.some((e) => e.kind === 'cancelled' && e.era === 'legacy'));
  });

  it('2026 era: an InputRequiredResult, then the retry carrying the answer reaches the fixture', async () => {
    const call = async (extra: Record<string, unknown>): Promise<{ result: Record<string, unknown> }> => {
      const meta = { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': { elicitation: {} } };
      const res = await fetch(fixture.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-protocol-version': '2026-07-28',
          'mcp-method': 'tools/call',
          'mcp-name': 'test_input_required_result_elicitation',
        },
        body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'test_input_required_result_elicitation', ...extra, _meta: meta } }),
      });
      return (await res.json()) as { result: Record<string, unknown> };
    };
    const first = await call({});
    expect(first.result.resultType).toBe('input_required');
    expect(Object.keys(first.result.inputRequests as object)).toEqual(['user_name']);
    const second = await call({ inputResponses: { user_name: { action: 'accept', content: { name: 'Grace' } } } });
    expect(second.result).toMatchObject({ resultType: 'complete', content: [{ type: 'text', text: 'Hello, Grace!' }] });
    expect(fixture.events.events.filter((e) => e.kind === 'input' && e.era === 'modern').map((e) => (e.kind === 'input' ? e.method : ''))).toEqual([
      'elicitation/create',
    ]);
  });

  it('2026 era: closing the response stream cancels the call', async () => {
    const abort = new AbortController();
    const body = {
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: {
        name: 'test_cancellable',
        arguments: { ms: 20_000 },
        _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': {} },
      },
    };
    const headers = {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2026-07-28',
      'mcp-method': 'tools/call',
      'mcp-name': 'test_cancellable',
    };
    const pending = fetch(fixture.url, { method: 'POST', headers, body: JSON.stringify(body), signal: abort.signal });
    await waitFor(() => fixture.events.events.some((e) => e.kind === 'http' && e.era === 'modern' && e.rpcName === 'test_cancellable'));
    abort.abort();
    await expect(pending).rejects.toThrow();
    await waitFor(() => fixture.events.events.some((e) => e.kind === 'cancelled' && e.era === 'modern'));
  });

  it('refuses a foreign Host or Origin (DNS rebinding) in both eras', async () => {
    const legacy = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } } };
    const modernMeta = { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': {} };
    const modern = { jsonrpc: '2.0', id: 1, method: 'server/discover', params: { _meta: modernMeta } };
    const base = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
    const modernHeaders = { ...base, 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'server/discover' };
    const post = (body: unknown, headers: Record<string, string>): Promise<Response> =>
      fetch(fixture.url, { method: 'POST', headers, body: JSON.stringify(body) });
    expect((await post(legacy, { ...base, origin: 'http://evil.example.com' })).status).toBe(403);
    expect((await post(modern, { ...modernHeaders, origin: 'http://evil.example.com' })).status).toBe(403);
    // The same requests from a loopback origin are served (so the 403s above are about the origin).
    expect((await post(modern, { ...modernHeaders, origin: `http://127.0.0.1:${fixture.port}` })).status).toBe(200);
    expect((await post(legacy, { ...base, origin: `http://localhost:${fixture.port}` })).status).toBe(200);
  });
});
