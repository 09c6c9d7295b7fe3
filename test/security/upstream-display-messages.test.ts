/**
 * What an upstream sends the client besides its answers, on every route that relays it: an elicitation's
 * message and form (titles, descriptions, enum names, option titles), a progress notification's message, a
 * log notification's data and logger. A client shows each to a person (a terminal client prints them), and
 * they reached it as the upstream wrote them, ANSI escapes (`\u001b[2J`: clear the screen), bidi overrides
 * (U+202E) and zero-width characters included, while the same text in a tool's description was sanitised
 * (upstream-listed-text.test.ts). Now (snapshot/tool-names.ts `servableServerMessage`) they pass the same
 * rule: such characters as U+FFFD, tab and newline kept in prose (a message, log data), not in one line (a
 * title, a progress message). On `/mcp/{server}` from an HTTP upstream (the POST answer's SSE stream and the
 * standalone GET stream), answered over the pool (stdio: progress), and on `/mcp` during a tools/call.
 * The same rule holds for what an answer shows: an error's message, a -32042 error's URL elicitations, a
 * 2026-07-28 result's input requests (as `/mcp/{server}` relays them and as `/mcp` answers a call), and the
 * reason a gateway's own tool error gives for an upstream that failed (the upstream's text, one line).
 * In-process node, the SDK's own server as the hostile upstream (HTTP and stdio) and its client, which
 * declares elicitation.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ElicitRequestSchema, LoggingMessageNotificationSchema, type ElicitRequest, type LoggingMessageNotification } from '@modelcontextprotocol/sdk/types.js';
import { createServer, type Server } from 'node:http';
import { PassThrough } from 'node:stream';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import type { ResolvedServer } from '../../data-plane/config/runtime.js';
import { displayRewrittenJson, responseRewriter } from '../../data-plane/proxy/tools-list-filter.js';
import { describeError, scrubReason } from '../../data-plane/upstream/failures.js';
import { servableServerMessage } from '../../data-plane/snapshot/tool-names.js';
import { buildSnapshot, resultText, startTestNode, type BuiltSnapshot, type TestNode } from '../data-plane/helpers.js';
import { closeServer, listen } from '../support/upstreams.js';
import { hostileDisplayStdioCommand, startHostileDisplayUpstream, HOSTILE_FORM, LOG_DATA, LOG_LOGGER, type HostileDisplayUpstream } from './hostile-display-upstream.js';
import { ANSI, offending } from './hostile-upstream.js';

/** What no shown string may hold: control and format characters but tab and newline (prose keeps those). */
const UNSHOWABLE_IN_PROSE = /[^\P{Cc}\t\n]|[\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u;
/** `ANSI` as shown. */
const R = '\uFFFD[2J\uFFFD[31m';

/** A -32042 error asking for a URL to be opened, its message, URL and elicitation message hostile. */
const URL_ELICITATION_ERROR = { code: -32042, message: `connect${ANSI}`, data: { elicitations: [{ mode: 'url', elicitationId: 'e1', url: `https://a.example/\u202Egnp`, message: `Go${ANSI}` }] } };
/** `URL_ELICITATION_ERROR` as shown. */
const SHOWN_URL_ELICITATION_ERROR = { code: -32042, message: `connect${R}`, data: { elicitations: [{ elicitationId: 'e1', url: 'https://a.example/\uFFFDgnp', message: `Go${R}` }] } };

let upstream: HostileDisplayUpstream;
/** A bare HTTP upstream answering every POST with a JSON body that holds a log notification and a -32042 error. */
let jsonUpstream: Server;
let jsonUrl = '';
let node: TestNode;
let snapshot: BuiltSnapshot;
const clients: Client[] = [];

beforeAll(async () => {
  upstream = await startHostileDisplayUpstream();
  jsonUpstream = createServer((req, res) => {
    void (async () => {
      // Only POSTs carry JSON-RPC: the node's client also opens a GET for a server stream, which gets a 405 (no
      // stream here) rather than an empty body to parse, an unhandled rejection that failed the run.
      if (req.method !== 'POST') return void res.writeHead(405).end();
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      const request = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { id?: number; method?: string; params?: { name?: string } };
      let body = JSON.stringify([
        { jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', logger: LOG_LOGGER, data: LOG_DATA } },
        { jsonrpc: '2.0', id: request.id, error: URL_ELICITATION_ERROR },
      ]);
      // `?modern`: a 2026-07-28 answer asking for input; `?bidi`: an error whose message holds a raw U+202E
      // (JSON writes it as is: no escape in the body), for every other method a plain answer.
      if (req.url?.includes('modern') && request.method === 'tools/call') {
        body = JSON.stringify({ jsonrpc: '2.0', id: request.id, result: { resultType: 'input_required', inputRequests: { ask: { method: 'elicitation/create', params: HOSTILE_FORM } } } });
      } else if (req.url?.includes('bidi') && request.method === 'tools/call') {
        const error = request.params?.name === 'elicit' ? URL_ELICITATION_ERROR : { code: -32000, message: 'failed: \u202Eexe.txt' };
        body = JSON.stringify({ jsonrpc: '2.0', id: request.id, error });
      } else if (req.url?.includes('modern') || req.url?.includes('bidi')) {
        if (request.id === undefined) return void res.writeHead(202).end();
        const results: Record<string, unknown> = {
          initialize: { protocolVersion: '2025-06-18', capabilities: { tools: {} }, serverInfo: { name: 'json', version: '1.0.0' } },
          'tools/list': { tools: [{ name: 'any', inputSchema: { type: 'object' } }] },
        };
        body = JSON.stringify({ jsonrpc: '2.0', id: request.id, result: results[request.method ?? ''] ?? {} });
      }
      // `?chunked`: no Content-Length, the body in two writes (the route's streamed JSON path).
      if (req.url?.includes('chunked')) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write(body.slice(0, 40));
        res.end(body.slice(40));
      } else res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
    })();
  });
  jsonUrl = `http://127.0.0.1:${await listen(jsonUpstream, 0)}/mcp`;
  const stdio = hostileDisplayStdioCommand();
  snapshot = await buildSnapshot({
    servers: [
      { name: 'docs', url: upstream.url },
      { name: 'jsonlen', url: jsonUrl },
      { name: 'jsonchunked', url: `${jsonUrl}?chunked` },
      { name: 'jsonmodern', url: `${jsonUrl}?modern` },
      { name: 'jsonbidi', url: `${jsonUrl}?bidi` },
      { name: 'local', connectionType: 'STDIO', stdio: { command: stdio.command, args: stdio.args, env: {} } },
    ],
    keys: [{ name: 'all', servers: ['docs', 'local', 'jsonlen', 'jsonchunked', 'jsonmodern', 'jsonbidi'].map((server) => ({ server, tools: ['*'] })) }],
    sessionSecrets: { current: { id: 's1', secret: randomBytes(32).toString('base64url') } },
  });
  node = await startTestNode();
  node.apply(snapshot);
}, 60_000);

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
  await node?.close();
  await upstream?.close();
  if (jsonUpstream) await closeServer(jsonUpstream);
});

