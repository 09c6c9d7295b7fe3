/**
 * A tools/list that skips a failing upstream says which one, in the log and in the request's record
 * (issue 5 item 4), while the other servers' tools are still listed.
 */
import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RequestRecord } from '../../data-plane/pipeline/context.js';
import { startHttpUpstream, type HttpUpstream } from '../support/upstreams.js';
import { waitFor } from '../support/wait.js';
import { buildSnapshot, postMcp, startTestNode, type BuiltSnapshot, type TestNode } from './helpers.js';

let upstream: HttpUpstream;
let node: TestNode;
let snapshot: BuiltSnapshot;
const records: RequestRecord[] = [];

/** A port nothing listens on (bound, then closed). */
async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

beforeAll(async () => {
  upstream = await startHttpUpstream();
  node = await startTestNode({ hooks: { onRecord: (record) => records.push(record) } });
  snapshot = await buildSnapshot({
    servers: [
      { name: 'crm', url: upstream.url },
      { name: 'dead', url: `http://127.0.0.1:${await deadPort()}/mcp` },
    ],
    keys: [{ name: 'dev', servers: [{ server: 'crm', tools: ['echo'] }, { server: 'dead', tools: ['*'] }] }],
  });
  node.apply(snapshot);
});

afterAll(async () => {
  await node?.close();
  await upstream?.close();
});

describe('tools/list with a failing upstream', () => {
  it('lists the others, and names the skipped server in the log and the record', async () => {
    const res = await postMcp(node.mcpUrl, { jsonrpc: '2.0', id: 1, method: 'tools/list' }, { authorization: `Bearer ${snapshot.keyValues.dev ?? ''}` });
    const body = (await res.json()) as { result: { tools: { name: string }[] } };
    expect(body.result.tools.map((t) => t.name)).toEqual(['crm-echo']);
    const record = await waitFor(() => records.find((r) => r.method === 'tools/list'));
    expect(record.reason).toBe('skipped: dead');
    expect(node.logs.text()).toMatch(/"server":"dead".*tools\/list skipped an upstream/);
  });
});
