/**
 * A stand-in for Anthropic's Messages API — the one stand-in the spec allows (§7), because the real API
 * cannot be reached from here. It speaks the real wire format so that the real Claude Code CLI (and the
 * gateway's `/anthropic` pass-through) can be driven against it:
 *
 * - `POST …/v1/messages` (any path prefix, any query such as `?beta=true`): a JSON `message` object, or with
 *   `"stream": true` a `text/event-stream` of `message_start`, `content_block_start`, `ping`,
 *   `content_block_delta` (`text_delta` / `input_json_delta`), `content_block_stop`, `message_delta`
 *   (stop_reason + usage), `message_stop`.
 * - `POST …/v1/messages/count_tokens`: `{input_tokens}`.
 * - anything else: 404 `{type:'error', error:{type:'not_found_error', message}}`, recorded in `unknown`.
 *
 * Scripted behaviour for the *main* conversation (a request that offers `tools`):
 * - last user turn without a `tool_result` → one `tool_use` block calling `script.toolName` with
 *   `script.toolInput` (stop_reason `tool_use`);
 * - last user turn with `tool_result`(s) → a final text containing every tool result's text
 *   (stop_reason `end_turn`), by default `"Tool result: <text>"`.
 * If the scripted tool is not among the offered tools, the answer is a text saying so (end_turn), so a
 * test fails on a readable assertion instead of a hang.
 *
 * Everything else Claude Code sends (title generation, the haiku quota probe with `max_tokens: 1`,
 * summaries, …: requests without `tools`) gets a short text answer.
 *
 * Every request is recorded (method, url, headers, parsed body) for assertions.
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

export interface StandInScript {
  /** Tool the model "decides" to call, e.g. `mcp__gatehouse__echo_http-echo`. */
  toolName: string;
  /** Input of that call. */
  toolInput: JsonObject;
  /** Final answer once tool results are back. Default: `Tool result: <texts joined by newline>`. */
  finalText?: (results: ToolResultSeen[]) => string;
  /** Text for requests that are not the main conversation. Default: `OK`. */
  sideText?: string;
  /** Prompt-cache token counts every answer reports (as the real API does with caching on). Default 0. */
  cacheTokens?: { creation: number; read: number };
  /** Awaited before each `/v1/messages` answer: a test holds calls in flight until it lets them go. */
  hold?: () => Promise<void>;
}

export type RequestKind = 'main' | 'side' | 'count_tokens' | 'unknown';

/** The usage a Messages API answer reports. */
export interface WireUsage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
}

/** USD per million tokens, as a provider's price table gives them. */
export interface TestPrice {
  inputPerMTok: number;
  outputPerMTok: number;
  cacheWritePerMTok: number;
  cacheReadPerMTok: number;
}

/**
 * What a gateway should charge for `usage` at `price`, in nano-USD, computed here independently of the
 * gateway's own pricing code (each kind rounded once, as the gateway documents).
 */
export function expectedNanos(price: TestPrice, usage: WireUsage): number {
  return (
    Math.round(usage.input_tokens * price.inputPerMTok * 1000) +
    Math.round(usage.output_tokens * price.outputPerMTok * 1000) +
    Math.round(usage.cache_creation_input_tokens * price.cacheWritePerMTok * 1000) +
    Math.round(usage.cache_read_input_tokens * price.cacheReadPerMTok * 1000)
  );
}

export interface RecordedRequest {
  kind: RequestKind;
  method: string;
  /** Path + query as received, e.g. `/v1/messages?beta=true`. */
  url: string;
  headers: IncomingHttpHeaders;
  /** Parsed JSON body (undefined if the body was empty or not JSON). */
  body: JsonObject | undefined;
  rawBody: string;
  /** For `/v1/messages`: whether the answer was streamed. */
  stream?: boolean;
  /** For `/v1/messages`: what was answered. */
  answered?: 'tool_use' | 'final_text' | 'side_text' | 'tool_not_offered';
  /** For `/v1/messages`: the usage the answer reported (what a gateway should charge). */
  usage?: WireUsage;
}

export interface ToolResultSeen {
  toolUseId: string;
  isError: boolean;
  /** Concatenated text of the tool_result content (string content or its text blocks). */
  text: string;
  /** The raw `content` of the tool_result block. */
  content: JsonValue | undefined;
}

