/**
 * A node stopped (SIGTERM) while a tool call is in flight, with real processes: it drains. New
 * connections are refused, the call finishes with its result, the process exits 0 and the call's audit
 * event is kept; a session's GET event stream ends at once meanwhile (its client reconnects: a drain that
 * waited on it would take the whole deadline); past GATEHOUSE_DRAIN_MS the call is cut and the node still
 * exits at once. Before, the node closed every connection as soon as it was told to stop, so a call in
 * flight during a rolling deploy failed for its caller.
 *
 * On a connection the drain keeps (a request on it in flight or under way), every request the node reads
 * gets an answer, in order: served if it arrived before the drain, else 503 `not_ready` with Retry-After;
 * the last answer says `Connection: close` and the connection then closes. Before, a request pipelined
 * behind one in flight was dropped unanswered (the first answer closed the connection) and the 503 had
 * no Retry-After.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { once } from 'node:events';
import { join } from 'node:path';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { openServerStream, postMcp, type RawResponse } from '../support/mcp-http.js';
import { spawnNode, type NodeProcess } from '../support/node-process.js';
import { startHttpUpstream, type HttpUpstream } from '../support/upstreams.js';
import { waitFor } from '../support/wait.js';
import { parseResponses, rawRequest, type RawResponse as RawHttpResponse } from '../security/raw-http.js';

/** An upstream whose `hold` tool answers only when the test releases it (or its caller goes). */
interface HoldingUpstream {
  url: string;
  /** Tags of the `hold` calls that arrived. */
  arrived: string[];
  release(tag: string): void;
  close(): Promise<void>;
}

