/**
 * Change tracking end to end (issue 11): with a control plane and a node (in-process, its runtime read
 * directly), an update, a delete and a re-create each reach the node as a delta (servers and their opened
 * secrets untouched), and the node compacts `deltas.jsonl` into a fresh signed base after N deltas; a
 * restart with the control plane gone replays base + remaining deltas to the same state.
 */
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authenticate } from '../../data-plane/auth/authenticate.js';
import { createLogger } from '../../data-plane/log.js';
import { startNode, type DataPlaneNode } from '../../data-plane/node/node.js';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { openTestDatabase, testDialects, type TestDatabase } from '../support/db.js';
import { LogCapture } from '../support/log-capture.js';
import { waitFor } from '../support/wait.js';

describe.each(testDialects)('config changes reach a node as deltas on %s', (dialect) => {
  let db: TestDatabase | null = null;
  let cp: TestControlPlane;
  let node: DataPlaneNode;
  let logs: LogCapture;
  let userId: string;
  const stateDir = mkdtempSync(join(tmpdir(), 'gatehouse-deltas-'));

  const version = async (): Promise<number> => (await cp.gql<{ configVersion: number }>('{ configVersion }')).configVersion;
  const atVersion = async (): Promise<void> => {
    const v = await version();
    await waitFor(() => (node.holder.current?.version ?? 0) >= v, { what: `node at version ${v}` });
  };
  const auth = (key: string) => {
    const r = authenticate(node.holder.current!, `Bearer ${key}`, Date.now());
    return r.ok ? 'ok' : r.code;
  };
  const createKey = async (name: string): Promise<{ id: string; key: string }> => {
    const r = await cp.gql<{ createVirtualKey: { key: string; virtualKey: { id: string } } }>(
      `mutation($u: ID!, $n: String!) { createVirtualKey(input: { userId: $u, name: $n, servers: [{ server: "crm", tools: ["*"] }] }) { key virtualKey { id } } }`,
      { u: userId, n: name },
    );
    return { id: r.createVirtualKey.virtualKey.id, key: r.createVirtualKey.key };
  };
  const start = (controlPlaneUrl: string): Promise<DataPlaneNode> => {
    logs = new LogCapture();
    return startNode({
      controlPlaneUrl,
      nodeToken: cp.cp.nodeToken,
      port: 0,
      nodeId: `deltas-${dialect}`,
      stateDir,
      trustedJwks: cp.cp.trustedKeys,
      env: {},
      logger: createLogger('test-node', { destination: logs, level: 'debug' }),
      compactAfterDeltas: 4,
    });
  };

  beforeAll(async () => {
    if (dialect === 'postgres') db = await openTestDatabase('postgres');
    cp = await startTestControlPlane(db ? { databaseUrl: db.url, databaseSchema: db.searchPath } : {});
    await cp.gql(`mutation { createMcpServer(input: { name: "crm", connectionType: HTTP, connectionString: "http://127.0.0.1:9/mcp", authType: HEADERS,
      headers: [{ name: "Authorization", value: "Bearer crm-secret" }], toolsToExecute: ["*"] }) { errors { code } } }`);
    userId = (await cp.gql<{ createUser: { user: { id: string } } }>(`mutation { createUser(input: { email: "deltas@example.com" }) { user { id } } }`)).createUser.user.id;
    node = await start(cp.url);
    await waitFor(() => node.holder.current !== null, { what: 'first snapshot' });
  }, 60_000);

  afterAll(async () => {
    await node?.close();
    await cp?.close().catch(() => undefined);
    await db?.close();
  });

  it('an update, a delete and a re-create each arrive as a delta; servers stay as they were', async () => {
    const servers = node.holder.current!.servers;
    const a = await createKey('a');
    const b = await createKey('b');
    await atVersion();
    expect([auth(a.key), auth(b.key)]).toEqual(['ok', 'ok']);

    await cp.gql(`mutation($id: ID!) { revokeVirtualKey(input: { id: $id }) { errors { code } } }`, { id: a.id });
    await atVersion();
    expect(auth(a.key)).toBe('key_revoked');

    await cp.gql(`mutation($id: ID!) { deleteVirtualKey(input: { id: $id }) { errors { code } } }`, { id: b.id });
    await atVersion();
    expect(auth(b.key)).toBe('invalid_key');

    // Re-create: the user deleted (with every key) and created again under the same email.
    await cp.gql(`mutation($id: ID!) { deleteUser(input: { id: $id }) { errors { code } } }`, { id: userId });
    userId = (await cp.gql<{ createUser: { user: { id: string } } }>(`mutation { createUser(input: { email: "deltas@example.com" }) { user { id } } }`)).createUser.user.id;
    const again = await createKey('a');
    await atVersion();
    expect(auth(again.key)).toBe('ok');
    expect(node.holder.current!.keysByHash.size).toBe(1);

    expect(node.holder.current!.servers).toBe(servers);
    expect(logs.lines.filter((l) => l.includes('snapshot applied'))).toHaveLength(1);
    expect(logs.lines.filter((l) => l.includes('snapshot delta applied')).length).toBeGreaterThanOrEqual(5);
  });

  it('compacts deltas.jsonl into a fresh signed base after N deltas, and a restart without the control plane replays to the same state', async () => {
    await waitFor(() => logs.has(/state dir compacted/), { what: 'compaction' });
    const base = JSON.parse(readFileSync(join(stateDir, 'snapshot.json'), 'utf8')) as { snapshot: { payload: string } };
    const baseVersion = (JSON.parse(Buffer.from(base.snapshot.payload, 'base64url').toString('utf8')) as { version: number }).version;
    const firstVersion = Number(/"version":(\d+)[^}]*snapshot applied/.exec(logs.text())?.[1]);
    expect(baseVersion).toBeGreaterThan(firstVersion);
    const lines = () => readFileSync(join(stateDir, 'deltas.jsonl'), 'utf8').split('\n').filter(Boolean).length;
    expect(lines()).toBeLessThan(4);

    const kept = await createKey('after-compaction');
    const revoked = await createKey('revoked-later');
    await cp.gql(`mutation($id: ID!) { revokeVirtualKey(input: { id: $id }) { errors { code } } }`, { id: revoked.id });
    await atVersion();
    const served = node.holder.current!.version;
    await node.close();
    await cp.close();

    node = await start('http://127.0.0.1:9'); // nothing listens there: the node must start from disk
    expect(existsSync(join(stateDir, 'snapshot.json'))).toBe(true);
    expect(node.holder.current?.version).toBe(served);
    expect(auth(kept.key)).toBe('ok');
    expect(auth(revoked.key)).toBe('key_revoked');
  });
});
