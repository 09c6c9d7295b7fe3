/**
 * Per-row change tracking on every test dialect (issue 11): the triggers of 0004_change_tracking stamp each
 * changed row with the config version of its transaction and leave a tombstone for each delete, so
 * `readChanges` returns exactly what changed since a version: an update, a delete and a re-create each
 * as the right delta, a server change flagged, and a write that is not a config change never hiding one.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SecretBox } from '../../../control-plane/crypto/secret-box.js';
import { currentConfigVersion, pruneTombstones } from '../../../control-plane/repos/config-state.js';
import { createMcpServer, recordToolCatalogs, updateMcpServer } from '../../../control-plane/repos/mcp-servers.js';
import { createUser, deleteUser, updateUser } from '../../../control-plane/repos/users.js';
import { createVirtualKey, deleteVirtualKey, markVirtualKeysUsed, revokeVirtualKey } from '../../../control-plane/repos/virtual-keys.js';
import { compileSnapshot, readChanges, type ServerSignatures } from '../../../control-plane/snapshot/compile.js';
import { generateDataKey } from '../../../data-plane/snapshot/seal.js';
import { openTestDatabase, testDialects, type TestDatabase } from '../../support/db.js';

const trustedKeys = [{ kty: 'OKP' as const, crv: 'Ed25519' as const, x: 'AAAA', kid: 'k' }];

describe.each(testDialects)('change tracking on %s', (dialect) => {
  let t: TestDatabase;
  const box = new SecretBox(new Uint8Array(randomBytes(32)));
  let servers: ServerSignatures;
  let userId: string;

  beforeAll(async () => {
    t = await openTestDatabase(dialect);
    await createMcpServer(t.db, box, { name: 'crm', connectionType: 'HTTP', connectionString: 'http://crm.example/mcp', toolsToExecute: ['*'] });
    userId = (await createUser(t.db, { email: 'ct@example.com' })).id;
    servers = (await compileSnapshot(t.db, { box, dataKey: generateDataKey(), trustedKeys, issuedAt: new Date().toISOString() })).serverSignatures;
  });
  afterAll(async () => {
    await t?.close();
  });

  it('an update reaches the delta as an upsert of that key only', async () => {
    const a = await createVirtualKey(t.db, { userId, name: 'a', servers: [{ server: 'crm', tools: ['*'] }] });
    await createVirtualKey(t.db, { userId, name: 'b', servers: [{ server: 'crm', tools: ['*'] }] });
    const since = await currentConfigVersion(t.db);
    await revokeVirtualKey(t.db, a.virtualKey.id);
    const changes = await readChanges(t.db, since, servers);
    expect(changes.version).toBe(since + 1);
    expect(changes.serversChanged).toBe(false);
    expect(changes.upsertKeys.map((k) => [k.id, k.revoked])).toEqual([[a.virtualKey.id, true]]);
    expect(changes.removeKeyIds).toEqual([]);
    expect(changes.upsertUsers).toEqual([]);
  });

  it('a delete reaches the delta as a removal; a re-create as an upsert, not a removal', async () => {
    const k = await createVirtualKey(t.db, { userId, name: 'gone', servers: [], allowNoServers: true });
    const since = await currentConfigVersion(t.db);
    await deleteVirtualKey(t.db, k.virtualKey.id);
    const afterDelete = await readChanges(t.db, since, servers);
    expect(afterDelete.removeKeyIds).toEqual([k.virtualKey.id]);
    expect(afterDelete.upsertKeys).toEqual([]);

    // The same row id back again (as a restore or an applyConfig with ids would do).
    await t.db.transaction().execute(async (trx) => {
      await trx.updateTable('config_state').set((eb) => ({ version: eb('version', '+', 1) })).where('id', '=', 1).execute();
      const now = new Date().toISOString();
      await trx
        .insertInto('virtual_keys')
        .values({ id: k.virtualKey.id, name: 'back', user_id: userId, key_hash: `h${randomBytes(8).toString('hex')}`, key_preview: 'gk_…', servers: '[]', expires_at: null, revoked_at: null, last_used_at: null, created_at: now, updated_at: now })
        .execute();
    });
    const afterRecreate = await readChanges(t.db, since, servers);
    expect(afterRecreate.removeKeyIds).toEqual([]);
    expect(afterRecreate.upsertKeys.map((x) => [x.id, x.name])).toEqual([[k.virtualKey.id, 'back']]);
    // From the version between the two, the re-create is an upsert as well.
    expect((await readChanges(t.db, afterDelete.version, servers)).upsertKeys.map((x) => x.name)).toEqual(['back']);
  });

  it('deleting a user removes the user and every key of theirs', async () => {
    const u = await createUser(t.db, { email: 'leaving@example.com' });
    const k1 = await createVirtualKey(t.db, { userId: u.id, name: 'k1', servers: [], allowNoServers: true });
    const k2 = await createVirtualKey(t.db, { userId: u.id, name: 'k2', servers: [], allowNoServers: true });
    const since = await currentConfigVersion(t.db);
    await deleteUser(t.db, u.id);
    const changes = await readChanges(t.db, since, servers);
    expect(changes.removeUserIds).toEqual([u.id]);
    expect(changes.removeKeyIds.sort()).toEqual([k1.virtualKey.id, k2.virtualKey.id].sort());
  });

  it('a user update is an upsert of that user', async () => {
    const since = await currentConfigVersion(t.db);
    await updateUser(t.db, { id: userId, email: 'renamed@example.com' });
    expect((await readChanges(t.db, since, servers)).upsertUsers).toEqual([{ id: userId, email: 'renamed@example.com' }]);
  });

  it('flags a server change, but not a tool-catalog sync', async () => {
    const since = await currentConfigVersion(t.db);
    await recordToolCatalogs(t.db, [{ server: 'crm', tools: [{ name: 'search', description: null }] }]);
    expect((await readChanges(t.db, since, servers)).serversChanged).toBe(false);
    await updateMcpServer(t.db, box, { name: 'crm', toolsToExecute: ['search'] });
    expect((await readChanges(t.db, since, servers)).serversChanged).toBe(true);
  });

  it('a write that is not a config change never lowers a row below the version that changed it', async () => {
    const k = await createVirtualKey(t.db, { userId, name: 'used', servers: [], allowNoServers: true });
    const since = await currentConfigVersion(t.db);
    await revokeVirtualKey(t.db, k.virtualKey.id);
    await markVirtualKeysUsed(t.db, [{ id: k.virtualKey.id, at: new Date().toISOString() }]);
    const row = await t.db.selectFrom('virtual_keys').select('change_version').where('id', '=', k.virtualKey.id).executeTakeFirstOrThrow();
    expect(Number(row.change_version)).toBe(since + 1);
    expect((await readChanges(t.db, since, servers)).upsertKeys.map((x) => x.id)).toContain(k.virtualKey.id);
  });

  it('costs the changed rows only: nothing changed, nothing read back', async () => {
    const since = await currentConfigVersion(t.db);
    const changes = await readChanges(t.db, since, servers);
    expect(changes).toMatchObject({ version: since, upsertKeys: [], removeKeyIds: [], upsertUsers: [], removeUserIds: [] });
  });

  it('from a version below the tombstone floor no changes are computed (beforeFloor); from the floor on they are', async () => {
    const since = await currentConfigVersion(t.db);
    const a = await createVirtualKey(t.db, { userId, name: 'prune-a', servers: [{ server: 'crm', tools: ['*'] }] });
    await deleteVirtualKey(t.db, a.virtualKey.id);
    const { floor } = await pruneTombstones(t.db, 0);
    expect(floor).toBeGreaterThan(since);
    expect(await t.db.selectFrom('change_tombstones').select('row_id').execute()).toEqual([]);
    const stale = await readChanges(t.db, since, servers);
    expect(stale).toMatchObject({ beforeFloor: true, upsertKeys: [], removeKeyIds: [] });
    const b = await createVirtualKey(t.db, { userId, name: 'prune-b', servers: [{ server: 'crm', tools: ['*'] }] });
    await deleteVirtualKey(t.db, b.virtualKey.id);
    expect(await readChanges(t.db, floor, servers)).toMatchObject({ beforeFloor: false, removeKeyIds: [b.virtualKey.id] });
  });
});
