/**
 * The answers `/mcp/{server}` rewrites: the upstream's `tools/list` result, cut down to the tools the
 * virtual key may call (SPEC §4, the same filter as `/mcp`, names unprefixed); every list result (tools,
 * prompts, resources, resource templates) as it may be served whatever the grant (snapshot/tool-names.ts
 * `servableList`: entries named with control or format characters left out, display text sanitised), and, where a guardrail
 * applies, a `tools/call` result (`responseRewriter` takes any rewrite of the one response); and on every
 * answer and GET stream, what the upstream sends the client besides its responses (an elicitation, progress
 * and log notifications: `displayRewrite`), whose display text passes the same rule. The answer
 * comes either as one `application/json` body or as an SSE stream (notifications, then the response); on a
 * stream every event passes as it arrives, byte for byte, except the event that carries this request's
 * response, which is re-encoded (text/event-stream §parsing: lines end with CRLF, LF or CR; an event ends
 * at a blank line; its `data` lines are joined with LF).
 *
 * It does not decide who may see what (the grant and the rewrite are given) and does not filter tools/call
 * requests (the route checks those before anything reaches the upstream).
 */
import { isAscii } from 'node:buffer';
import { Transform, type TransformCallback } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import type { ToolGrant } from '../config/runtime.js';
import type { Logger } from '../log.js';
import { mayNeedServableServerMessage, servableList, servableServerMessage, servableServerResult, type DroppedEntry, type ListField } from '../snapshot/tool-names.js';

type JsonRpcId = string | number;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** What a list answer left out because its names are no names (scrubbed, for a log line). */
export type DroppedEntries = (dropped: DroppedEntry[]) => void;

/**
 * The message with its `result[field]` list as it may be served when it is the response to request `id`:
 * for tools, those the grant shows; for every list, less the entries whose name or URI breaks the rule
 * both planes apply (snapshot/tool-names.ts: an ANSI escape or a bidi override must not reach a client's
 * terminal), display text sanitised; `onDropped` hears of any left out. Null when the message is something
 * else (another response, a notification, an error) or needs no change, and then passes unchanged.
 */
export function filterListResponse(message: unknown, id: JsonRpcId, field: ListField, grant: ToolGrant, onDropped?: DroppedEntries): Record<string, unknown> | null {
  if (!isObject(message) || message.id !== id || !isObject(message.result)) return null;
  const listed = message.result[field];
  if (!Array.isArray(listed)) return null;
  const granted = field !== 'tools' || grant === '*' ? listed : listed.filter((tool: unknown) => isObject(tool) && typeof tool.name === 'string' && grant.has(tool.name));
  const objects = granted.every(isObject) ? granted : granted.filter(isObject);
  const { items, dropped } = servableList(field, objects as Record<string, unknown>[]);
  if (dropped.length > 0) onDropped?.(dropped);
  if (items === listed) return null;
  return { ...message, result: { ...message.result, [field]: items } };
}

/** `filterListResponse` of a tools/list answer. */
export function filterToolsListResponse(message: unknown, id: JsonRpcId, grant: ToolGrant, onDropped?: DroppedEntries): Record<string, unknown> | null {
  return filterListResponse(message, id, 'tools', grant, onDropped);
}

/**
 * `previous` plus, for the response to request `id` (an `initialize` or `server/discover`), the upstream's
 * instructions and server info as they may be shown (snapshot/tool-names.ts `servableServerResult`).
 */
export function withServerResultFilter(previous: ResponseRewrite | null, id: JsonRpcId): ResponseRewrite {
  return (message) => {
    if (isObject(message) && message.id === id && isObject(message.result)) {
      const result = servableServerResult(message.result);
      if (result !== message.result) return { ...message, result };
    }
    return previous === null ? null : previous(message);
  };
}

/**
 * `previous` (a rewrite for another message of the request, or none) plus the list filter for request
 * `id`: each rewrite matches its own response only, so a batch's lists are each filtered.
 */
export function withListFilter(previous: ResponseRewrite | null, id: JsonRpcId, field: ListField, grant: ToolGrant, onDropped?: DroppedEntries): ResponseRewrite {
  return (message) => filterListResponse(message, id, field, grant, onDropped) ?? (previous === null ? null : previous(message));
}

/**
 * The log line for entries left out of an upstream's list, the same on every route (`/mcp/{server}`
 * relayed or pooled, `/mcp`'s prompts and resources): the server, the method, how many, and each one's
 * name or URI escaped (`scrubbedName`: never a raw control character in a log line) with why.
 */
export function logDropped(logger: Logger, server: string, method: string, dropped: readonly DroppedEntry[]): void {
  if (dropped.length === 0) return;
  logger.warn({ server, method, count: dropped.length, dropped }, 'left entries out of an upstream list: a name, URI or schema key holds control or format characters (snapshot/tool-names.ts)');
}

/** A rewrite of one JSON-RPC message: the message to send instead, or null to pass it unchanged. */
export type ResponseRewrite = (message: unknown) => unknown;