export interface AnthropicStandIn {
  /** `http://127.0.0.1:PORT` — use as ANTHROPIC_BASE_URL (Claude Code appends `/v1/messages`). */
  url: string;
  port: number;
  /** Every request, in arrival order. */
  requests: RecordedRequest[];
  /** Requests to paths the stand-in does not implement. */
  unknown: RecordedRequest[];
  /** Main-conversation `/v1/messages` requests (those that offered tools). */
  mainRequests(): RecordedRequest[];
  /** Names in the `tools` array of every main request (union, in first-seen order). */
  toolNamesSeen(): string[];
  /** Every tool_result block seen in the last user turn of main requests. */
  toolResultsSeen(): ToolResultSeen[];
  /** Replace the script (e.g. between tests sharing one stand-in). */
  setScript(script: StandInScript): void;
  close(): Promise<void>;
}

function isObject(v: JsonValue | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function newId(prefix: string): string {
  return `${prefix}_01${randomBytes(12).toString('base64url')}`;
}

/** Rough token estimate (≈ 4 characters per token), never 0. */
function estimateTokens(value: JsonValue | undefined): number {
  if (value === undefined) return 1;
  return Math.max(1, Math.ceil(JSON.stringify(value).length / 4));
}

function textOf(content: JsonValue | undefined): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content
      .map((b) => (isObject(b) && b.type === 'text' && typeof b.text === 'string' ? b.text : ''))
      .filter((t) => t.length > 0)
      .join('\n');
  }
  return '';
}

/** tool_result blocks of the conversation's last user turn (empty if none). */
export function lastUserToolResults(body: JsonObject | undefined): ToolResultSeen[] {
  const messages = body?.messages;
  if (!Array.isArray(messages)) return [];
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i];
    if (!isObject(m) || m.role !== 'user') continue;
    const content = m.content;
    if (!Array.isArray(content)) return [];
    const out: ToolResultSeen[] = [];
    for (const block of content) {
      if (isObject(block) && block.type === 'tool_result') {
        out.push({
          toolUseId: typeof block.tool_use_id === 'string' ? block.tool_use_id : '',
          isError: block.is_error === true,
          text: textOf(block.content),
          content: block.content,
        });
      }
    }
    return out;
  }
  return [];
}

function toolNames(body: JsonObject | undefined): string[] {
  const tools = body?.tools;
  if (!Array.isArray(tools)) return [];
  return tools.flatMap((t) => (isObject(t) && typeof t.name === 'string' ? [t.name] : []));
}

type ContentBlock =
  | { type: 'text'; text: string }
  | { type: 'tool_use'; id: string; name: string; input: JsonObject };

interface Usage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function sendJson(res: ServerResponse, status: number, payload: JsonValue | object): void {
  const text = JSON.stringify(payload);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'request-id': newId('req'),
  });
  res.end(text);
}

function sendError(res: ServerResponse, status: number, type: string, message: string): void {
  sendJson(res, status, { type: 'error', error: { type, message } });
}

function sse(res: ServerResponse, event: string, data: object): void {
  res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
}

/** Split a string into a few pieces, as the real API streams deltas. */
function pieces(s: string, n = 3): string[] {
  if (s.length <= n) return [s];
  const size = Math.ceil(s.length / n);
  const out: string[] = [];
  for (let i = 0; i < s.length; i += size) out.push(s.slice(i, i + size));
  return out;
}

function streamMessage(res: ServerResponse, id: string, model: string, content: ContentBlock[], stopReason: string, usage: Usage): void {
  res.writeHead(200, {
    'content-type': 'text/event-stream',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    'request-id': newId('req'),
  });
  sse(res, 'message_start', {
    type: 'message_start',
    message: {
      id,
      type: 'message',
      role: 'assistant',
      model,
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage: { ...usage, output_tokens: 1 },
    },
  });
  content.forEach((block, index) => {
    if (block.type === 'text') {
      sse(res, 'content_block_start', { type: 'content_block_start', index, content_block: { type: 'text', text: '' } });
      if (index === 0) sse(res, 'ping', { type: 'ping' });
      for (const text of pieces(block.text)) {
        sse(res, 'content_block_delta', { type: 'content_block_delta', index, delta: { type: 'text_delta', text } });
      }
    } else {
      sse(res, 'content_block_start', {
        type: 'content_block_start',
        index,
        content_block: { type: 'tool_use', id: block.id, name: block.name, input: {} },
      });
      if (index === 0) sse(res, 'ping', { type: 'ping' });
      for (const partial_json of pieces(JSON.stringify(block.input))) {
        sse(res, 'content_block_delta', { type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json } });
      }
    }
    sse(res, 'content_block_stop', { type: 'content_block_stop', index });
  });
  sse(res, 'message_delta', {
    type: 'message_delta',
    delta: { stop_reason: stopReason, stop_sequence: null },
    usage: { output_tokens: usage.output_tokens },
  });
  sse(res, 'message_stop', { type: 'message_stop' });
  res.end();
}