/** What a client was sent: elicitations (each declined), log and progress notifications. */
interface Heard {
  client: Client;
  elicitations: ElicitRequest['params'][];
  logs: LoggingMessageNotification['params'][];
  /**
   * Progress messages as they arrived. Read off the transport, not `onprogress`: the SDK client hands a
   * notification to its handler a tick later, and a response in the same chunk ends the request first.
   */
  progress: unknown[];
}

/** An SDK client that declares elicitation (form mode) and records what it is asked and told. */
async function connect(path: string): Promise<Heard> {
  const client = new Client({ name: `test-${randomUUID().slice(0, 8)}`, version: '1.0.0' }, { capabilities: { elicitation: { form: {} } } });
  const heard: Heard = { client, elicitations: [], logs: [], progress: [] };
  client.setRequestHandler(ElicitRequestSchema, (request) => {
    heard.elicitations.push(request.params);
    return { action: 'decline' };
  });
  client.setNotificationHandler(LoggingMessageNotificationSchema, (notification) => {
    heard.logs.push(notification.params);
  });
  const key = snapshot.keyValues.all ?? '';
  const transport = new StreamableHTTPClientTransport(new URL(`${node.url}${path}`), { requestInit: { headers: { authorization: `Bearer ${key}` } } });
  await client.connect(transport);
  const deliver = transport.onmessage;
  transport.onmessage = (message) => {
    if ('method' in message && message.method === 'notifications/progress') heard.progress.push(message.params?.message);
    deliver?.(message);
  };
  clients.push(client);
  return heard;
}

