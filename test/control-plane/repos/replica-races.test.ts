/**
 * Replica races (issue 11): two control-plane replicas over one PostgreSQL run the same check-then-write at
 * the same moment. Each side has its own connection pool (as two replicas would), and each round runs both
 * sides concurrently, many rounds, so an unguarded interleaving would show. Fixed by a lock row taken first
 * (repos/locks.ts). SQLite is one process by construction; its single writer serialises these already.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Kysely } from 'kysely';
import { openDatabase } from '../../../control-plane/db/database.js';
import type { Database } from '../../../control-plane/db/schema.js';
import { createAdminToken, ensureBootstrapAdminToken, revokeAdminToken } from '../../../control-plane/repos/admin-tokens.js';
import { InputError } from '../../../control-plane/repos/errors.js';
import { openTestDatabase, postgresUrl, type TestDatabase } from '../../support/db.js';

const ROUNDS = 15;

describe.skipIf(!postgresUrl)('replica races on PostgreSQL', () => {
  let t: TestDatabase;
  let other: Kysely<Database>;

  beforeEach(async () => {
    t = await openTestDatabase('postgres');
    other = openDatabase(t.url, { searchPath: t.searchPath }).db;
  });
  afterEach(async () => {
    await other?.destroy();
    await t?.close();
  });

  async function reset(): Promise<void> {
    await t.db.deleteFrom('admin_tokens').execute();
  }

  it('two replicas starting together with no admin token generate exactly one bootstrap token', async () => {
    for (let round = 0; round < ROUNDS; round++) {
      await reset();
      const results = await Promise.all([ensureBootstrapAdminToken(t.db, undefined), ensureBootstrapAdminToken(other, undefined)]);
      expect(results.filter((r) => r.created)).toHaveLength(1);
      expect(await t.db.selectFrom('admin_tokens').select('id').execute()).toHaveLength(1);
    }
  });

  it('two replicas starting with two different GATEHOUSE_ADMIN_TOKEN values leave exactly one of them active', async () => {
    const values = ['gha_replicaOneValue_0123456789abcdefghijklmn', 'gha_replicaTwoValue_0123456789abcdefghijklmn'] as const;
    for (let round = 0; round < ROUNDS; round++) {
      await reset();
      await Promise.all([ensureBootstrapAdminToken(t.db, values[0]), ensureBootstrapAdminToken(other, values[1])]);
      const active = await t.db.selectFrom('admin_tokens').select('id').where('revoked_at', 'is', null).execute();
      expect(active).toHaveLength(1);
    }
  });

  it('revoking the last two ADMIN tokens at once leaves one active: the guard holds', async () => {
    for (let round = 0; round < ROUNDS; round++) {
      await reset();
      const a = await createAdminToken(t.db, { name: 'a', role: 'ADMIN' });
      const b = await createAdminToken(t.db, { name: 'b', role: 'ADMIN' });
      const outcomes = await Promise.allSettled([revokeAdminToken(t.db, a.adminToken.id), revokeAdminToken(other, b.adminToken.id)]);
      expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
      const refused = outcomes.find((o) => o.status === 'rejected');
      expect(refused?.status === 'rejected' && refused.reason instanceof InputError && refused.reason.code === 'LAST_ADMIN_TOKEN').toBe(true);
      const active = await t.db.selectFrom('admin_tokens').select('id').where('revoked_at', 'is', null).execute();
      expect(active).toHaveLength(1);
    }
  });
});
