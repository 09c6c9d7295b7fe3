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
 * Reads a JSON body up to `limit` bytes; on failure answers the request and returns undefined. A route may
 * say in `tooLarge` what its oversized body is and what the sender should do (413 `payload_too_large`).
 */
export async function readJsonBody(req: IncomingMessage, res: ServerResponse, limit: number, tooLarge?: string): Promise<unknown> {
  const body = await readBody(req, limit);
  if (body.kind === 'too_large') {
    sendError(res, 'payload_too_large', tooLarge ?? ControlPlaneMessage.bodyTooLarge(limit));
    return undefined;
  }
  if (body.kind === 'aborted') return undefined;
  try {
    return JSON.parse(body.text) as unknown;
  } catch {
    sendError(res, 'invalid_json');
    return undefined;
  }
}