/**
 * What the upstream sends the client besides its responses (an elicitation, progress and log
 * notifications, a 2026-07-28 result's input requests) with the text a client shows a person as it may be
 * shown (snapshot/tool-names.ts `servableServerMessage`: an ANSI escape or a bidi override there rewrites a
 * terminal client's screen like one in a tool's description); null when the message needs nothing.
 */
export function displayRewrite(message: unknown): unknown {
  if (!isObject(message)) return null;
  const shown = servableServerMessage(message);
  return shown === message ? null : shown;
}

/** `rewrite` (of this request's responses), then `displayRewrite` over what it gave: every relayed message passes both. */
export function withDisplayRewrite(rewrite: ResponseRewrite | null): ResponseRewrite {
  if (rewrite === null) return displayRewrite;
  return (message) => {
    const once = rewrite(message);
    return displayRewrite(once ?? message) ?? once;
  };
}

/**
 * A JSON body (a POST's answer; the upstream may put requests and notifications in it too, and clients act
 * on them) with `displayRewrite` applied; `body` itself, unparsed, when it cannot need it: a body with no
 * backslash, DEL or byte beyond ASCII cannot decode to a control or format character.
 */
export function displayRewrittenJson(body: Buffer): Buffer {
  if (isAscii(body) && !body.includes(0x5c) && !body.includes(0x7f)) return body;
  const text = body.toString('utf8');
  if (!mayNeedServableServerMessage(text)) return body;
  const out = rewriteJsonBody(text, displayRewrite);
  return out === text ? body : Buffer.from(out, 'utf8');
}

/** Filters a whole JSON body; a body that is not the expected response passes unchanged. */
export function filterToolsListJson(body: string, id: JsonRpcId, grant: ToolGrant, onDropped?: DroppedEntries): string {
  return rewriteJsonBody(body, (message) => filterToolsListResponse(message, id, grant, onDropped));
}

/**
 * `rewrite` over a message, or over each message of a batch (a JSON-RPC batch of responses, which a
 * 2025-03-26 upstream may send): a response wrapped in an array must not pass the filter or the guardrail.
 */
function rewriteMessage(message: unknown, rewrite: ResponseRewrite): unknown {
  if (!Array.isArray(message)) return rewrite(message);
  let out: unknown[] | null = null;
  message.forEach((item, i) => {
    const rewritten = rewrite(item);
    if (rewritten !== null) (out ??= [...message])[i] = rewritten;
  });
  return out;
}

/** Rewrites a whole JSON body with `rewrite`; a body that is not JSON passes unchanged. */
export function rewriteJsonBody(body: string, rewrite: ResponseRewrite): string {
  let message: unknown;
  try {
    message = JSON.parse(body);
  } catch {
    return body;
  }
  const out = rewriteMessage(message, rewrite);
  return out === null ? body : JSON.stringify(out);
}

/**
 * `displayRewrittenJson` over a streamed JSON body (no length declared, or a large one): held until it
 * ends, which costs no client anything (it parses a JSON body only once it has it all). A body past
 * MAX_HELD_JSON_BYTES passes as it came from there on, unrewritten: holding more would let an upstream grow
 * the node's memory, and refusing it would refuse answers that pass today.
 */
export function displayRewrittenJsonStream(): Transform {
  let held: Buffer[] | null = [];
  let size = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, done: TransformCallback) {
      if (held === null) {
        done(null, chunk);
        return;
      }
      held.push(chunk);
      size += chunk.length;
      if (size <= MAX_HELD_JSON_BYTES) {
        done();
        return;
      }
      const all = Buffer.concat(held);
      held = null;
      done(null, all);
    },
    flush(done: TransformCallback) {
      if (held === null || size === 0) {
        done();
        return;
      }
      done(null, displayRewrittenJson(Buffer.concat(held)));
    },
  });
}

/** The most of a streamed JSON body `displayRewrittenJsonStream` holds (as a filtered list answer read whole). */
const MAX_HELD_JSON_BYTES = 32 * 1024 * 1024;

/**
 * The most text one event (or one line) may hold while the rewriter collects it, like the bound on a JSON
 * answer the route reads whole: an upstream that never ends an event cannot grow the node's memory.
 */
const MAX_EVENT_CHARS = 32 * 1024 * 1024;

/** A stream transform over an SSE body: passes events through, rewriting the tools/list response (see above). */
export function toolsListSseFilter(id: JsonRpcId, grant: ToolGrant, onDropped?: DroppedEntries): Transform {
  return responseRewriter((message) => filterToolsListResponse(message, id, grant, onDropped));
}

/**
 * A stream transform over an SSE body (a POST's answer, a GET stream): passes events through, each message
 * offered to `rewrite` (the request's own rewrites, or null for none) and then `displayRewrite`. Without
 * `rewrite` an event is parsed only when its data may need `displayRewrite` (`mayNeedServableServerMessage`):
 * the common event passes after two regex tests. An event past MAX_EVENT_CHARS fails the stream. A last
 * event the upstream did not end (no blank line) is offered too: a lenient client may act on it, so it must
 * be what the rewrite makes of it.
 */