const MESSAGES_RE = /\/v1\/messages$/;
const COUNT_TOKENS_RE = /\/v1\/messages\/count_tokens$/;

export async function startAnthropicStandIn(initialScript: StandInScript): Promise<AnthropicStandIn> {
  let script = initialScript;
  const requests: RecordedRequest[] = [];
  const unknown: RecordedRequest[] = [];

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? '/';
    const path = url.split('?')[0] ?? '/';
    const rawBody = await readBody(req);
    let body: JsonObject | undefined;
    if (rawBody.length > 0) {
      try {
        const parsed = JSON.parse(rawBody) as JsonValue;
        if (isObject(parsed)) body = parsed;
      } catch {
        body = undefined;
      }
    }
    const rec: RecordedRequest = { kind: 'unknown', method: req.method ?? 'GET', url, headers: req.headers, body, rawBody };
    requests.push(rec);

    if (req.method === 'POST' && COUNT_TOKENS_RE.test(path)) {
      rec.kind = 'count_tokens';
      sendJson(res, 200, { input_tokens: estimateTokens(body?.messages) + estimateTokens(body?.system) + estimateTokens(body?.tools) });
      return;
    }
    if (req.method !== 'POST' || !MESSAGES_RE.test(path)) {
      unknown.push(rec);
      sendError(res, 404, 'not_found_error', `stand-in: no route for ${req.method ?? '?'} ${path}`);
      return;
    }
    if (!body || !Array.isArray(body.messages) || typeof body.model !== 'string') {
      sendError(res, 400, 'invalid_request_error', 'stand-in: body must be JSON with model and messages');
      return;
    }

    if (script.hold) await script.hold();
    const model = body.model;
    const stream = body.stream === true;
    rec.stream = stream;
    const offered = toolNames(body);
    let content: ContentBlock[];
    let stopReason: string;
    if (offered.length === 0) {
      rec.kind = 'side';
      rec.answered = 'side_text';
      content = [{ type: 'text', text: script.sideText ?? 'OK' }];
      stopReason = 'end_turn';
    } else {
      rec.kind = 'main';
      const results = lastUserToolResults(body);
      if (results.length > 0) {
        rec.answered = 'final_text';
        const text = script.finalText
          ? script.finalText(results)
          : `Tool result: ${results.map((r) => (r.isError ? `[error] ${r.text}` : r.text)).join('\n')}`;
        content = [{ type: 'text', text }];
        stopReason = 'end_turn';
      } else if (!offered.includes(script.toolName)) {
        rec.answered = 'tool_not_offered';
        content = [{ type: 'text', text: `stand-in: tool ${script.toolName} was not offered; tools: ${offered.join(', ')}` }];
        stopReason = 'end_turn';
      } else {
        rec.answered = 'tool_use';
        content = [
          { type: 'text', text: `Calling ${script.toolName}.` },
          { type: 'tool_use', id: newId('toolu'), name: script.toolName, input: script.toolInput },
        ];
        stopReason = 'tool_use';
      }
    }

    const usage: Usage = {
      input_tokens: estimateTokens(body.messages) + estimateTokens(body.system),
      output_tokens: estimateTokens(content as unknown as JsonValue),
      cache_creation_input_tokens: script.cacheTokens?.creation ?? 0,
      cache_read_input_tokens: script.cacheTokens?.read ?? 0,
    };
    rec.usage = usage;
    const id = newId('msg');
    if (stream) {
      streamMessage(res, id, model, content, stopReason, usage);
    } else {
      sendJson(res, 200, {
        id,
        type: 'message',
        role: 'assistant',
        model,
        content,
        stop_reason: stopReason,
        stop_sequence: null,
        usage,
      });
    }
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) sendError(res, 500, 'api_error', `stand-in: ${String(err)}`);
      else res.end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    unknown,
    mainRequests: () => requests.filter((r) => r.kind === 'main'),
    toolNamesSeen: () => {
      const seen: string[] = [];
      for (const r of requests) if (r.kind === 'main') for (const n of toolNames(r.body)) if (!seen.includes(n)) seen.push(n);
      return seen;
    },
    toolResultsSeen: () => requests.filter((r) => r.kind === 'main').flatMap((r) => lastUserToolResults(r.body)),
    setScript: (s) => {
      script = s;
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}
