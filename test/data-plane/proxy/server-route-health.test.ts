/**
 * `/mcp/{server}` in front of a Streamable HTTP upstream feeds the node's upstream health (issue 5 item 4)
 * as `/mcp` tool calls do: an answer is reachable, a 401/403 to the server's shared credential is
 * credentials_refused while one to a user's own credential leaves it reachable, and no answer is
 * unreachable. Probes are off, so after the eager catalog fetch only the route's requests move the status.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { transportFailure } from '../../../data-plane/upstream/failures.js';
import { waitFor } from '../../support/wait.js';
import { buildSnapshot, perUserTokens, startTestNode, type BuiltSnapshot, type TestNode } from '../helpers.js';

/** When set, the upstream answers every request 401 (a revoked credential). */
let refusing = false;

function rawUpstream(req: IncomingMessage, res: ServerResponse): void {
  let raw = '';
  req.on('data', (chunk: Buffer) => (raw += chunk.toString('utf8')));
  req.on('end', () => {
    if (refusing) {
      res.writeHead(401, { 'www-authenticate': 'Bearer' }).end();
      return;
    }
    if (req.method !== 'POST') {
      res.writeHead(405).end();
      return;
    }
    const message = JSON.parse(raw) as { id?: number; method?: string; params?: { protocolVersion?: string } };
    if (message.id === undefined) {
      res.writeHead(202).end();
      return;
    }
    const result =
      message.method === 'initialize'
        ? { protocolVersion: message.params?.protocolVersion ?? '2025-06-18', capabilities: { tools: {} }, serverInfo: { name: 'raw', version: '1' } }
        : message.method === 'tools/list'
          ? { tools: [{ name: 'answer', inputSchema: { type: 'object' } }] }
          : { content: [{ type: 'text', text: 'ok' }] };
    const body = JSON.stringify({ jsonrpc: '2.0', id: message.id, result });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
  });
}

describe('/mcp/{server} feeds upstream health', () => {
  let upstream: Server;
  let node: TestNode;
  let snapshot: BuiltSnapshot;

  beforeAll(async () => {
    upstream = createServer(rawUpstream);
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/mcp`;
    node = await startTestNode({ hooks: { credentials: perUserTokens('mine') }, pool: { probeIntervalMs: 0 } });
    snapshot = await buildSnapshot({
      servers: [
        { name: 'team', url, headers: { 'x-team-token': { secret: 'shared' } } },
        { name: 'mine', url, authType: 'PER_USER_HEADERS' },
      ],
      users: [{ id: 'alice', email: 'alice@example.com' }],
      keys: [{ name: 'k', userId: 'alice', servers: [{ server: 'team', tools: ['*'] }, { server: 'mine', tools: ['*'] }] }],
    });
    node.apply(snapshot);
    await waitFor(() => node.pool.health.status('team') === 'reachable', { what: 'the eager catalog fetch' });
  });

  afterAll(async () => {
    refusing = false;
    await node?.close();
    upstream?.closeAllConnections();
    await new Promise((resolve) => upstream?.close(resolve));
  });

  const call = (server: string): Promise<Response> =>
    fetch(`${node.url}/mcp/${server}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${snapshot.keyValues.k}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-06-18' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'answer', arguments: {} } }),
    });

  it("a 401 to the shared credential marks the server credentials_refused; one to a user's own does not; an answer makes it reachable again", async () => {
    expect((await call('mine')).status).toBe(200);
    expect(node.pool.health.status('mine')).toBe('reachable');

    refusing = true;
    expect((await call('mine')).status).toBe(502);
    expect(node.pool.health.status('mine')).toBe('reachable');
    expect((await call('team')).status).toBe(502);
    expect(node.pool.health.status('team')).toBe('credentials_refused');
    const reported = node.pool.health.report().find((h) => h.server === 'team');
    expect(reported?.reason).toMatch(/HTTP 401/);
    expect(reported?.reason).not.toContain('shared');

    refusing = false;
    expect((await call('team')).status).toBe(200);
    expect(node.pool.health.status('team')).toBe('reachable');
  });

  it('an upstream that cannot be reached marks the server unreachable', async () => {
    upstream.closeAllConnections();
    await new Promise((resolve) => upstream.close(resolve));
    expect((await call('team')).status).toBe(502);
    expect(node.pool.health.status('team')).toBe('unreachable');
    expect(node.pool.health.report().find((h) => h.server === 'team')?.reason).toMatch(/connection refused/);
  });

  it('no answer in time is a timeout, any other failure to answer unreachable', () => {
    expect(transportFailure('s', 'connection timed out').kind).toBe('timeout');
    expect(transportFailure('s', 'no response headers in time').kind).toBe('timeout');
    expect(transportFailure('s', 'connection refused').kind).toBe('unreachable');
  });
});
