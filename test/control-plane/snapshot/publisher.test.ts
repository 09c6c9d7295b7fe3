/**
 * The publisher's fan-out contract (issue 11): a one-key change is signed once and the very same bytes are
 * written to every stream (O(1) per stream); a node reconnecting with its version gets only what changed
 * since; a new node gets a current whole snapshot; once old tombstones are pruned, a node older than the
 * floor gets a whole snapshot (a delta from it could miss a deletion), one above it still a delta.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SecretBox } from '../../../control-plane/crypto/secret-box.js';
import { createLogger } from '../../../control-plane/log.js';
import { currentConfigVersion, pruneTombstones } from '../../../control-plane/repos/config-state.js';
import { createUser } from '../../../control-plane/repos/users.js';
import { createVirtualKey, deleteVirtualKey, revokeVirtualKey } from '../../../control-plane/repos/virtual-keys.js';
import { SnapshotPublisher, type Subscriber } from '../../../control-plane/snapshot/publisher.js';
import { generateNodeKeyPair } from '../../../data-plane/snapshot/seal.js';
import { generateSigningKey, importSigningKey } from '../../../data-plane/snapshot/sign.js';
import { openTestDatabase, testDialects, type TestDatabase } from '../../support/db.js';
import { LogCapture } from '../../support/log-capture.js';

interface Fake extends Subscriber {
  writes: Buffer[][];
}

describe.each(testDialects)('snapshot publisher on %s', (dialect) => {
  let t: TestDatabase;
  let publisher: SnapshotPublisher;
  let userId: string;
  const box = new SecretBox(new Uint8Array(randomBytes(32)));

  const fake = async (nodeId: string, appliedVersion: number | null): Promise<Fake> => {
    const writes: Buffer[][] = [];
    return { nodeId, appliedVersion, sealingJwk: (await generateNodeKeyPair()).publicJwk, writes, write: (c) => void writes.push([...c]), close: () => undefined };
  };
  const text = (chunks: Buffer[]) => Buffer.concat(chunks).toString('utf8');

  beforeAll(async () => {
    t = await openTestDatabase(dialect);
    userId = (await createUser(t.db, { email: 'pub@example.com' })).id;
    const signingKey = await importSigningKey(await generateSigningKey('k1'));
    publisher = new SnapshotPublisher({ db: t.db, box, signingKey, trustedKeys: [signingKey.publicJwk], logger: createLogger('test', { destination: new LogCapture() }), pollIntervalMs: 60_000 });
    await publisher.start();
  });
  afterAll(async () => {
    publisher?.stop();
    await t?.close();
  });

  it('writes one signed delta, the same bytes, to every stream', async () => {
    const nodes = await Promise.all(['a', 'b', 'c'].map((id) => fake(id, null)));
    for (const n of nodes) await publisher.subscribe(n);
    for (const n of nodes) expect(text(n.writes[0]!)).toMatch(/^event: snapshot\ndata: /);
    const k = await createVirtualKey(t.db, { userId, name: 'k', servers: [], allowNoServers: true });
    await publisher.changed();
    await revokeVirtualKey(t.db, k.virtualKey.id);
    await publisher.changed();
    const last = nodes.map((n) => n.writes.at(-1)!);
    expect(last.every((chunks) => chunks.length === 1)).toBe(true);
    // Not equal copies: the one Buffer.
    expect(last[1]![0]).toBe(last[0]![0]);
    expect(last[2]![0]).toBe(last[0]![0]);
    expect(text(last[0]!)).toMatch(/^event: delta\ndata: \{"delta":/);
    expect(publisher.lastPublish).toMatchObject({ kind: 'delta', streams: 3, version: await currentConfigVersion(t.db) });
  });

  it('a node reconnecting with its version gets only the changes since; a new node a whole snapshot', async () => {
    const at = await currentConfigVersion(t.db);
    await createVirtualKey(t.db, { userId, name: 'later', servers: [], allowNoServers: true });
    await publisher.changed();
    const back = await fake('back', at);
    await publisher.subscribe(back);
    expect(back.writes).toHaveLength(1);
    const body = text(back.writes[0]!);
    expect(body).toMatch(/^event: delta\n/);
    const payload = JSON.parse(Buffer.from((JSON.parse(body.slice(body.indexOf('{'))) as { delta: { payload: string } }).delta.payload, 'base64url').toString('utf8')) as {
      baseVersion: number;
      upsertKeys: { name: string }[];
    };
    expect(payload.baseVersion).toBe(at);
    expect(payload.upsertKeys.map((k) => k.name)).toEqual(['later']);

    const fresh = await fake('fresh', null);
    await publisher.subscribe(fresh);
    expect(text(fresh.writes[0]!)).toMatch(/^event: snapshot\n/);
    expect(fresh.writes[0]!.length).toBe(3); // head, the shared signed snapshot, this node's wrapped key
  });

  it('after pruning, a node below the tombstone floor gets a whole snapshot; one above it a delta with the deletion', async () => {
    const decode = (body: string) =>
      JSON.parse(Buffer.from((JSON.parse(body.slice(body.indexOf('{'))) as { delta: { payload: string } }).delta.payload, 'base64url').toString('utf8')) as {
        baseVersion: number;
        removeKeyIds: string[];
      };
    // Unpublished first, so no cached delta starts at `old`: the stale node's answer is computed now.
    await createVirtualKey(t.db, { userId, name: 'pre', servers: [], allowNoServers: true });
    const old = await currentConfigVersion(t.db);
    const gone = await createVirtualKey(t.db, { userId, name: 'gone', servers: [], allowNoServers: true });
    await deleteVirtualKey(t.db, gone.virtualKey.id);
    const mid = await currentConfigVersion(t.db);
    const gone2 = await createVirtualKey(t.db, { userId, name: 'gone2', servers: [], allowNoServers: true });
    await deleteVirtualKey(t.db, gone2.virtualKey.id);
    await publisher.changed();

    const { floor, pruned } = await pruneTombstones(t.db, 1);
    expect(pruned).toBeGreaterThanOrEqual(1);
    expect(floor).toBeGreaterThan(old);
    expect(floor).toBeLessThanOrEqual(mid);
    const left = await t.db.selectFrom('change_tombstones').select(['row_id', 'change_version']).execute();
    expect(left.map((r) => r.row_id)).toEqual([gone2.virtualKey.id]);

    const stale = await fake('stale', old);
    await publisher.subscribe(stale);
    expect(stale.writes).toHaveLength(1);
    expect(text(stale.writes[0]!)).toMatch(/^event: snapshot\n/);

    const recent = await fake('recent', mid);
    await publisher.subscribe(recent);
    const body = text(recent.writes[0]!);
    expect(body).toMatch(/^event: delta\n/);
    expect(decode(body)).toMatchObject({ baseVersion: mid, removeKeyIds: [gone2.virtualKey.id] });

    // Pruning again with room to spare keeps what is left and never lowers the floor.
    expect(await pruneTombstones(t.db, 10)).toEqual({ floor, pruned: 0 });
  });
});
