/**
 * The drain itself (http/server.ts), in-process: the connection handling is the point, not the node around
 * it.
 *
 * - An answer still being written when the drain begins (ended by its handler, not yet taken by a slow
 *   reader) is written whole. Before, the drain's first step (server.close(), node:http's
 *   closeIdleConnections) took its connection for idle and destroyed it, cutting the answer.
 * - Past the deadline the requests still in flight are cut, and the drain waits (bounded) for each cut
 *   request's handler to answer into its closed connection, the moment its record is delivered. That wait
 *   ends when the last handler answers, not on a later poll tick: before, it polled every 10 ms for up to 2 s.
 */
import { request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { RuntimeHolder } from '../../data-plane/config/runtime.js';
import { createNodeMetrics } from '../../data-plane/http/metrics.js';
import { createHttpServer, type DrainResult, type HttpServer, type RouteHandler } from '../../data-plane/http/server.js';
import { createLogger } from '../../data-plane/log.js';
import { LogCapture } from '../support/log-capture.js';
import { waitFor } from '../support/wait.js';

const holder = { current: null } as unknown as RuntimeHolder;
/** Larger than the socket buffers on both sides: a reader that does not read leaves most of it unwritten. */
const BIG = Buffer.alloc(16 * 1024 * 1024, 'a');

/** A server whose `/hold` route answers only when the test says, and the responses it holds. */
async function holdingServer(): Promise<{ server: HttpServer; url: string; held: ServerResponse[] }> {
  const held: ServerResponse[] = [];
  const server = createHttpServer({
    holder,
    logger: createLogger('drain-settle', { level: 'warn', destination: new LogCapture() }),
    metrics: createNodeMetrics(holder),
    routes: new Map<string, RouteHandler>([
      ['/hold', (_req, res) => void held.push(res)],
      ['/big', (_req, res) => void res.writeHead(200, { 'content-length': BIG.length }).end(BIG)],
    ]),
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, held };
}

/** A request whose outcome the test does not need (it is cut): only that it was sent. */
function sendHold(url: string): void {
  const req = request(`${url}/hold`, { agent: false });
  req.on('error', () => undefined);
  req.end();
}

describe('a drain', () => {
  let server: HttpServer | undefined;
  afterEach(() => {
    server?.closeAllConnections();
    server?.close();
  });

  it('writes whole an answer its handler had ended but a slow reader had not taken yet', async () => {
    const t = await holdingServer();
    server = t.server;
    let received = 0;
    let paused: IncomingMessage | null = null;
    const outcome = new Promise<string>((resolve) => {
      const req = request(`${t.url}/big`, { agent: false }, (res) => {
        res.pause();
        paused = res;
        res.on('data', (chunk: Buffer) => (received += chunk.length));
        res.on('end', () => resolve('end'));
        res.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
      });
      req.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
      req.end();
    });
    await waitFor(() => paused !== null, { what: 'the answer started' });

    const drained = t.server.drain(10_000);
    (paused as IncomingMessage | null)?.resume();
    expect(await outcome).toBe('end');
    expect(received).toBe(BIG.length);
    expect(await drained).toMatchObject({ finished: 1, cut: 0 });
  });
});

describe('a drain past its deadline', () => {
  let server: HttpServer | undefined;
  afterEach(() => {
    server?.closeAllConnections();
    server?.close();
  });

  it('returns as soon as the last cut request has answered into its closed connection', async () => {
    const t = await holdingServer();
    server = t.server;
    sendHold(t.url);
    sendHold(t.url);
    await waitFor(() => t.held.length === 2, { what: 'both requests held' });

    let result: DrainResult | null = null;
    void t.server.drain(50).then((r) => (result = r));
    await waitFor(() => t.held.every((res) => res.destroyed), { what: 'both requests cut' });
    t.held[0]?.end('late');
    await new Promise((resolve) => setImmediate(resolve));
    expect(result).toBeNull();
    t.held[1]?.end('late');
    // Within the same turn of the event loop: no poll interval to wait out.
    await new Promise((resolve) => setImmediate(resolve));
    expect(result).toEqual({ finished: 0, refused: 0, streamsEnded: 0, cut: 2 });
  });

  it('gives up on a cut request that never answers, within the bound', async () => {
    const t = await holdingServer();
    server = t.server;
    sendHold(t.url);
    await waitFor(() => t.held.length === 1, { what: 'the request held' });
    const started = Date.now();
    const result = await t.server.drain(50);
    expect(result).toMatchObject({ cut: 1 });
    // The 2 s bound on the last wait (and the 50 ms deadline before it), with room for a slow machine.
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(t.held[0]?.writableEnded).toBe(false);
  });
});
