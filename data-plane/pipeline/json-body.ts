/**
 * The parse stage's first step on the JSON-RPC routes (`/mcp`, `/mcp/{server}`): the body, bounded
 * (`snapshot/bounded-body.ts`), then parsed once. A refusal is the table's `payload_too_large` (with
 * `Connection: close`, so the rest of an oversized body is not read), `invalid_request` for a body cut
 * off, or `parse_error` (JSON-RPC -32700, id null).
 */
import type { IncomingMessage } from 'node:http';
import { GatewayError, HttpMessage, RpcMessage } from '../errors.js';
import { readBody, type BodyResult } from '../snapshot/bounded-body.js';

export type JsonRpcBody = { text: string; json: unknown };

export function readJsonRpcBody(req: IncomingMessage, maxBytes: number): Promise<JsonRpcBody | GatewayError> {
  return readBody(req, maxBytes).then((body) => jsonRpcBody(body, maxBytes));
}

/**
 * A body read with `readBody(req, maxBytes)`, parsed: for a route that continues its parse stage in the
 * same step (one promise per request for the whole stage, not one per helper).
 */
export function jsonRpcBody(body: BodyResult, maxBytes: number): JsonRpcBody | GatewayError {
  if (body.kind === 'too_large') return new GatewayError('payload_too_large', { message: HttpMessage.bodyTooLarge(maxBytes), headers: { connection: 'close' } });
  if (body.kind === 'aborted') return new GatewayError('invalid_request', { reason: 'caller_aborted' });
  try {
    return { text: body.text, json: JSON.parse(body.text) as unknown };
  } catch {
    return new GatewayError('parse_error', { message: RpcMessage.parseError() });
  }
}
