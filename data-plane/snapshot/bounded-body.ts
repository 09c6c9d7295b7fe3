/**
 * The bounded body reader of both planes' HTTP routes (the node's pipeline routes, the control plane's
 * node routes): reads a request body as UTF-8 up to a byte limit and says
 * `too_large` as soon as the limit is crossed (declared by Content-Length or counted while streaming),
 * draining the rest so the connection can answer.
 */
import type { IncomingMessage } from 'node:http';

export type BodyResult = { kind: 'ok'; text: string } | { kind: 'too_large' } | { kind: 'aborted' };

const TOO_LARGE: BodyResult = { kind: 'too_large' };

export function readBody(req: IncomingMessage, limit: number): Promise<BodyResult> {
  return new Promise((resolve) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) {
      req.resume();
      resolve(TOO_LARGE);
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let finished = false;
    req.on('data', (chunk: Buffer) => {
      if (finished) return;
      size += chunk.length;
      if (size > limit) {
        finished = true;
        chunks.length = 0;
        req.resume();
        resolve(TOO_LARGE);
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (finished) return;
      finished = true;
      resolve({ kind: 'ok', text: chunks.length === 1 ? (chunks[0] as Buffer).toString('utf8') : Buffer.concat(chunks).toString('utf8') });
    });
    req.on('error', () => {
      // The caller went away mid-body; nobody reads the answer, but the pipeline still records the request.
      if (finished) return;
      finished = true;
      resolve({ kind: 'aborted' });
    });
  });
}
