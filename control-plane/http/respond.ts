/** JSON `{type, message}` error answers and bounded JSON body reading for the control plane's own routes. */
import type { IncomingMessage, ServerResponse } from 'node:http';

export function sendError(res: ServerResponse, status: number, type: string, message: string): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ type, message }));
}

/** Reads a JSON body up to `limit` bytes; on failure answers the request and returns undefined. */
export async function readJsonBody(req: IncomingMessage, res: ServerResponse, limit: number): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      sendError(res, 413, 'payload_too_large', `body exceeds ${limit} bytes`);
      return undefined;
    }
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    sendError(res, 400, 'invalid_json', 'body is not valid JSON');
    return undefined;
  }
}
