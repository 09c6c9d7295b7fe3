/**
 * Access profiles in configuration documents (issue 7), on every test dialect: `access_profiles` (article
 * spelling) creates profiles with grants, budgets, a rate limit and a lifetime; re-applying changes nothing;
 * an edit is an UPDATE of exactly the changed fields and reaches the keys allocated from the profile;
 * export writes the section back and export → apply is a no-op; bad entries are reported at their paths.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyConfig } from '../../../control-plane/config/apply.js';
import { exportConfig } from '../../../control-plane/config/export.js';
import { provisionUser } from '../../../control-plane/repos/access-profiles.js';
import { InputError } from '../../../control-plane/repos/errors.js';
import { getVirtualKey } from '../../../control-plane/repos/virtual-keys.js';
import { testDialects } from '../../support/db.js';
import { createHarness, type Harness } from '../graphql/harness.js';

const doc = (tools: string[], rpm: number) => ({
  mcp_servers: [{ name: 'crm', connection_type: 'http', connection_string: 'https://crm.example/mcp', tools_to_execute: ['*'] }],
  access_profiles: [
    { name: 'support', servers: [{ server: 'crm', tools }], budget: { daily_usd: 5 }, rate_limit: { rpm }, key_lifetime_days: 30, limits_fallback: 'local_allowance' },
  ],
});

describe.each(testDialects)('access profiles in documents on %s', (dialect) => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness(dialect);
  });
  afterAll(async () => {
    await h?.close();
  });

  it('creates, re-applies as a no-op, updates exactly what changed (keys follow), and round-trips through export', async () => {
    const first = await applyConfig(h.database.db, h.box, doc(['search', 'read'], 60));
    expect(first.changes.map((c) => [c.kind, c.action, c.name])).toEqual([
      ['MCP_SERVER', 'CREATE', 'crm'],
      ['ACCESS_PROFILE', 'CREATE', 'support'],
    ]);
    const issued = await provisionUser(h.database.db, { email: 'sam@example.com', profile: 'support' });
    expect((await applyConfig(h.database.db, h.box, doc(['search', 'read'], 60))).changes).toEqual([]);

    const edit = await applyConfig(h.database.db, h.box, doc(['search'], 10));
    expect(edit.changes).toEqual([
      expect.objectContaining({ kind: 'ACCESS_PROFILE', action: 'UPDATE', name: 'support', fields: [expect.objectContaining({ field: 'servers' }), expect.objectContaining({ field: 'rateLimit' })] }),
    ]);
    const key = await getVirtualKey(h.database.db, issued.virtualKey.id);
    expect(key?.servers).toEqual([{ server: 'crm', tools: ['search'] }]);
    expect(key?.rateLimit).toEqual({ requestsPerMinute: 10, tokensPerMinute: null });
    expect(key?.limitsFallback).toBe('LOCAL_ALLOWANCE');

    const exported = await exportConfig(h.database.db);
    expect(exported.accessProfiles).toEqual([
      { name: 'support', servers: [{ server: 'crm', tools: ['search'] }], budgets: [{ maxUsd: 5, period: 'DAILY' }], rateLimit: { requestsPerMinute: 10 }, limitsFallback: 'LOCAL_ALLOWANCE', keyLifetimeDays: 30 },
    ]);
    expect((await applyConfig(h.database.db, h.box, exported)).changes).toEqual([]);
  });

  it('reports bad profile entries at their document paths and applies nothing', async () => {
    const bad = { access_profiles: [{ name: 'x', servers: [{ server: 'nope', tools: ['*'] }] }, { name: 'bad name!', servers: ['crm'], key_lifetime_days: 0 }] };
    const error = await applyConfig(h.database.db, h.box, bad).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).issues.map((i) => [i.field, i.code])).toEqual(
      expect.arrayContaining([
        ['access_profiles[0].servers[0].server', 'UNKNOWN_SERVER'],
        ['access_profiles[1].name', 'INVALID_NAME'],
      ]),
    );
    expect((await exportConfig(h.database.db)).accessProfiles?.map((p) => p.name)).toEqual(['support']);
  });
});