/** The hostile form as a client must be shown it. */
function expectShownForm(params: ElicitRequest['params'] | undefined): void {
  expect(params, 'the elicitation reached the client').toBeDefined();
  expect(offending(params, UNSHOWABLE_IN_PROSE)).toEqual([]);
  expect(params?.message).toBe(`Approve${R}\nthe \uFFFDgnp.exe\uFFFD`);
  const properties = (params as { requestedSchema: { properties: Record<string, Record<string, unknown>> } }).requestedSchema.properties;
  expect(properties.choice).toEqual({ type: 'string', title: `Choice${R}`, description: 'Pick\uFFFD\none', enum: ['a', 'b'], enumNames: [`A${R}`, 'B\uFFFD'] });
  expect(properties.color).toEqual({ type: 'string', title: 'Color', oneOf: [{ const: 'red', title: `Red${R}` }, { const: 'blue', title: 'Blue' }] });
  expect(properties.tags).toEqual({ type: 'array', title: 'Tags\uFFFD', items: { anyOf: [{ const: 'x', title: 'X\uFFFD' }] } });
  expect(properties.note).toEqual({ type: 'string', description: `Note${R}`, default: `n${R}` });
}

const SHOWN_LOG = { level: 'info', logger: 'lg\uFFFD', data: `Log${R}\nline two\uFFFD` };
const SHOWN_PROGRESS = `Step 1${R}\uFFFD\uFFFDdone`;

