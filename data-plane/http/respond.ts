/**
 * Sending: the only data-plane module that writes HTTP responses. Routes and stages return an `Answer`
 * (a value); the pipeline's respond stage hands it to `sendAnswer`. Errors go out as the table in
 * `errors.ts` says (`{type, message}`, status, `WWW-Authenticate` on 401).
 *
 * It does not know MCP or any route's semantics.
 */
import type { ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { httpErrorOf, type GatewayError } from '../errors.js';

export type Answer =
  /** A JSON body (a JSON-RPC response, a batch of them, or a route's own JSON). */
  | { readonly kind: 'json'; readonly status: number; readonly body: unknown; readonly headers?: Readonly<Record<string, string>> }
  /** No body (e.g. 202 for JSON-RPC notifications). */
  | { readonly kind: 'empty'; readonly status: number; readonly headers?: Readonly<Record<string, string>> }
  /** A typed HTTP error: `{type, message}` with the table's status. */
  | { readonly kind: 'error'; readonly error: GatewayError }
  /** A body already in hand, sent as is in one write (a small upstream answer relayed byte for byte). */
  | { readonly kind: 'bytes'; readonly status: number; readonly headers: Readonly<Record<string, string>>; readonly body: Buffer }
  /** A body relayed as it arrives (SSE, a streamed LLM answer); the stream is destroyed if the caller leaves. */
  | { readonly kind: 'stream'; readonly status: number; readonly headers: Readonly<Record<string, string>>; readonly body: Readable };

export function jsonAnswer(status: number, body: unknown, headers?: Readonly<Record<string, string>>): Answer {
  return headers === undefined ? { kind: 'json', status, body } : { kind: 'json', status, body, headers };
}

export function errorAnswer(error: GatewayError): Answer {
  return { kind: 'error', error };
}

export const ACCEPTED: Answer = { kind: 'empty', status: 202 };

export function sendAnswer(res: ServerResponse, answer: Answer): void {
  switch (answer.kind) {
    case 'json':
      sendJson(res, answer.status, answer.body, answer.headers);
      return;
    case 'empty':
      res.writeHead(answer.status, answer.headers);
      res.end();
      return;
    case 'bytes':
      res.writeHead(answer.status, answer.headers);
      res.end(answer.body);
      return;
    case 'error': {
      const error = httpErrorOf(answer.error);
      sendJson(res, error.status, error.body, error.headers);
      return;
    }
    case 'stream': {
      res.writeHead(answer.status, answer.headers);
      const body = answer.body;
      // A body of unknown length (SSE) gets its headers within a turn of the event loop, not only with the
      // first chunk: such a stream may stay quiet for a long time (an MCP GET stream, a long tool call), and a
      // client waits for the headers before it reads anything. A chunk already at hand (a short streamed LLM
      // answer usually is whole by now) carries them in its write: one syscall fewer per answer. A body of
      // known length goes out with them, in one write.
      if (answer.headers['content-length'] === undefined) {
        let wrote = false;
        body.once('data', () => (wrote = true));
        setImmediate(() => {
          if (!wrote && !res.writableEnded && !res.destroyed) res.flushHeaders();
        });
      }
      res.once('close', () => {
        if (!body.destroyed) body.destroy();
      });
      body.on('error', () => res.destroy());
      body.pipe(res);
      return;
    }
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers?: Readonly<Record<string, string>>): void {
  const text = JSON.stringify(body);
  // The common answer has no headers of its own: a flat name/value list, which node:http writes as is
  // (no object built and spread, no key walk). Same header lines, same order, as the object form.
  if (headers === undefined) res.writeHead(status, ['content-type', 'application/json', 'content-length', String(Buffer.byteLength(text))]);
  else res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}
