/**
 * A tools/list that skips a failing upstream says which one, in the log and in the request's record
 * (issue 5 item 4), while the other servers' tools are still listed.
 */
import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ControlPlaneCredentialSource } from '../../data-plane/credentials/source.js';
import type { RequestRecord } from '../../data-plane/pipeline/context.js';
import type { CredentialAnswer } from '../../data-plane/snapshot/credential-protocol.js';
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

/**
 * A per-user server whose caller's credential cannot be had just now (the control plane unreachable, or it
 * answers `unavailable`) is skipped like an unreachable upstream: before, the caller was offered the
 * connect tool as if never connected, and asked to connect again although their connection was fine (and
 * connecting cannot work while the control plane is away). A caller who is not connected still gets it.
 */
describe('tools/list with a per-user credential that cannot be had', () => {
  let perUserNode: TestNode;
  let perUser: BuiltSnapshot;
  const perUserRecords: RequestRecord[] = [];
  let answer: CredentialAnswer | Error = new Error('connect ECONNREFUSED 127.0.0.1:1');

  beforeAll(async () => {
    const credentials = new ControlPlaneCredentialSource({
      fetch: () => (answer instanceof Error ? Promise.reject(answer) : Promise.resolve(answer)),
      logger: { warn: () => undefined },
    });
    perUserNode = await startTestNode({ hooks: { credentials, onRecord: (record) => perUserRecords.push(record) } });
    perUser = await buildSnapshot({
      servers: [
        { name: 'crm', url: upstream.url },
        { name: 'notes', url: upstream.url, authType: 'PER_USER_HEADERS' },
      ],
      keys: [{ name: 'dev', servers: [{ server: 'crm', tools: ['echo'] }, { server: 'notes', tools: ['*'] }] }],
    });
    perUserNode.apply(perUser);
  });

  afterAll(async () => {
    await perUserNode?.close();
  });

  async function listed(id: number): Promise<{ names: string[]; record: RequestRecord }> {
    const res = await postMcp(perUserNode.mcpUrl, { jsonrpc: '2.0', id, method: 'tools/list' }, { authorization: `Bearer ${perUser.keyValues.dev ?? ''}` });
    const body = (await res.json()) as { result: { tools: { name: string }[] } };
    // The id-th tools/list record is this request's (the tests run in order, one request each).
    const record = await waitFor(() => perUserRecords.filter((r) => r.method === 'tools/list')[id - 1]);
    return { names: body.result.tools.map((t) => t.name), record };
  }

  it('control plane unreachable: the server is skipped and named, no connect tool', async () => {
    answer = new Error('connect ECONNREFUSED 127.0.0.1:1');
    const { names, record } = await listed(1);
    expect(names).toEqual(['crm-echo']);
    expect(record.reason).toBe('skipped: notes');
    expect(perUserNode.logs.text()).toMatch(/"server":"notes".*tools\/list skipped an upstream/);
  });

  it('credential unavailable (needs an admin): skipped too', async () => {
    answer = { status: 'unavailable', message: 'the OAuth client of notes was refused', retryable: false };
    const { names, record } = await listed(2);
    expect(names).toEqual(['crm-echo']);
    expect(record.reason).toBe('skipped: notes');
  });

  it('not connected: the connect tool, as before', async () => {
    answer = { status: 'auth_required', kind: 'headers', url: 'https://cp.example/connect/x', requiredHeaderKeys: ['x-token'], reason: 'not_connected' };
    const { names } = await listed(3);
    expect(names.sort()).toEqual(['crm-echo', 'notes-gatehouse_connect_account']);
  });
});
