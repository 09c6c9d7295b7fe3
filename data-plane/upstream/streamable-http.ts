/**
 * One JSON-RPC exchange with a Streamable HTTP upstream (MCP 2025-03-26+ transports §Streamable HTTP), made
 * directly with undici: POST the message with exactly the headers given, then read the answer as either
 * `application/json` or a `text/event-stream` (parsed with `eventsource-parser`) and pick the response
 * whose id is ours. The caller passes every header explicitly (credentials, allowlisted caller headers,
 * `Mcp-Session-Id`, `MCP-Protocol-Version`): no side channel, no fake web `Response` for a library.
 *
 * It does not keep sessions, retry or decide what a status means for the pool (`http-calls.ts` does); it
 * reports what happened, bounded in size and time, and never echoes a header value or a URL.
 */
import { StringDecoder } from 'node:string_decoder';
import { createParser, type EventSourceParser } from 'eventsource-parser';
import type { Dispatcher } from 'undici';
import type { Departure } from '../pipeline/context.js';

/** A JSON answer or SSE stream larger than this is refused (an MCP tool result is far smaller). */
export const MAX_RESPONSE_BYTES = 32 * 1024 * 1024;

const ACCEPT = 'application/json, text/event-stream';

export interface ExchangeRequest {
  /** Upstream origin (`http://host:port`) and path (+ query) of the MCP endpoint. */
  origin: string;
  path: string;
  /** Every header to send, as built by `requestHeaders` (flat name/value list, content-type and accept included). */
  headers: readonly string[];
  /** The JSON-RPC message, serialised. */
  body: string;
  /** The id of the request in `body`; null for a notification (the answer is then 202). */
  id: number | null;
  /** Aborts the exchange (the caller went away): an AbortSignal or the pipeline's lighter `Departure`; undefined when nobody can. */
  signal: Departure | undefined;
  /**
   * Whole-answer deadline. Enforced by undici's headers/body timeouts (no timer of our own per call: a JSON
   * answer arrives with its headers) and, for an SSE answer, by one timer over the whole stream.
   */
  timeoutMs: number;
  /** Notifications the upstream sends on this request's SSE stream before the response (progress, log messages). */
  onNotification?: ((message: Record<string, unknown>) => void) | undefined;
}

export type ExchangeResult =
  /**
   * The upstream's JSON-RPC response to our id (`result` or `error`), the session id it set, if any, the HTTP
   * status, and the JSON text it was parsed from (the body, or the SSE event's data), for a search of the
   * raw answer (e.g. for an echoed credential) without walking the parsed one.
   */
  | { kind: 'response'; message: Record<string, unknown>; sessionId: string | null; status: number; text: string }
  /** 202 Accepted (the answer to a notification). */
  | { kind: 'accepted'; sessionId: string | null }
  /** No answer within `timeoutMs`. */
  | { kind: 'timeout' }
  /** Any other HTTP status, or a 2xx without our response; `status` 0 when the body was malformed. */
  | { kind: 'http_error'; status: number; detail: string };

/** The flat header list undici takes as is (no per-request object walk): `headers` plus content-type and accept. */
export function requestHeaders(headers: Readonly<Record<string, string>>): string[] {
  const out = ['content-type', 'application/json', 'accept', ACCEPT];
  for (const name in headers) {
    if (name === 'content-type' || name === 'accept') continue;
    out.push(name, headers[name] as string);
  }
  return out;
}

/**
 * One exchange, through undici's `dispatch` with a handler of our own rather than `request()`: no body
 * stream, no promise per stage and no web-style abort plumbing per call (all of which showed in the hot
 * path's profile); the handler sees the status, the headers and each chunk, bounded as they arrive.
 *
 * The handler speaks undici's original handler interface (`onConnect`, `onHeaders`, `onData`,
 * `onComplete`, `onError`: the one its HTTP/1 client calls), not the newer controller one: undici wraps a
 * newer-style handler per request in an adapter that turns every response's raw headers (and trailers)
 * into an object, and that adapter and `parseHeaders` were ~4% of the node's instructions per tools/call
 * (callgrind, bench/dev/instructions.ts). The original interface is marked deprecated in undici 7's types
 * but is what its clients still run; test/data-plane/upstream-* cover every callback.
 * Resolves with what happened; rejects only when no answer could be had (connection refused, reset,
 * aborted by `signal`, a JSON answer over `MAX_RESPONSE_BYTES`), which the caller reports as unreachable.
 */
export function exchange(dispatcher: Dispatcher, request: ExchangeRequest): Promise<ExchangeResult> {
  return new Promise((resolve, reject) => {
    const signal = request.signal;
    if (signal?.aborted) {
      reject(new ExchangeAborted());
      return;
    }
    const handler = new ExchangeHandler(request, resolve, reject);
    try {
      dispatcher.dispatch(
        {
          origin: request.origin,
          path: request.path,
          method: 'POST',
          headers: request.headers as string[],
          body: request.body,
          headersTimeout: request.timeoutMs,
          bodyTimeout: request.timeoutMs,
        },
        handler,
      );
    } catch (error) {
      // Refused before it started (a closed dispatcher, bad options): no handler callback will come.
      handler.onError(error instanceof Error ? error : new Error(String(error)));
    }
  });
}