describe('what an upstream sends the client, on every route', () => {
  it('/mcp/{server} from an HTTP upstream: an elicitation on the call’s stream', async () => {
    const { client, elicitations } = await connect('/mcp/docs');
    const result = await client.callTool({ name: 'ask', arguments: {} });
    expect(resultText(result)).toBe('answer:decline');
    expect(elicitations).toHaveLength(1);
    expectShownForm(elicitations[0]);
  });

  it('/mcp/{server} from an HTTP upstream: progress and log notifications on the call’s stream', async () => {
    const { client, logs, progress } = await connect('/mcp/docs');
    const result = await client.callTool({ name: 'progress', arguments: {} }, undefined, { onprogress: () => undefined });
    expect(resultText(result)).toBe('done');
    expect(progress).toEqual([SHOWN_PROGRESS]);
    expect(logs).toEqual([SHOWN_LOG]);
  });

  it('/mcp/{server} from an HTTP upstream: a log notification and an elicitation on the GET stream', async () => {
    const { client, logs, elicitations } = await connect('/mcp/docs');
    // The client opens the standalone stream after initializing; the upstream sends there only once it is open.
    await vi.waitFor(() => expect(upstream.openStreams()).toBeGreaterThan(0), { timeout: 10_000 });
    expect(resultText(await client.callTool({ name: 'broadcast', arguments: {} }))).toBe('sent');
    await vi.waitFor(() => expect(elicitations.length + logs.length).toBe(2), { timeout: 10_000 });
    expect(logs).toEqual([{ ...SHOWN_LOG, level: 'warning' }]);
    expectShownForm(elicitations[0]);
  });

  it('/mcp/{server} answered over the pool (stdio): progress', async () => {
    const { client, progress } = await connect('/mcp/local');
    const result = await client.callTool({ name: 'progress', arguments: {} }, undefined, { onprogress: () => undefined });
    expect(resultText(result)).toBe('done');
    expect(progress).toEqual([SHOWN_PROGRESS]);
  });

  it('/mcp/{server} from an HTTP upstream: a JSON body holding a notification and a URL elicitation error, of declared length or streamed', async () => {
    const key = snapshot.keyValues.all ?? '';
    for (const server of ['jsonlen', 'jsonchunked']) {
      const res = await fetch(`${node.url}/mcp/${server}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name: 'any', arguments: {} } }),
      });
      expect(res.status, server).toBe(200);
      const body = (await res.json()) as unknown;
      expect(offending(body, UNSHOWABLE_IN_PROSE), server).toEqual([]);
      expect(body, server).toMatchObject([
        { method: 'notifications/message', params: SHOWN_LOG },
        { id: 9, error: SHOWN_URL_ELICITATION_ERROR },
      ]);
    }
  });

  /** POSTs one tools/call to `path` with the test key, answered as JSON; the parsed body. */
  async function postCall(path: string, name: string): Promise<unknown> {
    const res = await fetch(`${node.url}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${snapshot.keyValues.all ?? ''}`, 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name, arguments: {} } }),
    });
    expect(res.status, `${path} ${name}`).toBe(200);
    return res.json();
  }

  it('an upstream error’s message, raw or escaped, and a URL elicitation error, on /mcp/{server} and as /mcp’s answer to the call', async () => {
    expect(await postCall('/mcp/jsonbidi', 'any')).toMatchObject({ id: 9, error: { code: -32000, message: 'failed: \uFFFDexe.txt' } });
    expect(await postCall('/mcp', 'jsonbidi-any')).toMatchObject({ id: 9, error: { code: -32000, message: 'failed: \uFFFDexe.txt' } });
    for (const [path, name] of [['/mcp', 'jsonbidi-elicit'], ['/mcp/jsonbidi', 'elicit']] as const) {
      const body = await postCall(path, name);
      expect(offending(body, UNSHOWABLE_IN_PROSE), path).toEqual([]);
      expect(body, path).toMatchObject({ id: 9, error: SHOWN_URL_ELICITATION_ERROR });
    }
  });

  it('an upstream that fails its initialize with a hostile message: /mcp’s tool error names it as shown', async () => {
    // jsonlen answers initialize with the -32042 error too: /mcp cannot reach the tool, and says why.
    const body = await postCall('/mcp', 'jsonlen-any');
    expect(offending(body, UNSHOWABLE_IN_PROSE)).toEqual([]);
    expect(body).toMatchObject({ id: 9, result: { isError: true, content: [{ type: 'text', text: `upstream server 'jsonlen' is unreachable: connect${R}` }] } });
  });

  it('a 2026-07-28 upstream’s input requests, as the answer to a call on /mcp and on /mcp/{server}', async () => {
    for (const [path, name] of [['/mcp', 'jsonmodern-any'], ['/mcp/jsonmodern', 'any']] as const) {
      const body = (await postCall(path, name)) as { result?: { inputRequests?: { ask?: { params?: ElicitRequest['params'] } } } };
      expect(offending(body, UNSHOWABLE_IN_PROSE), path).toEqual([]);
      expectShownForm(body.result?.inputRequests?.ask?.params);
    }
  });

  it('/mcp, during a tools/call: progress and log notifications (HTTP), progress (stdio)', async () => {
    const { client, logs, progress } = await connect('/mcp');
    for (const server of ['docs', 'local']) {
      const result = await client.callTool({ name: `${server}-progress`, arguments: {} }, undefined, { onprogress: () => undefined });
      expect(resultText(result), server).toBe('done');
    }
    expect(progress).toEqual([SHOWN_PROGRESS, SHOWN_PROGRESS]);
    expect(logs).toEqual([SHOWN_LOG]);
  });
});

describe('servableServerMessage and the relays (pure)', () => {
  it('leaves what is not display text alone: results, sampling requests, _meta, messages with nothing to change', () => {
    const result = { jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text: `out${ANSI}` }], _meta: { note: `m${ANSI}` } } };
    expect(servableServerMessage(result)).toBe(result);
    const sampling = { jsonrpc: '2.0', id: 2, method: 'sampling/createMessage', params: { messages: [{ role: 'user', content: { type: 'text', text: `x${ANSI}` } }], maxTokens: 5 } };
    expect(servableServerMessage(sampling)).toBe(sampling);
    const log = { jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: { nested: `obj${ANSI}` }, _meta: { a: ANSI } } };
    expect(servableServerMessage(log)).toBe(log);
    const plain = { jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 1, progress: 1, message: 'fine text' } };
    expect(servableServerMessage(plain)).toBe(plain);
    const failed = { jsonrpc: '2.0', id: 5, error: { code: -32000, message: 'failed\nat line 2', data: { note: `d${ANSI}` } } };
    expect(servableServerMessage(failed)).toBe(failed);
  });

  it('an upstream failure’s reason, as a tool error and an operator see it', () => {
    const server = { secrets: [] } as unknown as ResolvedServer;
    expect(describeError(new Error(`boom${ANSI}\u202Edne`), server)).toBe(`boom${R}\uFFFDdne`);
    expect(describeError(new McpError(-32603, `no${ANSI}`), server)).toBe(`no${R}`);
    expect(scrubReason(`down\u202E${ANSI}`, server)).toBe('down\uFFFD [2J [31m');
  });

  it('a cancellation’s reason and an error’s message', () => {
    const cancelled = servableServerMessage({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 1, reason: `gave up${ANSI}\n` } });
    expect(cancelled.params).toEqual({ requestId: 1, reason: `gave up${R}\uFFFD` });
    const failed = servableServerMessage({ jsonrpc: '2.0', id: 6, error: { code: -32000, message: `bad${ANSI}\n\u202Etrace` } });
    expect(failed.error).toEqual({ code: -32000, message: `bad${R}\n\uFFFDtrace` });
  });

  it('a 2026-07-28 result’s input requests, a URL elicitation, and a form too deep to walk', () => {
    const modern = { jsonrpc: '2.0', id: 3, result: { resultType: 'input_required', inputRequests: { ask: { method: 'elicitation/create', params: HOSTILE_FORM }, url: { method: 'elicitation/create', params: { mode: 'url', message: 'm', url: `https://a.example/\u202Egnp`, elicitationId: 'e1' } } } } };
    const shown = servableServerMessage(modern);
    expect(offending(shown, UNSHOWABLE_IN_PROSE)).toEqual([]);
    expect(shown.result.inputRequests.url.params).toEqual({ mode: 'url', message: 'm', url: 'https://a.example/\uFFFDgnp', elicitationId: 'e1' });
    let deep: Record<string, unknown> = { type: 'string', title: `t${ANSI}` };
    for (let i = 0; i < 10_000; i++) deep = { type: 'object', properties: { x: deep } };
    const asked = servableServerMessage({ jsonrpc: '2.0', id: 4, method: 'elicitation/create', params: { message: 'deep', requestedSchema: deep } });
    expect(asked.params.requestedSchema).toEqual({ type: 'object', properties: {} });
  });

  it('a JSON body holding a notification beside the response, and an SSE event spelt with escapes', async () => {
    const body = Buffer.from(JSON.stringify([{ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: LOG_DATA } }, { jsonrpc: '2.0', id: 1, result: {} }]));
    expect(offending(JSON.parse(displayRewrittenJson(body).toString('utf8')), UNSHOWABLE_IN_PROSE)).toEqual([]);
    const plain = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text: 'a "method"\nb' }] } }));
    expect(displayRewrittenJson(plain)).toBe(plain);

    // `"method"` spelt with \u escapes still names a method to the client's parser.
    const data = '{"jsonrpc":"2.0","\\u006dethod":"notifications/progress","params":{"progressToken":1,"progress":1,"message":"a\\u001b[2J"}}';
    const rewriter = responseRewriter(null);
    const source = new PassThrough();
    source.pipe(rewriter);
    let out = '';
    rewriter.on('data', (chunk: Buffer | string) => (out += chunk.toString()));
    const ended = new Promise((resolve) => rewriter.on('end', resolve));
    source.end(`event: message\ndata: ${data}\n\nevent: message\ndata: {"jsonrpc":"2.0","id":1,"result":{}}\n\n`);
    await ended;
    const events = out.split('\n\n').filter((e) => e !== '');
    expect(JSON.parse(events[0]?.split('data: ')[1] ?? '')).toMatchObject({ params: { message: 'a\uFFFD[2J' } });
    expect(events[1]).toBe('event: message\ndata: {"jsonrpc":"2.0","id":1,"result":{}}');
  });

  it('an SSE stream with no rewrite of its own: split anywhere, whole events pass as they came, hostile ones sanitised', async () => {
    const plain = 'event: message\ndata: {"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"caf\u00e9 \u2014 \\"ok\\"\\n"}]}}\n\n';
    const hostile = `data: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: `x${ANSI}\u202E` } })}\r\n\r\n`;
    const bytes = Buffer.from(plain + hostile + plain, 'utf8');
    for (let cut = 0; cut <= bytes.length; cut++) {
      const rewriter = responseRewriter(null);
      const chunks: Buffer[] = [];
      rewriter.on('data', (chunk: Buffer | string) => chunks.push(Buffer.from(chunk)));
      const ended = new Promise((resolve) => rewriter.on('end', resolve));
      rewriter.write(bytes.subarray(0, cut));
      rewriter.end(bytes.subarray(cut));
      await ended;
      const out = Buffer.concat(chunks).toString('utf8');
      expect(out.startsWith(plain) && out.endsWith(plain), `cut at ${cut}`).toBe(true);
      expect(JSON.parse(out.slice(plain.length, -plain.length).replace(/^data: /, ''))).toMatchObject({ params: { data: `x${R}\uFFFD` } });
    }
  });

  it('an SSE stream with no rewrite of its own passes a keep-alive comment at once, without waiting for a blank line', async () => {
    const rewriter = responseRewriter(null);
    const first = new Promise<string>((resolve) => rewriter.once('data', (chunk: Buffer | string) => resolve(chunk.toString())));
    rewriter.write(': keep-alive\n');
    expect(await first).toBe(': keep-alive\n');
    rewriter.end();
  });
});
