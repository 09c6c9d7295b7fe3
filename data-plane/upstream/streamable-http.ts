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
import { createParser } from 'eventsource-parser';
import type { Dispatcher } from 'undici';

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
  /** Aborts the exchange (the caller went away); undefined when nobody can. */
  signal: AbortSignal | undefined;
  /**
   * Whole-answer deadline. Enforced by undici's headers/body timeouts (no timer of our own per call: a JSON
   * answer arrives with its headers) and, for an SSE answer, by one timer over the whole stream.
   */
  timeoutMs: number;
  /** Notifications the upstream sends on this request's SSE stream before the response (progress, log messages). */
  onNotification?: ((message: Record<string, unknown>) => void) | undefined;
}

export type ExchangeResult =
  /** The upstream's JSON-RPC response to our id (`result` or `error`), and the session id it set, if any. */
  | { kind: 'response'; message: Record<string, unknown>; sessionId: string | null }
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

export async function exchange(dispatcher: Dispatcher, request: ExchangeRequest): Promise<ExchangeResult> {
  const response = await dispatcher.request({
    origin: request.origin,
    path: request.path,
    method: 'POST',
    headers: request.headers as string[],
    body: request.body,
    signal: request.signal,
    headersTimeout: request.timeoutMs,
    bodyTimeout: request.timeoutMs,
  }).catch((error: unknown) => {
    if (isTimeout(error)) return null;
    throw error;
  });
  if (response === null) return TIMEOUT;
  const status = response.statusCode;
  const sessionId = headerValue(response.headers['mcp-session-id']);
  if (status === 202 || (status >= 200 && status < 300 && request.id === null)) {
    response.body.resume();
    return { kind: 'accepted', sessionId };
  }
  if (status < 200 || status >= 300) {
    response.body.resume();
    return { kind: 'http_error', status, detail: `HTTP ${status}` };
  }
  const type = headerValue(response.headers['content-type']) ?? '';
  if (type.includes('text/event-stream')) return readEventStream(response.body, request.id, sessionId, request.timeoutMs, request.onNotification);
  if (!type.includes('application/json')) {
    response.body.resume();
    return { kind: 'http_error', status: 0, detail: 'unexpected content type from upstream' };
  }
  let text: string;
  try {
    text = await readBounded(response.body);
  } catch (error) {
    if (isTimeout(error)) return TIMEOUT;
    throw error;
  }
  let message: unknown;
  try {
    message = JSON.parse(text);
  } catch {
    return { kind: 'http_error', status: 0, detail: 'upstream answered invalid JSON' };
  }
  // A JSON answer is one message (or, from an older server, a batch holding ours).
  const found = Array.isArray(message) ? message.find((m) => isResponseTo(m, request.id)) : isResponseTo(message, request.id) ? message : undefined;
  return found === undefined ? { kind: 'http_error', status: 0, detail: 'upstream answer did not answer the request' } : { kind: 'response', message: found, sessionId };
}

/**
 * Reads SSE events until the response to `id` arrives (then keeps draining in the background, so the
 * keep-alive connection stays reusable). Notifications before it go to `onNotification`, if given; server
 * requests on the stream are skipped for now.
 */
function readEventStream(
  body: Dispatcher.ResponseData['body'],
  id: number | null,
  sessionId: string | null,
  timeoutMs: number,
  onNotification?: (message: Record<string, unknown>) => void,
): Promise<ExchangeResult> {
  return new Promise((resolve) => {
    let settled = false;
    let size = 0;
    const timer = setTimeout(() => {
      finish(TIMEOUT);
      body.destroy();
    }, timeoutMs);
    const finish = (result: ExchangeResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(result);
    };
    const parser = createParser({
      onEvent(event) {
        if (settled || (event.event !== undefined && event.event !== 'message')) return;
        let message: unknown;
        try {
          message = JSON.parse(event.data);
        } catch {
          return;
        }
        if (isResponseTo(message, id)) finish({ kind: 'response', message, sessionId });
        else if (onNotification && isNotification(message)) onNotification(message);
      },
    });
    // undici's body yields Buffers whatever setEncoding says; a decoder keeps split UTF-8 sequences whole.
    const decoder = new StringDecoder('utf8');
    body.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_RESPONSE_BYTES) {
        body.destroy();
        finish({ kind: 'http_error', status: 0, detail: `upstream stream exceeds ${MAX_RESPONSE_BYTES} bytes` });
        return;
      }
      if (!settled) parser.feed(decoder.write(chunk));
    });
    body.on('end', () => finish({ kind: 'http_error', status: 0, detail: 'upstream stream ended without an answer' }));
    // After our answer the rest is only drained; before it, a failure (or an abort) ends the exchange.
    body.on('error', () => finish({ kind: 'http_error', status: 0, detail: 'upstream stream failed' }));
  });
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

function headerValue(value: string | string[] | undefined): string | null {
  if (value === undefined) return null;
  return Array.isArray(value) ? (value[0] ?? null) : value;
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
