/**
 * Proves the Claude Code harness works WITHOUT the gateway: the real CLI, a plain MCP SDK server
 * (McpServer + stateless StreamableHTTPServerTransport) behind a bearer check, and the Messages API stand-in.
 * The lead's end-to-end test swaps the plain server for a data-plane node (`/mcp`, `/anthropic`).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { z } from 'zod';
import { startAnthropicStandIn, type AnthropicStandIn } from '../support/anthropic-stand-in.js';
import {
  claudeMcpAdd,
  claudeMcpList,
  claudePrint,
  createClaudeHome,
  describeRun,
  parseMcpList,
  runClaude,
  type ClaudeHome,
} from '../support/claude-code.js';

const KEY = 'test-key-123';
const SERVER_NAME = 'echosrv';
const TOOL = `mcp__${SERVER_NAME}__echo`;

interface EchoServer {
  url: string;
  calls: { text: string; authorization: string | undefined }[];
  unauthorized: number;
  close(): Promise<void>;
}

/** A plain MCP SDK server with one tool `echo`, requiring `Authorization: Bearer test-key-123`. */
async function startEchoServer(): Promise<EchoServer> {
  const calls: EchoServer['calls'] = [];
  let unauthorized = 0;
  const http: Server = createServer((req, res) => {
    if (req.headers.authorization !== `Bearer ${KEY}`) {
      unauthorized++;
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'unauthorized' }));
      return;
    }
    if (req.method !== 'POST') {
      // Stateless server: no standalone SSE stream (Claude Code tries GET and copes with 405).
      res.writeHead(405, { allow: 'POST' });
      res.end();
      return;
    }
    const authorization = req.headers.authorization;
    const mcp = new McpServer({ name: 'echo', version: '1.0.0' });
    mcp.registerTool(
      'echo',
      { description: 'Echo the text back', inputSchema: { text: z.string() } },
      ({ text }) => {
        calls.push({ text, authorization });
        return { content: [{ type: 'text', text: `echo: ${text}` }] };
      },
    );
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on('close', () => {
      void transport.close();
      void mcp.close();
    });
    mcp
      .connect(transport)
      .then(() => transport.handleRequest(req, res))
      .catch((err: unknown) => {
        if (!res.headersSent) res.writeHead(500);
        res.end(String(err));
      });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const { port } = http.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    calls,
    get unauthorized() {
      return unauthorized;
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        http.closeAllConnections();
        http.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}

async function readSse(res: Response): Promise<EventSourceMessage[]> {
  const events: EventSourceMessage[] = [];
  const parser = createParser({ onEvent: (e) => events.push(e) });
  parser.feed(await res.text());
  return events;
}

