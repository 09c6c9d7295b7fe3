/** Answers for the control plane's own routes: errors from the table in errors.ts, JSON, bounded JSON bodies. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { readBody } from '../../data-plane/snapshot/bounded-body.js';
import { controlPlaneError, ControlPlaneMessage, type ControlPlaneErrorCode } from './errors.js';

export function sendError(res: ServerResponse, code: ControlPlaneErrorCode, message?: string): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const error = controlPlaneError(code, message);
  res.writeHead(error.status, error.headers).end(JSON.stringify(error.body));
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(body));
}

/**
 * Reads a body as text up to `limit` bytes; if it is too large, answers 413 `payload_too_large` (a route
 * may say in `tooLarge` what its oversized body is and what the sender should do) and returns undefined,
 * as it does when the sender went away.
 */
export async function readTextBody(req: IncomingMessage, res: ServerResponse, limit: number, tooLarge?: string): Promise<string | undefined> {
  const body = await readBody(req, limit);
  if (body.kind === 'too_large') {
    sendError(res, 'payload_too_large', tooLarge ?? ControlPlaneMessage.bodyTooLarge(limit));
    return undefined;
  }
  return body.kind === 'aborted' ? undefined : body.text;
}

/** Reads a JSON body as `readTextBody` does; a body that is not JSON is answered 400 `invalid_json`. */
export async function readJsonBody(req: IncomingMessage, res: ServerResponse, limit: number, tooLarge?: string): Promise<unknown> {
  const text = await readTextBody(req, res, limit, tooLarge);
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    sendError(res, 'invalid_json');
    return undefined;
  }
}
