/**
 * Access profiles in configuration documents (issue 7), on every test dialect: `access_profiles` (article
 * spelling) creates profiles with grants, budgets, a rate limit and a lifetime; re-applying changes nothing;
 * an edit is an UPDATE of exactly the changed fields and reaches the keys allocated from the profile;
 * export writes the section back and export → apply is a no-op; bad entries are reported at their paths.
 * `providers`: created with a sealed key, re-applied as a no-op (the key compared by opening it), exported
 * with the key as a reference only, a changed key reported without its value.
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

  it('applies providers: sealed key, no-op re-apply, export by reference, key changes never shown', async () => {
    const secret = 'sk-ant-document-secret-0123456789';
    const prices = [{ model: 'claude-*', input_per_mtok: 3, output_per_mtok: 15, cache_write_per_mtok: 3.75, cache_read_per_mtok: 0.3 }];
    const docWith = (apiKey: unknown) => ({ providers: [{ name: 'anthropic', base_url: 'https://api.anthropic.example', api_key: apiKey, prices }] });
    const created = await applyConfig(h.database.db, h.box, docWith(secret));
    expect(created.changes.map((c) => [c.kind, c.action, c.name])).toEqual([['PROVIDER', 'CREATE', 'anthropic']]);
    expect(JSON.stringify(created)).not.toContain(secret);
    expect((await applyConfig(h.database.db, h.box, docWith(secret))).changes).toEqual([]);

    const exported = await exportConfig(h.database.db);
    expect(exported.providers).toEqual([
      { name: 'anthropic', baseUrl: 'https://api.anthropic.example', apiKey: { stored: 'sk-a…6789' }, prices: [{ model: 'claude-*', inputPerMTok: 3, outputPerMTok: 15, cacheWritePerMTok: 3.75, cacheReadPerMTok: 0.3 }] },
    ]);
    expect(JSON.stringify(exported)).not.toContain(secret);
    expect((await applyConfig(h.database.db, h.box, exported)).changes).toEqual([]);

    const rotated = await applyConfig(h.database.db, h.box, docWith('sk-ant-rotated-secret-9876543210'));
    expect(rotated.changes).toEqual([expect.objectContaining({ kind: 'PROVIDER', action: 'UPDATE', fields: [{ field: 'apiKey', before: 'sk-a…6789', after: 'sk-a…3210' }] })]);
    const env = await applyConfig(h.database.db, h.box, docWith('env.ANTHROPIC_API_KEY'));
    expect(env.changes[0]?.fields).toEqual([{ field: 'apiKey', before: 'sk-a…3210', after: 'env.ANTHROPIC_API_KEY' }]);
    const missing = await applyConfig(h.database.db, h.box, { providers: [{ name: 'other', base_url: 'https://x.example' }] }).catch((e: unknown) => e);
    expect((missing as InputError).issues.map((i) => [i.field, i.code])).toEqual([['providers[0].apiKey', 'REQUIRED']]);
  });
});