async function holdingUpstream(): Promise<HoldingUpstream> {
  const arrived: string[] = [];
  const releases = new Map<string, () => void>();
  const held = (tag: string, signal: AbortSignal): Promise<void> =>
    new Promise<void>((resolve) => {
      releases.set(tag, resolve);
      signal.addEventListener('abort', () => resolve());
      arrived.push(tag);
    });
  // Stateless: one SDK server and transport per request (never one shared across requests).
  const http: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const server = new McpServer({ name: 'upstream-holding', version: '1.0.0' });
    server.registerTool('hold', { description: 'answers when released', inputSchema: { tag: z.string() } }, async ({ tag }, extra) => {
      await held(tag, extra.signal);
      return { content: [{ type: 'text', text: `released ${tag}` }] };
    });
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.once('close', () => void server.close().catch(() => undefined));
    void server
      .connect(transport)
      .then(() => transport.handleRequest(req, res))
      .catch(() => res.destroy());
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', () => resolve()));
  return {
    url: `http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`,
    arrived,
    release: (tag) => releases.get(tag)?.(),
    async close() {
      for (const release of releases.values()) release();
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}

/** A request on a connection of its own (fetch would reuse an open keep-alive one): its status, or the error code. */
function freshRequest(url: string): Promise<number | string> {
  return new Promise((resolve) => {
    const req = request(`${url}/healthz`, { agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    req.end();
  });
}

/** One raw HTTP/1.1 connection (bytes written as given, pipelining included) and every answer it got. */
interface RawConnection {
  write(bytes: string): void;
  responses(): RawHttpResponse[];
  /** Settles when the node closes the connection (or resets it). */
  closed: Promise<void>;
  isClosed(): boolean;
  destroy(): void;
}

async function rawConnection(url: string): Promise<RawConnection> {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  await once(socket, 'connect');
  let text = '';
  let isClosed = false;
  socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
  // A reset shows as answers missing, which the tests count.
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  void closed.then(() => (isClosed = true));
  return {
    write: (bytes) => void socket.write(bytes),
    responses: () => parseResponses(text),
    closed,
    isClosed: () => isClosed,
    destroy: () => socket.destroy(),
  };
}

describe('a node stopped while a tool call is in flight', () => {
  let upstream: HoldingUpstream;
  /** A stateful upstream, for a session's long-lived GET stream on `/mcp/docs`. */
  let docs: HttpUpstream;
  let cp: TestControlPlane;
  let key: string;
  const nodes: NodeProcess[] = [];

  const start = async (env: Record<string, string> = {}): Promise<NodeProcess> => {
    const node = await spawnNode({ controlPlaneUrl: cp.url, nodeToken: cp.cp.nodeToken as string, env });
    nodes.push(node);
    await waitFor(async () => (await postMcp(node.url, key, { id: 0, method: 'tools/list' })).status === 200, { timeoutMs: 20_000, what: 'the node serving the key' });
    return node;
  };
  const hold = (node: NodeProcess, tag: string): Promise<RawResponse> =>
    postMcp(node.url, key, { id: 1, method: 'tools/call', params: { name: 'slow-hold', arguments: { tag } } });
  /** The call's audit event reached the control plane, or is in the node's outbox to be shipped by its successor. */
  const audited = (node: NodeProcess, tag: string) =>
    waitFor(
      async () => {
        const page = await cp.gql<{ auditEvents: { edges: Array<{ node: { arguments: { tag?: string } | null } }> } }>(
          'query { auditEvents(first: 100, filter: { server: "slow", tool: "hold" }) { edges { node { arguments } } } }',
        );
        if (page.auditEvents.edges.some((e) => e.node.arguments?.tag === tag)) return 'control plane';
        const outbox = join(node.stateDir, 'audit');
        const inOutbox = existsSync(outbox) && readdirSync(outbox).some((f) => f.endsWith('.jsonl') && readFileSync(join(outbox, f), 'utf8').includes(`"${tag}"`));
        return inOutbox ? 'outbox' : false;
      },
      { timeoutMs: 20_000, what: `the audit event of ${tag}` },
    );
  /** A JSON-RPC POST to /mcp as raw bytes, keep-alive. */
  const mcpBytes = (message: Record<string, unknown>): string =>
    rawRequest('POST', '/mcp', [`Authorization: Bearer ${key}`, 'Content-Type: application/json', 'Accept: application/json, text/event-stream'], JSON.stringify({ jsonrpc: '2.0', ...message }), false);
  const holdBytes = (id: number, tag: string): string => mcpBytes({ id, method: 'tools/call', params: { name: 'slow-hold', arguments: { tag } } });
  /** The drain has begun: the node takes no new connection. */
  const draining = (node: NodeProcess) => waitFor(async () => (await freshRequest(node.url)) === 'ECONNREFUSED', { what: 'new connections refused' });
  const exited = (node: NodeProcess, timeoutMs: number) =>
    waitFor(() => node.proc.exitCode !== null || node.proc.signalCode !== null, { timeoutMs, what: 'the node to exit' });

  beforeAll(async () => {
    upstream = await holdingUpstream();
    docs = await startHttpUpstream({ label: 'docs' });
    cp = await startTestControlPlane();
    await cp.gql('mutation($u: String!) { createMcpServer(input: { name: "docs", connectionType: HTTP, connectionString: $u, toolsToExecute: ["*"] }) { errors { code } } }', { u: docs.url });
    await cp.gql('mutation($u: String!) { createMcpServer(input: { name: "slow", connectionType: HTTP, connectionString: $u, toolsToExecute: ["*"] }) { errors { code } } }', { u: upstream.url });
    const user = await cp.gql<{ createUser: { user: { id: string } } }>('mutation { createUser(input: { email: "drain@example.com" }) { user { id } } }');
    const created = await cp.gql<{ createVirtualKey: { key: string } }>(
      'mutation($u: ID!) { createVirtualKey(input: { userId: $u, name: "drain", servers: [{ server: "slow", tools: ["*"] }, { server: "docs", tools: ["*"] }] }) { key } }',
      { u: user.createUser.user.id },
    );
    key = created.createVirtualKey.key;
  }, 60_000);
  afterAll(async () => {
    for (const node of nodes) await node.stop();
    await upstream?.close();
    await docs?.close();
    await cp?.close();
  });

  it('refuses new connections, lets the call finish with its result, exits 0 and keeps its audit event', async () => {
    const node = await start();
    // Settled either way, so a failure shows as the assertion below rather than an unhandled rejection.
    const call = hold(node, 'drain-finished').catch((error: unknown) => error);
    await waitFor(() => upstream.arrived.includes('drain-finished'), { what: 'the call upstream' });

    node.proc.kill('SIGTERM');
    // Not taken any more: refused outright (the listening socket is closed), while the call runs on. A
    // connection accepted just before the signal, its request not yet read, is closed by the drain
    // (ECONNRESET): that is the moment in between, not the answer.
    const seen: (number | string)[] = [];
    await waitFor(async () => {
      const status = await freshRequest(node.url);
      seen.push(status);
      return status === 'ECONNREFUSED';
    }, { what: 'new connections refused' });
    expect(seen.every((status) => status === 200 || status === 'ECONNRESET' || status === 'ECONNREFUSED'), seen.join(', ')).toBe(true);
    expect(node.proc.exitCode).toBeNull();

    upstream.release('drain-finished');
    const answer = await call;
    expect(answer).not.toBeInstanceOf(Error);
    expect((answer as RawResponse).status).toBe(200);
    expect(JSON.stringify((answer as RawResponse).body)).toContain('released drain-finished');
    await exited(node, 20_000);
    expect(node.proc.exitCode).toBe(0);
    expect(node.logs.join('\n')).not.toMatch(/drain deadline passed/);
    await audited(node, 'drain-finished');
  }, 90_000);

  it('past GATEHOUSE_DRAIN_MS cuts the call and still exits at once, keeping its audit event', async () => {
    const node = await start({ GATEHOUSE_DRAIN_MS: '1000' });
    const call = hold(node, 'drain-cut').then(
      (answer) => ({ answer, at: Date.now() }),
      (error: unknown) => ({ answer: error, at: Date.now() }),
    );
    await waitFor(() => upstream.arrived.includes('drain-cut'), { what: 'the call upstream' });

    const stopped = Date.now();
    node.proc.kill('SIGTERM');
    const { answer, at } = await call;
    // Cut (never released upstream), and only once the deadline passed: before, at once.
    expect(answer).toBeInstanceOf(Error);
    expect(at - stopped).toBeGreaterThanOrEqual(900);
    await exited(node, 10_000);
    expect(node.proc.exitCode).toBe(0);
    expect(node.logs.join('\n')).toMatch(/drain deadline passed: cutting the requests still in flight/);
    await audited(node, 'drain-cut');
  }, 90_000);

  it('ends a long-lived GET stream at once (its client reconnects), while the call in flight still finishes', async () => {
    const node = await start();
    const stream = await openServerStream(`${node.url}/mcp/docs`, key);
    const call = hold(node, 'drain-beside-stream').catch((error: unknown) => error);
    await waitFor(() => upstream.arrived.includes('drain-beside-stream'), { what: 'the call upstream' });

    node.proc.kill('SIGTERM');
    // Well before the 10 s drain deadline: nobody waits on a stream, so the drain does not wait for it.
    let streamEnded = false;
    void stream.ended.then(() => (streamEnded = true));
    await waitFor(() => streamEnded, { timeoutMs: 5_000, what: 'the stream ended' });
    expect(node.proc.exitCode).toBeNull();

    upstream.release('drain-beside-stream');
    const answer = await call;
    expect(answer).not.toBeInstanceOf(Error);
    expect(JSON.stringify((answer as RawResponse).body)).toContain('released drain-beside-stream');
    await exited(node, 20_000);
    expect(node.proc.exitCode).toBe(0);
    expect(node.logs.join('\n')).toMatch(/"streamsEnded":1/);
  }, 90_000);

  it('answers the next request on a kept-alive connection with a typed 503, Retry-After and Connection: close', async () => {
    const node = await start();
    const conn = await rawConnection(node.url);
    conn.write(mcpBytes({ id: 1, method: 'tools/list' }));
    await waitFor(() => conn.responses().length === 1, { what: 'the first answer on the kept-alive connection' });
    expect(conn.responses()[0]?.headers.connection).toBe('keep-alive');
    // The connection's next request is in flight when the node is told to stop, so the drain keeps the
    // connection (an idle one it closes at once); the one after is sent once the drain has begun.
    conn.write(holdBytes(2, 'drain-keepalive'));
    await waitFor(() => upstream.arrived.includes('drain-keepalive'), { what: 'the call upstream' });

    node.proc.kill('SIGTERM');
    await draining(node);
    conn.write(mcpBytes({ id: 3, method: 'tools/list' }));
    // Released once the node has read it (else the answer before it may close the connection first).
    await node.waitForLog(/request read while draining/);
    upstream.release('drain-keepalive');
    await conn.closed;
    const answers = conn.responses();
    expect(answers.map((a) => a.status)).toEqual([200, 200, 503]);
    expect(answers[1]?.body).toContain('released drain-keepalive');
    const refused = answers[2] as RawHttpResponse;
    expect(JSON.parse(refused.body)).toEqual({ type: 'not_ready', message: 'this node is shutting down' });
    expect(refused.headers['content-type']).toBe('application/json');
    expect(refused.headers.connection).toBe('close');
    expect(refused.headers['retry-after']).toBe('1');
    await exited(node, 20_000);
    expect(node.proc.exitCode).toBe(0);
  }, 90_000);

  it('answers every request pipelined on a connection, in order, then closes it', async () => {
    const node = await start();
    const conn = await rawConnection(node.url);
    // Three requests in one write, the first two held upstream: the third is answered at once but waits
    // its turn behind them (HTTP/1.1 answers in order).
    conn.write(holdBytes(1, 'pipe-1') + holdBytes(2, 'pipe-2') + mcpBytes({ id: 3, method: 'tools/list' }));
    await waitFor(() => upstream.arrived.includes('pipe-1') && upstream.arrived.includes('pipe-2'), { what: 'both pipelined calls upstream' });

    node.proc.kill('SIGTERM');
    await draining(node);
    // A fourth, sent once the drain has begun: refused, but answered.
    conn.write(mcpBytes({ id: 4, method: 'tools/list' }));
    await node.waitForLog(/request read while draining/);
    upstream.release('pipe-2');
    upstream.release('pipe-1');
    await conn.closed;
    const answers = conn.responses();
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 503]);
    expect(answers[0]?.body).toContain('released pipe-1');
    expect(answers[1]?.body).toContain('released pipe-2');
    expect(answers[2]?.body).toContain('"tools"');
    expect(JSON.parse(answers[3]?.body ?? '')).toMatchObject({ type: 'not_ready' });
    // Only the last answer closes the connection.
    expect(answers.map((a) => a.headers.connection)).toEqual(['keep-alive', 'keep-alive', 'keep-alive', 'close']);
    await exited(node, 20_000);
    expect(node.proc.exitCode).toBe(0);
    expect(node.logs.join('\n')).toMatch(/"refused":1/);
    expect(node.logs.join('\n')).not.toMatch(/drain deadline passed/);
  }, 90_000);
});