describe('Claude Code harness (no gateway)', () => {
  let echo: EchoServer;
  let standIn: AnthropicStandIn;
  let home: ClaudeHome;

  beforeAll(async () => {
    echo = await startEchoServer();
    standIn = await startAnthropicStandIn({ toolName: TOOL, toolInput: { text: 'hello' } });
    home = await createClaudeHome({ anthropicBaseUrl: standIn.url });
  });

  afterAll(async () => {
    await home?.cleanup();
    await standIn?.close();
    await echo?.close();
  });

  it('the stand-in speaks the Messages API wire format', async () => {
    const local = await startAnthropicStandIn({ toolName: 'mcp__s__t', toolInput: { a: 1 } });
    try {
      const tools = [{ name: 'mcp__s__t', description: 't', input_schema: { type: 'object' } }];
      const post = (path: string, body: object) =>
        fetch(`${local.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

      // Non-streaming, prefixed path + ?beta=true: tool_use.
      const r1 = await post('/anthropic/v1/messages?beta=true', {
        model: 'claude-x',
        max_tokens: 100,
        tools,
        messages: [{ role: 'user', content: 'go' }],
      });
      expect(r1.status).toBe(200);
      const m1 = (await r1.json()) as Record<string, unknown>;
      expect(m1).toMatchObject({ type: 'message', role: 'assistant', model: 'claude-x', stop_reason: 'tool_use', stop_sequence: null });
      expect(m1.content).toEqual([
        { type: 'text', text: expect.any(String) },
        { type: 'tool_use', id: expect.stringMatching(/^toolu_/), name: 'mcp__s__t', input: { a: 1 } },
      ]);
      expect(m1.usage).toEqual({
        input_tokens: expect.any(Number),
        output_tokens: expect.any(Number),
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: 0,
      });

      // Streaming: tool_result in the last user turn → final text containing it.
      const r2 = await post('/v1/messages', {
        model: 'claude-x',
        max_tokens: 100,
        stream: true,
        tools,
        messages: [
          { role: 'user', content: 'go' },
          { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_1', name: 'mcp__s__t', input: { a: 1 } }] },
          { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: [{ type: 'text', text: 'RESULT-42' }] }] },
        ],
      });
      expect(r2.headers.get('content-type')).toBe('text/event-stream');
      const events = await readSse(r2);
      const names = events.map((e) => e.event);
      expect(names[0]).toBe('message_start');
      expect(names).toContain('ping');
      expect(names.slice(-2)).toEqual(['message_delta', 'message_stop']);
      for (const e of events) expect((JSON.parse(e.data) as { type: string }).type).toBe(e.event);
      const text = events
        .filter((e) => e.event === 'content_block_delta')
        .map((e) => (JSON.parse(e.data) as { delta: { type: string; text: string } }).delta)
        .map((d) => (d.type === 'text_delta' ? d.text : ''))
        .join('');
      expect(text).toContain('RESULT-42');
      const delta = JSON.parse(events.at(-2)?.data ?? '{}') as { delta: { stop_reason: string }; usage: { output_tokens: number } };
      expect(delta.delta.stop_reason).toBe('end_turn');
      expect(delta.usage.output_tokens).toBeGreaterThan(0);

      // Streaming tool_use: input_json_delta pieces reassemble to the input.
      const r3 = await post('/v1/messages', { model: 'claude-x', max_tokens: 100, stream: true, tools, messages: [{ role: 'user', content: 'go' }] });
      const json = (await readSse(r3))
        .filter((e) => e.event === 'content_block_delta')
        .map((e) => (JSON.parse(e.data) as { delta: { type: string; partial_json?: string } }).delta)
        .filter((d) => d.type === 'input_json_delta')
        .map((d) => d.partial_json ?? '')
        .join('');
      expect(JSON.parse(json)).toEqual({ a: 1 });

      // Side request (no tools), count_tokens, unknown path.
      const side = (await (await post('/v1/messages', { model: 'claude-haiku', max_tokens: 1, messages: [{ role: 'user', content: 'quota' }] })).json()) as {
        stop_reason: string;
      };
      expect(side.stop_reason).toBe('end_turn');
      const count = (await (await post('/v1/messages/count_tokens', { model: 'x', messages: [{ role: 'user', content: 'hi' }] })).json()) as {
        input_tokens: number;
      };
      expect(count.input_tokens).toBeGreaterThan(0);
      const nf = await fetch(`${local.url}/v1/nope`);
      expect(nf.status).toBe(404);
      expect(await nf.json()).toEqual({ type: 'error', error: { type: 'not_found_error', message: expect.any(String) } });

      expect(local.requests.map((r) => r.kind)).toEqual(['main', 'main', 'main', 'side', 'count_tokens', 'unknown']);
      expect(local.unknown).toHaveLength(1);
      expect(local.toolResultsSeen()).toEqual([{ toolUseId: 'toolu_1', isError: false, text: 'RESULT-42', content: [{ type: 'text', text: 'RESULT-42' }] }]);
    } finally {
      await local.close();
    }
  });

  it('claude mcp add + claude mcp list shows the HTTP server as connected', async () => {
    const added = await claudeMcpAdd(home, SERVER_NAME, echo.url, { Authorization: `Bearer ${KEY}` });
    expect(added.stdout).toContain(`Added HTTP MCP server ${SERVER_NAME}`);

    const before = echo.unauthorized;
    const out = await claudeMcpList(home);
    expect(out).toContain(`${SERVER_NAME}: ${echo.url} (HTTP) - ✔ Connected`);
    expect(parseMcpList(out)).toEqual([{ name: SERVER_NAME, target: echo.url, transport: 'HTTP', status: 'Connected', connected: true }]);
    expect(echo.unauthorized).toBe(before); // the configured header was sent
  }, 60_000);

  it('a wrong bearer key is listed as failed', async () => {
    const other = await createClaudeHome({ anthropicBaseUrl: standIn.url });
    try {
      await claudeMcpAdd(other, 'badkey', echo.url, { Authorization: 'Bearer wrong' });
      const before = echo.unauthorized;
      const out = await claudeMcpList(other);
      expect(parseMcpList(out)).toEqual([{ name: 'badkey', target: echo.url, transport: 'HTTP', status: 'Failed to connect', connected: false }]);
      expect(echo.unauthorized).toBeGreaterThan(before);
    } finally {
      await other.cleanup();
    }
  }, 60_000);

  it('claude -p calls the MCP tool through the stand-in and gets the result back', async () => {
    const callsBefore = echo.calls.length;
    const run = await claudePrint(home, 'Echo hello using the echo tool.', [TOOL]);
    const dump = `${describeRun(run)}\nstand-in requests: ${JSON.stringify(standIn.requests.map((r) => [r.method, r.url, r.kind, r.answered]))}`;
    expect(run.exitCode, dump).toBe(0);
    expect(run.timedOut).toBe(false);

    // Claude Code connected to the server and offered its tool.
    expect(run.init?.mcp_servers, dump).toContainEqual(expect.objectContaining({ name: SERVER_NAME, status: 'connected' }));
    expect(run.init?.tools).toContain(TOOL);

    // The MCP server received the call with the configured header.
    expect(echo.calls.slice(callsBefore)).toEqual([{ text: 'hello', authorization: `Bearer ${KEY}` }]);

    // The stand-in saw the tool in `tools` and received the tool_result.
    expect(standIn.toolNamesSeen()).toContain(TOOL);
    const toolEntry = standIn.mainRequests()[0]?.body?.tools;
    expect(Array.isArray(toolEntry) && toolEntry.some((t) => typeof t === 'object' && t !== null && !Array.isArray(t) && t.name === TOOL && 'input_schema' in t)).toBe(true);
    expect(standIn.toolResultsSeen()).toContainEqual(expect.objectContaining({ isError: false, text: 'echo: hello' }));
    expect(standIn.mainRequests().map((r) => r.answered)).toEqual(['tool_use', 'final_text']);
    expect(standIn.mainRequests().every((r) => r.stream === true && r.url.endsWith('/v1/messages?beta=true'))).toBe(true);
    expect(standIn.mainRequests()[0]?.headers['x-api-key']).toBe(home.env.ANTHROPIC_API_KEY);

    // Claude Code's own view: the tool result and the final answer.
    expect(run.toolResults).toContainEqual(expect.objectContaining({ content: [{ type: 'text', text: 'echo: hello' }] }));
    expect(run.result).toMatchObject({ subtype: 'success', is_error: false, num_turns: 2 });
    expect(run.result?.result).toContain('echo: hello');
    expect(run.result?.permission_denials).toEqual([]);
  }, 60_000);

  it('claude --version runs offline', async () => {
    const run = await runClaude(home, ['--version']);
    expect(run.exitCode, describeRun(run)).toBe(0);
    expect(run.stdout).toMatch(/^2\.1\.\d+ \(Claude Code\)/);
  });
});
