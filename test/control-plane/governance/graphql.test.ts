/**
 * Governance over GraphQL on every test dialect (issue 7): access profiles (create, list, edit reaching the
 * keys allocated from them as key changes in the next delta, delete refused while in use), provisionUser
 * (user found or created, key shown once with the profile's grants, limits and lifetime), key budgets and
 * rate limits with typed errors, providers (API key write-only, sealed in the snapshot and opened on the
 * node, a change forcing a whole snapshot), and spend (idempotent on request id, exact sums per key and user).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { currentConfigVersion } from '../../../control-plane/repos/config-state.js';
import { recordSpend, type SpendReport } from '../../../control-plane/repos/spend.js';
import { compileSnapshot, readChanges } from '../../../control-plane/snapshot/compile.js';
import { buildRuntime } from '../../../data-plane/config/runtime.js';
import { SnapshotPayloadSchema } from '../../../data-plane/snapshot/schema.js';
import { generateDataKey } from '../../../data-plane/snapshot/seal.js';
import { testDialects } from '../../support/db.js';
import { createHarness, dataOf, type Harness } from '../graphql/harness.js';

interface UserError {
  field: string | null;
  code: string;
}

const trustedKeys = [{ kty: 'OKP' as const, crv: 'Ed25519' as const, x: 'AAAA', kid: 'k' }];
const PROFILE_FIELDS = 'id name servers { server tools } budgets { maxUsd period } rateLimit { requestsPerMinute tokensPerMinute } limitsFallback keyLifetimeDays keyCount';
const KEY_FIELDS = 'id name expiresAt servers { server tools } budgets { maxUsd period } rateLimit { requestsPerMinute tokensPerMinute } limitsFallback accessProfile { name }';

describe.each(testDialects)('governance GraphQL on %s', (dialect) => {
  let h: Harness;

  beforeAll(async () => {
    h = await createHarness(dialect);
    for (const name of ['wiki', 'tickets']) {
      const r = await h.gql<{ createMcpServer: { errors: UserError[] } }>(
        'mutation($name: String!) { createMcpServer(input: { name: $name, connectionType: HTTP, connectionString: "https://mcp.example/x", toolsToExecute: ["*"] }) { errors { code } } }',
        { name },
      );
      expect(dataOf(r).createMcpServer.errors).toEqual([]);
    }
  });
  afterAll(async () => {
    await h?.close();
  });

  async function createProfile(input: Record<string, unknown>) {
    return dataOf(
      await h.gql<{ createAccessProfile: { accessProfile: { id: string; name: string } | null; errors: UserError[] } }>(
        `mutation($input: CreateAccessProfileInput!) { createAccessProfile(input: $input) { accessProfile { ${PROFILE_FIELDS} } errors { field code } } }`,
        { input },
      ),
    ).createAccessProfile;
  }
  type Provisioned = {
    user: { id: string; email: string } | null;
    userCreated: boolean | null;
    key: string | null;
    virtualKey: { id: string; expiresAt: string | null; servers: unknown; budgets: unknown; rateLimit: unknown; accessProfile: { name: string } } | null;
    errors: UserError[];
  };
  async function provision(input: Record<string, unknown>): Promise<Provisioned> {
    return dataOf(
      await h.gql<{ provisionUser: Provisioned }>(
        `mutation($input: ProvisionUserInput!) { provisionUser(input: $input) { user { id email } userCreated key virtualKey { ${KEY_FIELDS} } errors { field code } } }`,
        { input },
      ),
    ).provisionUser;
  }

  it('creates a profile, refuses bad ones with typed errors, and lists it', async () => {
    const ok = await createProfile({
      name: 'engineers',
      servers: [{ server: 'wiki', tools: ['search', 'read'] }, { server: 'tickets', tools: ['*'] }],
      budgets: [{ maxUsd: 5, period: 'DAILY' }, { maxUsd: 50, period: 'MONTHLY' }],
      rateLimit: { requestsPerMinute: 60, tokensPerMinute: 100000 },
      keyLifetimeDays: 30,
    });
    expect(ok.errors).toEqual([]);
    const bad = await createProfile({
      name: 'bad name!',
      servers: [{ server: 'nope', tools: ['*'] }],
      budgets: [{ maxUsd: 0, period: 'DAILY' }],
      rateLimit: {},
      keyLifetimeDays: 0,
    });
    expect(bad.accessProfile).toBeNull();
    expect(bad.errors.map((e) => [e.field, e.code])).toEqual(
      expect.arrayContaining([
        ['input.name', 'INVALID_NAME'],
        ['input.budgets.0.maxUsd', 'INVALID_VALUE'],
        ['input.rateLimit', 'REQUIRED'],
        ['input.keyLifetimeDays', 'INVALID_VALUE'],
      ]),
    );
    const dup = await createProfile({ name: 'engineers', servers: [{ server: 'wiki', tools: ['*'] }] });
    expect(dup.errors).toEqual([{ field: 'input.name', code: 'NAME_TAKEN' }]);
    const unknown = await createProfile({ name: 'x', servers: [{ server: 'nope', tools: ['*'] }] });
    expect(unknown.errors).toEqual([{ field: 'input.servers.0.server', code: 'UNKNOWN_SERVER' }]);

    const list = dataOf(await h.gql<{ accessProfiles: { edges: Array<{ node: { name: string; keyCount: number } }> } }>(`{ accessProfiles { edges { node { ${PROFILE_FIELDS} } } } }`));
    expect(list.accessProfiles.edges.map((e) => [e.node.name, e.node.keyCount])).toEqual([['engineers', 0]]);
  });

  it('provisionUser creates the user and a key from the profile, shown once; a second call reuses the user', async () => {
    const before = Date.now();
    const first = await provision({ email: 'Grace@Example.com', profile: 'engineers' });
    expect(first.errors).toEqual([]);
    expect(first.userCreated).toBe(true);
    expect(first.user?.email).toBe('grace@example.com');
    expect(first.key).toMatch(/^gk_/);
    expect(first.virtualKey).toMatchObject({
      servers: [{ server: 'wiki', tools: ['search', 'read'] }, { server: 'tickets', tools: ['*'] }],
      budgets: [{ maxUsd: 5, period: 'DAILY' }, { maxUsd: 50, period: 'MONTHLY' }],
      rateLimit: { requestsPerMinute: 60, tokensPerMinute: 100000 },
      accessProfile: { name: 'engineers' },
    });
    const expiry = Date.parse(first.virtualKey?.expiresAt ?? '');
    expect(expiry).toBeGreaterThanOrEqual(before + 30 * 86_400_000 - 1000);
    expect(expiry).toBeLessThanOrEqual(Date.now() + 30 * 86_400_000);

    const second = await provision({ email: 'grace@example.com', profile: first.virtualKey?.accessProfile.name, keyName: 'desktop' });
    expect(second.errors).toEqual([]);
    expect(second.userCreated).toBe(false);
    expect(second.user?.id).toBe(first.user?.id);
    expect(second.key).not.toBe(first.key);

    const read = await h.gql(`{ virtualKeys { edges { node { ${KEY_FIELDS} } } } }`);
    expect(JSON.stringify(read)).not.toContain(first.key);

    expect((await provision({ email: 'x@example.com', profile: 'nobody' })).errors).toEqual([{ field: 'input.profile', code: 'NOT_FOUND' }]);
    expect((await provision({ email: 'not-an-email', profile: 'engineers' })).errors).toEqual([{ field: 'input.email', code: 'INVALID_EMAIL' }]);
  });

  it('editing a profile changes every key allocated from it, as key changes in the next delta', async () => {
    const profile = dataOf(await h.gql<{ accessProfile: { id: string } }>('{ accessProfile(id: "engineers") { id } }')).accessProfile;
    const keys = await h.database.db.selectFrom('virtual_keys').select(['id']).where('access_profile_id', '=', profile.id).execute();
    expect(keys).toHaveLength(2);
    const compiled = await compileSnapshot(h.database.db, { box: h.box, dataKey: generateDataKey(), trustedKeys, issuedAt: new Date().toISOString() });
    const since = await currentConfigVersion(h.database.db);

    const r = dataOf(
      await h.gql<{ updateAccessProfile: { accessProfile: { servers: unknown; keyCount: number }; errors: UserError[] } }>(
        `mutation($id: ID!) { updateAccessProfile(input: { id: $id, servers: [{ server: "wiki", tools: ["search"] }], rateLimit: { requestsPerMinute: 10 } }) { accessProfile { ${PROFILE_FIELDS} } errors { field code } } }`,
        { id: profile.id },
      ),
    ).updateAccessProfile;
    expect(r.errors).toEqual([]);
    expect(r.accessProfile).toMatchObject({ servers: [{ server: 'wiki', tools: ['search'] }], keyCount: 2 });
    expect(h.configChanges()).toBeGreaterThan(0);

    const changes = await readChanges(h.database.db, since, compiled.serverSignatures);
    expect(changes.version).toBe(since + 1);
    expect(changes.serversChanged).toBe(false);
    expect(changes.upsertKeys.map((k) => k.id).sort()).toEqual(keys.map((k) => k.id).sort());
    for (const k of changes.upsertKeys) {
      expect(k.servers).toEqual([{ server: 'wiki', tools: ['search'] }]);
      expect(k.limits).toEqual({
        budgets: [{ maxUsd: 5, period: 'DAILY' }, { maxUsd: 50, period: 'MONTHLY' }],
        rateLimit: { requestsPerMinute: 10, tokensPerMinute: null },
        fallback: 'FAIL_CLOSED',
      });
    }
  });

  it('refuses to delete a profile in use, and deletes one that is not', async () => {
    const del = (id: string) =>
      h.gql<{ deleteAccessProfile: { accessProfile: { name: string } | null; errors: UserError[] } }>(
        'mutation($id: ID!) { deleteAccessProfile(input: { id: $id }) { accessProfile { name } errors { field code } } }',
        { id },
      );
    const used = dataOf(await h.gql<{ accessProfile: { id: string } }>('{ accessProfile(id: "engineers") { id } }')).accessProfile;
    expect(dataOf(await del(used.id)).deleteAccessProfile).toEqual({ accessProfile: null, errors: [{ field: 'input.id', code: 'PROFILE_IN_USE' }] });
    const spare = await createProfile({ name: 'spare', servers: [{ server: 'wiki', tools: ['*'] }] });
    expect(dataOf(await del(spare.accessProfile?.id ?? '')).deleteAccessProfile).toEqual({ accessProfile: { name: 'spare' }, errors: [] });
  });

  it('stores key budgets and rate limits, refuses bad ones, and ships them in whole snapshots', async () => {
    const user = dataOf(await h.gql<{ createUser: { user: { id: string } } }>('mutation { createUser(input: { email: "lim@example.com" }) { user { id } } }')).createUser.user;
    const create = (extra: Record<string, unknown>) =>
      h.gql<{ createVirtualKey: { virtualKey: { id: string; budgets: unknown; rateLimit: unknown; limitsFallback: string } | null; errors: UserError[] } }>(
        `mutation($input: CreateVirtualKeyInput!) { createVirtualKey(input: $input) { virtualKey { ${KEY_FIELDS} } errors { field code } } }`,
        { input: { userId: user.id, name: 'lim', servers: [{ server: 'wiki', tools: ['*'] }], ...extra } },
      );
    const ok = dataOf(await create({ budgets: [{ maxUsd: 1.25, period: 'HOURLY' }], rateLimit: { requestsPerMinute: 3 }, limitsFallback: 'LOCAL_ALLOWANCE' })).createVirtualKey;
    expect(ok.errors).toEqual([]);
    expect(ok.virtualKey).toMatchObject({ budgets: [{ maxUsd: 1.25, period: 'HOURLY' }], rateLimit: { requestsPerMinute: 3, tokensPerMinute: null }, limitsFallback: 'LOCAL_ALLOWANCE' });
    const bad = dataOf(await create({ budgets: [{ maxUsd: -1, period: 'DAILY' }, { maxUsd: 2, period: 'HOURLY' }, { maxUsd: 3, period: 'HOURLY' }], rateLimit: { requestsPerMinute: 0 } })).createVirtualKey;
    expect(bad.errors.map((e) => [e.field, e.code])).toEqual([
      ['input.budgets.0.maxUsd', 'INVALID_VALUE'],
      ['input.budgets.2.period', 'DUPLICATE'],
      ['input.rateLimit.requestsPerMinute', 'INVALID_VALUE'],
    ]);

    const dataKey = generateDataKey();
    const compiled = await compileSnapshot(h.database.db, { box: h.box, dataKey, trustedKeys, issuedAt: new Date().toISOString() });
    const payload = SnapshotPayloadSchema.parse(JSON.parse(JSON.stringify(compiled.payload)));
    expect(payload.keyLimits?.[ok.virtualKey?.id ?? '']).toEqual({ budgets: [{ maxUsd: 1.25, period: 'HOURLY' }], rateLimit: { requestsPerMinute: 3, tokensPerMinute: null }, fallback: 'LOCAL_ALLOWANCE' });
    const { runtime } = buildRuntime(payload, dataKey, {});
    const hash = runtime.keyHashById.get(ok.virtualKey?.id ?? '') ?? '';
    expect(runtime.keysByHash.get(hash)?.limits?.rateLimit?.requestsPerMinute).toBe(3);
  });

  it('upsertProvider keeps the API key write-only, seals it into snapshots, and a change needs a whole snapshot', async () => {
    const secret = 'sk-ant-test-0123456789abcdef';
    const upsert = (input: Record<string, unknown>) =>
      h.gql<{ upsertProvider: { provider: { name: string; baseUrl: string; apiKey: string; prices: unknown[] } | null; errors: UserError[] } }>(
        'mutation($input: UpsertProviderInput!) { upsertProvider(input: $input) { provider { name baseUrl apiKey prices { model inputPerMTok outputPerMTok cacheWritePerMTok cacheReadPerMTok } } errors { field code } } }',
        { input },
      );
    const missing = dataOf(await upsert({ name: 'anthropic' })).upsertProvider;
    expect(missing.errors.map((e) => e.code)).toEqual(['REQUIRED', 'REQUIRED']);
    const badUrl = dataOf(await upsert({ name: 'anthropic', baseUrl: 'ftp://x', apiKey: secret })).upsertProvider;
    expect(badUrl.errors).toEqual([{ field: 'input.baseUrl', code: 'INVALID_URL' }]);

    const prices = [{ model: 'claude-sonnet-4*', inputPerMTok: 3, outputPerMTok: 15, cacheWritePerMTok: 3.75, cacheReadPerMTok: 0.3 }];
    const created = dataOf(await upsert({ name: 'anthropic', baseUrl: 'https://api.anthropic.example/', apiKey: secret, prices })).upsertProvider;
    expect(created.errors).toEqual([]);
    expect(created.provider).toEqual({ name: 'anthropic', baseUrl: 'https://api.anthropic.example', apiKey: 'sk-a…cdef', prices });
    const row = await h.database.db.selectFrom('providers').selectAll().executeTakeFirstOrThrow();
    expect(JSON.stringify(row)).not.toContain(secret);
    expect(h.bodies.join('\n')).not.toContain(secret);

    const dataKey = generateDataKey();
    const compiled = await compileSnapshot(h.database.db, { box: h.box, dataKey, trustedKeys, issuedAt: new Date().toISOString() });
    expect(JSON.stringify(compiled.payload)).not.toContain(secret);
    const { runtime } = buildRuntime(SnapshotPayloadSchema.parse(compiled.payload), dataKey, {});
    expect(runtime.providers.get('anthropic')).toMatchObject({ apiKey: secret, unavailable: null, prices });

    const since = await currentConfigVersion(h.database.db);
    expect((await readChanges(h.database.db, since, compiled.serverSignatures)).serversChanged).toBe(false);
    const env = dataOf(await upsert({ name: 'anthropic', apiKey: 'env.ANTHROPIC_KEY' })).upsertProvider;
    expect(env.provider?.apiKey).toBe('env.ANTHROPIC_KEY');
    expect((await readChanges(h.database.db, since, compiled.serverSignatures)).serversChanged).toBe(true);
    const again = await compileSnapshot(h.database.db, { box: h.box, dataKey, trustedKeys, issuedAt: new Date().toISOString() });
    const onNode = buildRuntime(SnapshotPayloadSchema.parse(again.payload), dataKey, {});
    expect(onNode.runtime.providers.get('anthropic')?.unavailable).toMatch(/ANTHROPIC_KEY/);
    expect(onNode.missingEnv).toEqual([{ name: 'ANTHROPIC_KEY', servers: ['provider:anthropic'] }]);
  });

  it('records spend once per request id and shows exact sums per key and per user', async () => {
    const key = await h.database.db.selectFrom('virtual_keys').select(['id', 'user_id']).where('access_profile_id', 'is not', null).executeTakeFirstOrThrow();
    const report = (requestId: string, costNanos: number): SpendReport => ({
      requestId,
      keyId: key.id,
      userId: key.user_id,
      kind: 'llm',
      model: 'claude-sonnet-4-5',
      inputTokens: 100,
      outputTokens: 20,
      cacheCreationTokens: 7,
      cacheReadTokens: 3,
      costNanos,
      at: new Date().toISOString(),
    });
    expect(await recordSpend(h.database.db, 'node-a', [report('r1', 1_234_567), report('r2', 100)])).toBe(2);
    // A retried report (lost answer) and a second node reporting the same request count once.
    expect(await recordSpend(h.database.db, 'node-b', [report('r1', 1_234_567), report('r3', 3)])).toBe(1);
    const versionBefore = await currentConfigVersion(h.database.db);

    const spend = dataOf(
      await h.gql<{ virtualKey: { spend: Record<string, unknown>; budgetUsage: Array<{ period: string; spentUsd: number }>; user: { spend: { costNanoUsd: string } } } }>(
        `query($id: ID!) { virtualKey(id: $id) { spend { requests costUsd costNanoUsd inputTokens outputTokens cacheCreationTokens cacheReadTokens } budgetUsage { period maxUsd spentUsd remainingUsd windowStart windowEnd } user { spend { costNanoUsd } } } }`,
        { id: key.id },
      ),
    ).virtualKey;
    expect(spend.spend).toEqual({ requests: 3, costUsd: 0.00123467, costNanoUsd: '1234670', inputTokens: 300, outputTokens: 60, cacheCreationTokens: 21, cacheReadTokens: 9 });
    expect(spend.budgetUsage.map((u) => [u.period, u.spentUsd])).toEqual([['DAILY', 0.00123467], ['MONTHLY', 0.00123467]]);
    expect(spend.user.spend.costNanoUsd).toBe('1234670');
    const ranged = dataOf(
      await h.gql<{ virtualKey: { future: { requests: number }; past: { requests: number } } }>(
        `query($id: ID!, $soon: DateTime!) { virtualKey(id: $id) { future: spend(from: $soon) { requests } past: spend(to: "2000-01-01T00:00:00Z") { requests } } }`,
        { id: key.id, soon: new Date(Date.now() + 60_000).toISOString() },
      ),
    ).virtualKey;
    expect(ranged).toEqual({ future: { requests: 0 }, past: { requests: 0 } });
    const badRange = await h.gql(`query($id: ID!) { virtualKey(id: $id) { spend(from: "yesterday") { requests } } }`, { id: key.id });
    expect(badRange.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'from', reason: 'INVALID_DATETIME' });
    expect(await currentConfigVersion(h.database.db)).toBe(versionBefore);
  });
});
