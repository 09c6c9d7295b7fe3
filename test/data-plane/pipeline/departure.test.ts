/**
 * `RequestContext.departure` (pipeline/context.ts), the light stand-in for an AbortSignal that upstream calls
 * watch: over a real node:http server, it aborts when the caller closes its connection before the answer,
 * never once the answer was sent, and behaves as an AbortSignal does for listeners (each once, none after
 * removal, none added after the abort). `abortSignalOf` turns it into a real AbortSignal for the SDK.
 */
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { RequestContext, abortSignalOf } from '../../../data-plane/pipeline/context.js';
import { waitFor } from '../../support/wait.js';

let server: Server | null = null;

afterEach(async () => {
  server?.closeAllConnections();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = null;
});

/** A server whose handler hands each request's context to `onRequest`; resolves with its port. */
async function listen(onRequest: (ctx: RequestContext, res: ServerResponse) => void): Promise<number> {
  server = createServer((req: IncomingMessage, res: ServerResponse) => onRequest(new RequestContext('mcp', req, res, Date.now()), res));
  await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', () => resolve()));
  return (server.address() as AddressInfo).port;
}

describe('RequestContext.departure', () => {
  it('aborts when the caller leaves before its answer: each listener once, a removed one never, a late one never', async () => {
    const fired: string[] = [];
    let ctx: RequestContext | null = null;
    const port = await listen((c) => {
      ctx = c;
      const d = c.departure;
      d.addEventListener('abort', () => fired.push('first'));
      const removed = (): void => {
        fired.push('removed');
      };
      d.addEventListener('abort', removed);
      d.removeEventListener('abort', removed);
      d.addEventListener('abort', () => fired.push('second'));
      expect(c.departure).toBe(d);
      expect(d.aborted).toBe(false);
    });
    const req = request({ port, host: '127.0.0.1', method: 'POST', path: '/mcp' });
    req.on('error', () => undefined);
    req.write('{');
    await waitFor(() => ctx !== null, { what: 'the request to arrive' });
    req.destroy();
    const context = ctx as unknown as RequestContext;
    await waitFor(() => context.departure.aborted, { what: 'the departure to abort' });
    expect(fired).toEqual(['first', 'second']);
    context.departure.addEventListener('abort', () => fired.push('late'));
    expect(fired).toEqual(['first', 'second']);
  });

  it('does not abort once the answer was sent, and abortSignalOf follows it', async () => {
    let ctx: RequestContext | null = null;
    let signal: AbortSignal | null = null;
    let closed = false;
    const port = await listen((c, res) => {
      ctx = c;
      signal = abortSignalOf(c.departure);
      res.once('close', () => (closed = true));
      res.end('done');
    });
    const text = await fetch(`http://127.0.0.1:${port}/mcp`).then((r) => r.text());
    expect(text).toBe('done');
    await waitFor(() => closed, { what: 'the response to close' });
    expect((ctx as unknown as RequestContext).departure.aborted).toBe(false);
    expect((signal as unknown as AbortSignal).aborted).toBe(false);
  });

  it('abortSignalOf: a real AbortSignal that aborts with the departure (and is the signal itself when given one)', async () => {
    const controller = new AbortController();
    expect(abortSignalOf(controller.signal)).toBe(controller.signal);
    let ctx: RequestContext | null = null;
    let signal: AbortSignal | null = null;
    const port = await listen((c) => {
      ctx = c;
      signal = abortSignalOf(c.departure);
    });
    const req = request({ port, host: '127.0.0.1', method: 'POST', path: '/mcp' });
    req.on('error', () => undefined);
    req.write('{');
    await waitFor(() => ctx !== null, { what: 'the request to arrive' });
    expect(signal).toBeInstanceOf(AbortSignal);
    expect((signal as unknown as AbortSignal).aborted).toBe(false);
    req.destroy();
    await waitFor(() => (signal as unknown as AbortSignal).aborted, { what: 'the signal to abort' });
  });
});