/** What the handler does with the body once the status and content type are known. */
type BodyMode = 'pending' | 'json' | 'sse' | 'drain';

class ExchangeHandler implements Dispatcher.DispatchHandler {
  // Not readonly: `#done` lets go of them (see there).
  #request: ExchangeRequest;
  #resolve: ((result: ExchangeResult) => void) | null;
  #reject: ((error: unknown) => void) | null;
  /** undici's abort for this request, from `onConnect`. */
  #abort: ((error?: Error) => void) | null = null;
  #mode: BodyMode = 'pending';
  #settled = false;
  #aborted = false;
  #size = 0;
  #sessionId: string | null = null;
  #status = 0;
  #first: Buffer | null = null;
  #rest: Buffer[] | null = null;
  #sse: { parser: EventSourceParser; decoder: StringDecoder; timer: NodeJS.Timeout } | null = null;
  readonly #onAbort: (() => void) | null;

  constructor(request: ExchangeRequest, resolve: (result: ExchangeResult) => void, reject: (error: unknown) => void) {
    this.#request = request;
    this.#resolve = resolve;
    this.#reject = reject;
    const signal = request.signal;
    if (signal) {
      this.#onAbort = () => {
        this.#aborted = true;
        this.#abort?.(new ExchangeAborted());
      };
      signal.addEventListener('abort', this.#onAbort, { once: true });
    } else this.#onAbort = null;
  }