export function responseRewriter(rewrite: ResponseRewrite | null): Transform {
  const every = withDisplayRewrite(rewrite);
  const decoder = new StringDecoder('utf8');
  /**
   * The current line's text so far, in the pieces it came in: a long line is joined once when it ends, not
   * concatenated and rescanned per chunk (which cost time quadratic in its length).
   */
  let partial: string[] = [];
  let partialLength = 0;
  /** The last text ended in CR, which ended a line: an LF first in the next text belongs to it (CRLF). */
  let skipLf = false;
  /** That CR ended an event that was re-encoded (its own line ends are LF): the LF is dropped, not relayed. */
  let dropLf = false;
  /** Raw text of the event being collected (its lines, with their line endings). */
  let event = '';
  let dataLines: string[] = [];
  let otherLines: string[] = [];

  /** Whether the last `endEvent` re-encoded its event. */
  let rewrote = false;
  /** An event of the current chunk was re-encoded. */
  let rewroteInChunk = false;
  /**
   * The last chunk ended with LF at the end of an event, nothing held back (an event, a line, a CR, a
   * character's first bytes in the decoder): the next chunk starts afresh.
   */
  let atBoundary = true;
  const endEvent = (blank: string): string => {
    rewrote = false;
    let out = event + blank;
    const data = dataLines.length > 0 ? dataLines.join('\n') : null;
    if (data !== null && (rewrite !== null || mayNeedServableServerMessage(data))) {
      let message: unknown;
      try {
        message = JSON.parse(data);
      } catch {
        message = undefined;
      }
      const filtered = message === undefined ? null : rewriteMessage(message, every);
      if (filtered !== null) {
        out = `${otherLines.map((line) => `${line}\n`).join('')}data: ${JSON.stringify(filtered)}\n\n`;
        rewrote = true;
        rewroteInChunk = true;
      }
    }
    event = '';
    dataLines = [];
    otherLines = [];
    return out;
  };

  /** One line (without its ending) of the event being collected. */
  const addLine = (line: string, ending: string): void => {
    event += line + ending;
    if (line.startsWith('data:')) dataLines.push(line.slice(line.charCodeAt(5) === 32 ? 6 : 5));
    else otherLines.push(line);
  };

  /** Consumes `text`: complete lines go into events; returns what may be written now. */
  const consume = (text: string): string => {
    let out = '';
    let start = 0;
    if (skipLf && text.length > 0) {
      skipLf = false;
      if (text.charCodeAt(0) === 10) {
        // The LF of a CRLF split across chunks: it belongs to the line (or event) already ended.
        if (event !== '') event += '\n';
        else if (!dropLf) out += '\n';
        start = 1;
      }
    }
    // Line ends found with indexOf (native), not a test per character: every stream passes here.
    let lf = text.indexOf('\n', start);
    let cr = text.indexOf('\r', start);
    for (;;) {
      const i = cr === -1 ? lf : lf === -1 ? cr : Math.min(lf, cr);
      if (i === -1) break;
      const c = text.charCodeAt(i);
      let next = i + 1;
      if (c === 13) {
        if (next === text.length) skipLf = true;
        else if (text.charCodeAt(next) === 10) next++;
      }
      const line = partialLength === 0 ? text.slice(start, i) : partial.join('') + text.slice(start, i);
      partial = [];
      partialLength = 0;
      const ending = text.slice(i, next);
      if (line === '') out += endEvent(ending);
      // A comment between events (a keep-alive, which may never be followed by a blank line) goes at once:
      // it belongs to no event, and held back it would keep nothing alive.
      else if (event === '' && line.charCodeAt(0) === 58) out += line + ending;
      else addLine(line, ending);
      dropLf = line === '' && rewrote;
      start = next;
      if (lf !== -1 && lf < next) lf = text.indexOf('\n', next);
      if (cr !== -1 && cr < next) cr = text.indexOf('\r', next);
    }
    if (start < text.length) {
      partial.push(start === 0 ? text : text.slice(start));
      partialLength += text.length - start;
    }
    return out;
  };

  return new Transform({
    transform(chunk: Buffer, _encoding, done: TransformCallback) {
      const fresh = atBoundary;
      rewroteInChunk = false;
      const out = consume(decoder.write(chunk));
      if (event.length + partialLength > MAX_EVENT_CHARS) {
        done(new Error('an upstream SSE event is too large to rewrite'));
        return;
      }
      atBoundary = chunk[chunk.length - 1] === 10 && event === '' && partialLength === 0;
      // Whole events, none rewritten (the common chunk): `out` is the chunk's own text, so its bytes go as
      // they came, not encoded again.
      if (fresh && atBoundary && !rewroteInChunk) done(null, chunk);
      else done(null, out === '' ? undefined : out);
    },
    flush(done: TransformCallback) {
      let out = consume(decoder.end());
      if (partialLength > 0) {
        // The last line had no line end: it is part of the unterminated last event.
        addLine(partial.join(''), '');
        partial = [];
        partialLength = 0;
      }
      // An unterminated last event: rewritten like any other (then ended), or passed as it came.
      if (event !== '') out += dataLines.length > 0 ? endEvent('') : event;
      done(null, out === '' ? undefined : out);
    },
  });
}
