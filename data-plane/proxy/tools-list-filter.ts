/**
 * The answers `/mcp/{server}` rewrites: the upstream's `tools/list` result, cut down to the tools the
 * virtual key may call (SPEC §4, the same filter as `/mcp`, names unprefixed), and, where a guardrail
 * applies, a `tools/call` result (`responseRewriter` takes any rewrite of the one response). The answer
 * comes either as one `application/json` body or as an SSE stream (notifications, then the response); on a
 * stream every event passes as it arrives, byte for byte, except the event that carries this request's
 * response, which is re-encoded (text/event-stream §parsing: lines end with CRLF, LF or CR; an event ends
 * at a blank line; its `data` lines are joined with LF).
 *
 * It does not decide who may see what (the grant and the rewrite are given) and does not filter tools/call
 * requests (the route checks those before anything reaches the upstream).
 */
import { Transform, type TransformCallback } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import type { ToolGrant } from '../config/runtime.js';

type JsonRpcId = string | number;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The message with its `result.tools` filtered when it is the response to request `id`; null when the
 * message is something else (another response, a notification, an error), which then passes unchanged.
 */
export function filterToolsListResponse(message: unknown, id: JsonRpcId, grant: ToolGrant): Record<string, unknown> | null {
  if (!isObject(message) || message.id !== id || !isObject(message.result) || !Array.isArray(message.result.tools)) return null;
  if (grant === '*') return message;
  const tools = message.result.tools.filter((tool: unknown) => isObject(tool) && typeof tool.name === 'string' && grant.has(tool.name));
  return { ...message, result: { ...message.result, tools } };
}

/** A rewrite of one JSON-RPC message: the message to send instead, or null to pass it unchanged. */
export type ResponseRewrite = (message: unknown) => unknown;

/** Filters a whole JSON body; a body that is not the expected response passes unchanged. */
export function filterToolsListJson(body: string, id: JsonRpcId, grant: ToolGrant): string {
  return rewriteJsonBody(body, (message) => filterToolsListResponse(message, id, grant));
}

/** Rewrites a whole JSON body with `rewrite`; a body that is not JSON passes unchanged. */
export function rewriteJsonBody(body: string, rewrite: ResponseRewrite): string {
  let message: unknown;
  try {
    message = JSON.parse(body);
  } catch {
    return body;
  }
  const out = rewrite(message);
  return out === null ? body : JSON.stringify(out);
}

/** A stream transform over an SSE body: passes events through, rewriting the tools/list response (see above). */
export function toolsListSseFilter(id: JsonRpcId, grant: ToolGrant): Transform {
  return responseRewriter((message) => filterToolsListResponse(message, id, grant));
}

/**
 * A stream transform over an SSE body: passes events through, each message offered to `rewrite`; with
 * `only`, just the events whose data it accepts are parsed and offered (the rest pass unparsed).
 */
export function responseRewriter(rewrite: ResponseRewrite, only?: (data: string) => boolean): Transform {
  const decoder = new StringDecoder('utf8');
  let pending = '';
  /** Raw text of the event being collected (its lines, with their line endings). */
  let event = '';
  let dataLines: string[] = [];
  let otherLines: string[] = [];

  const endEvent = (blank: string): string => {
    let out = event + blank;
    const data = dataLines.length > 0 ? dataLines.join('\n') : null;
    if (data !== null && (only === undefined || only(data))) {
      let message: unknown;
      try {
        message = JSON.parse(data);
      } catch {
        message = undefined;
      }
      const filtered = message === undefined ? null : rewrite(message);
      if (filtered !== null) out = `${otherLines.map((line) => `${line}\n`).join('')}data: ${JSON.stringify(filtered)}\n\n`;
    }
    event = '';
    dataLines = [];
    otherLines = [];
    return out;
  };

  /** Consumes complete lines from `pending`; returns what may be written now. */
  const drain = (final: boolean): string => {
    let out = '';
    let start = 0;
    for (;;) {
      let end = -1;
      let next = -1;
      for (let i = start; i < pending.length; i++) {
        const c = pending.charCodeAt(i);
        if (c === 10) {
          end = i;
          next = i + 1;
          break;
        }
        if (c === 13) {
          // A CR at the end of the chunk may be the first half of CRLF: wait for more, unless this is the end.
          if (i + 1 === pending.length && !final) break;
          end = i;
          next = pending.charCodeAt(i + 1) === 10 ? i + 2 : i + 1;
          break;
        }
      }
      if (end === -1) break;
      const line = pending.slice(start, end);
      const raw = pending.slice(start, next);
      start = next;
      if (line === '') {
        out += endEvent(raw);
        continue;
      }
      event += raw;
      if (line.startsWith('data:')) dataLines.push(line.slice(line.charCodeAt(5) === 32 ? 6 : 5));
      else otherLines.push(line);
    }
    pending = pending.slice(start);
    return out;
  };

  return new Transform({
    transform(chunk: Buffer, _encoding, done: TransformCallback) {
      pending += decoder.write(chunk);
      const out = drain(false);
      done(null, out === '' ? undefined : out);
    },
    flush(done: TransformCallback) {
      pending += decoder.end();
      let out = drain(true);
      // An unterminated last event is passed as it came (a stream cut short is the client's to handle).
      out += event + pending;
      done(null, out === '' ? undefined : out);
    },
  });
}