  onConnect(abort: (error?: Error) => void): void {
    this.#abort = abort;
    if (this.#aborted) abort(new ExchangeAborted());
  }

  onHeaders(status: number, rawHeaders: Buffer[], _resume: () => void): boolean {
    if (status < 200) return true; // 1xx informational: the answer is still to come
    // The two headers read here, from the raw name/value list (first of each, as a parsed object gave).
    let sessionId: string | null = null;
    let type: string | null = null;
    for (let i = 0; i + 1 < rawHeaders.length && (sessionId === null || type === null); i += 2) {
      const name = rawHeaders[i] as Buffer;
      if (sessionId === null && isHeaderName(name, 'mcp-session-id')) sessionId = (rawHeaders[i + 1] as Buffer).toString('latin1');
      else if (type === null && isHeaderName(name, 'content-type')) type = (rawHeaders[i + 1] as Buffer).toString('latin1');
    }
    this.#sessionId = sessionId;
    this.#status = status;
    if (status === 202 || (status >= 200 && status < 300 && this.#request.id === null)) {
      this.#mode = 'drain';
      this.#settle({ kind: 'accepted', sessionId: this.#sessionId });
      return true;
    }
    if (status < 200 || status >= 300) {
      this.#mode = 'drain';
      this.#settle({ kind: 'http_error', status, detail: `HTTP ${status}` });
      return true;
    }
    type ??= '';
    if (type.includes('text/event-stream')) {
      this.#mode = 'sse';
      this.#sse = { parser: this.#eventParser(), decoder: new StringDecoder('utf8'), timer: setTimeout(() => this.#timedOut(), this.#request.timeoutMs) };
    } else if (type.includes('application/json')) this.#mode = 'json';
    else {
      this.#mode = 'drain';
      this.#settle({ kind: 'http_error', status: 0, detail: 'unexpected content type from upstream' });
    }
    return true;
  }

  onData(chunk: Buffer): boolean {
    this.#size += chunk.length;
    if (this.#size > MAX_RESPONSE_BYTES && this.#mode !== 'drain') {
      if (this.#mode === 'json') this.#fail(new ResponseTooLarge());
      else this.#settle({ kind: 'http_error', status: 0, detail: `upstream stream exceeds ${MAX_RESPONSE_BYTES} bytes` });
      this.#abort?.(new ResponseTooLarge());
      return false;
    }
    if (this.#mode === 'json') {
      if (this.#first === null) this.#first = chunk;
      else (this.#rest ??= [this.#first]).push(chunk);
    } else if (this.#mode === 'sse' && !this.#settled && this.#sse) this.#sse.parser.feed(this.#sse.decoder.write(chunk));
    return true;
  }

  onComplete(): void {
    if (this.#mode === 'json') {
      const first = this.#first;
      const text = this.#rest !== null ? Buffer.concat(this.#rest).toString('utf8') : first === null ? '' : first.toString('utf8');
      this.#settle(answerOf(text, this.#request.id, this.#sessionId, this.#status));
    } else if (this.#mode === 'sse') this.#settle({ kind: 'http_error', status: 0, detail: 'upstream stream ended without an answer' });
    this.#done();
  }

  onError(error: Error): void {
    // After our answer the rest was only drained; before it, an SSE stream that fails (or is aborted) ends
    // the exchange with what the stream said.
    if (this.#mode === 'sse') this.#settle({ kind: 'http_error', status: 0, detail: 'upstream stream failed' });
    else if (isTimeout(error)) this.#settle(TIMEOUT);
    else this.#fail(error);
    this.#done();
  }

  #eventParser(): EventSourceParser {
    return createParser({
      onEvent: (event) => {
        if (this.#settled || (event.event !== undefined && event.event !== 'message')) return;
        let message: unknown;
        try {
          message = JSON.parse(event.data);
        } catch {
          return;
        }
        if (isResponseTo(message, this.#request.id)) this.#settle({ kind: 'response', message, sessionId: this.#sessionId, status: this.#status, text: event.data });
        else if (this.#request.onNotification && isNotification(message)) this.#request.onNotification(message);
      },
    });
  }

  /** The whole-stream deadline of an SSE answer. */
  #timedOut(): void {
    this.#settle(TIMEOUT);
    this.#abort?.(new ExchangeTimeout());
  }

  #settle(result: ExchangeResult): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#resolve?.(result);
  }

  #fail(error: unknown): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#reject?.(error);
  }

  /**
   * The exchange is over on the wire: its timer and abort listener go, and so does everything it held.
   * Measured: an AbortSignal keeps a removed listener reachable for a while, and through it this handler;
   * holding the caller's promise, body and buffers from here made a quarter of each request's garbage
   * survive into the old generation (GC pauses tripled). undici's own handlers let go the same way.
   */
  #done(): void {
    if (this.#sse) clearTimeout(this.#sse.timer);
    if (this.#onAbort) this.#request.signal?.removeEventListener('abort', this.#onAbort);
    this.#request = DONE_REQUEST;
    this.#resolve = null;
    this.#reject = null;
    this.#abort = null;
    this.#first = null;
    this.#rest = null;
    this.#sse = null;
  }
}

const DONE_REQUEST: ExchangeRequest = { origin: '', path: '', headers: [], body: '', id: null, signal: undefined, timeoutMs: 0 };

/**
 * Whether a raw header name is `lower` (lower-case ASCII), compared byte by byte without building a string:
 * every upstream answer's headers are scanned for two names, and `Content-Length` has the length of
 * `Mcp-Session-Id`, so a string per name (and its lower-cased copy) was made for most of them.
 */
function isHeaderName(name: Buffer, lower: string): boolean {
  if (name.length !== lower.length) return false;
  // `| 0x20` folds ASCII upper-case letters onto lower-case, and leaves the hyphen (0x2d) as it is.
  for (let i = 0; i < name.length; i++) if (((name[i] as number) | 0x20) !== lower.charCodeAt(i)) return false;
  return true;
}

/** A JSON answer is one message (or, from an older server, a batch holding ours). */
function answerOf(text: string, id: number | null, sessionId: string | null, status: number): ExchangeResult {
  let message: unknown;
  try {
    message = JSON.parse(text);
  } catch {
    return { kind: 'http_error', status: 0, detail: 'upstream answered invalid JSON' };
  }
  const found = Array.isArray(message) ? message.find((m) => isResponseTo(m, id)) : isResponseTo(message, id) ? message : undefined;
  return found === undefined ? { kind: 'http_error', status: 0, detail: 'upstream answer did not answer the request' } : { kind: 'response', message: found, sessionId, status, text };
}

/** The caller's signal aborted the exchange. */
class ExchangeAborted extends Error {
  constructor() {
    super('the upstream request was aborted');
    this.name = 'AbortError';
  }
}

class ExchangeTimeout extends Error {
  constructor() {
    super('the upstream stream ran past its deadline');
    this.name = 'ExchangeTimeout';
  }
}

const TIMEOUT: ExchangeResult = { kind: 'timeout' };

function isTimeout(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT';
}

function isNotification(message: unknown): message is Record<string, unknown> {
  return typeof message === 'object' && message !== null && !Array.isArray(message) && typeof (message as { method?: unknown }).method === 'string' && !('id' in message);
}

function isResponseTo(message: unknown, id: number | null): message is Record<string, unknown> {
  return (
    typeof message === 'object' && message !== null && !Array.isArray(message) && (message as { id?: unknown }).id === id && ('result' in message || 'error' in message)
  );
}

/**
 * Reads a whole body as UTF-8, refusing (`ResponseTooLarge`) beyond `MAX_RESPONSE_BYTES`. Events rather
 * than `for await`: an async iterator per answer cost measurably on the hot path.
 */
export function readBounded(body: Dispatcher.ResponseData['body']): Promise<string> {
  return new Promise((resolve, reject) => {
    let first: Buffer | null = null;
    let rest: Buffer[] | null = null;
    let size = 0;
    body.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_RESPONSE_BYTES) {
        body.destroy();
        reject(new ResponseTooLarge());
        return;
      }
      if (first === null) first = chunk;
      else (rest ??= [first]).push(chunk);
    });
    body.on('end', () => resolve(rest !== null ? Buffer.concat(rest).toString('utf8') : first === null ? '' : first.toString('utf8')));
    body.on('error', reject);
  });
}

export class ResponseTooLarge extends Error {
  constructor() {
    super(`upstream response exceeds ${MAX_RESPONSE_BYTES} bytes`);
    this.name = 'ResponseTooLarge';
  }
}
