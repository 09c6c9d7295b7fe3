/**
 * Users and virtual keys over GraphQL, on every test dialect: the `gk_` value shown once and only its hash
 * at rest, rotation and revocation, expiry and grant validation, config-version bumps, and pagination
 * (first/after) with the per-user filter.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashToken } from '../../../control-plane/crypto/tokens.js';
import { recordToolCatalogs } from '../../../control-plane/repos/mcp-servers.js';
import { testDialects } from '../../support/db.js';
import { createHarness, dataOf, type Harness } from './harness.js';

interface UserError {
  field: string | null;
  code: string;
  message: string;
}
interface KeyView {
  id: string;
  name: string;
  keyPreview: string;
  revoked: boolean;
  revokedAt: string | null;
  expiresAt: string | null;
  servers: Array<{ server: string; tools: string[] }>;
  user: { id: string; email: string };
}
type IssuedPayload = { virtualKey: KeyView | null; key: string | null; errors: UserError[] };

const KEY_FIELDS = 'id name keyPreview revoked revokedAt expiresAt servers { server tools } user { id email }';
const CREATE_KEY = `mutation($input: CreateVirtualKeyInput!) {
  createVirtualKey(input: $input) { virtualKey { ${KEY_FIELDS} } key errors { field code message } }
}`;
const ROTATE_KEY = `mutation($id: ID!) { rotateVirtualKey(input: { id: $id }) { virtualKey { ${KEY_FIELDS} } key errors { field code message } } }`;
const REVOKE_KEY = `mutation($id: ID!) { revokeVirtualKey(input: { id: $id }) { virtualKey { ${KEY_FIELDS} } errors { field code message } } }`;
const UPDATE_KEY = `mutation($input: UpdateVirtualKeyInput!) { updateVirtualKey(input: $input) { virtualKey { ${KEY_FIELDS} } errors { field code message } } }`;

const inOneHour = () => new Date(Date.now() + 3_600_000).toISOString();

describe.each(testDialects)('Users and VirtualKeys GraphQL API on %s', (dialect) => {
  let h: Harness;
  let userId: string;

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

  async function configVersion(): Promise<number> {
    return dataOf(await h.gql<{ configVersion: number }>('{ configVersion }')).configVersion;
  }
  async function createKey(input: Record<string, unknown>): Promise<IssuedPayload> {
    return dataOf(await h.gql<{ createVirtualKey: IssuedPayload }>(CREATE_KEY, { input })).createVirtualKey;
  }
  async function keyRow(id: string) {
    return h.database.db.selectFrom('virtual_keys').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  }

  it('creates a user (email lower-cased) and rejects a bad or taken email', async () => {
    const version = await configVersion();
    const created = dataOf(
      await h.gql<{ createUser: { user: { id: string; email: string; name: string }; errors: UserError[] } }>(
        'mutation { createUser(input: { email: "Ada@Example.com", name: "Ada" }) { user { id email name } errors { field code message } } }',
      ),
    ).createUser;
    expect(created.errors).toEqual([]);
    expect(created.user).toMatchObject({ email: 'ada@example.com', name: 'Ada' });
    userId = created.user.id;
    expect(await configVersion()).toBe(version + 1);

    const bad = dataOf(
      await h.gql<{ createUser: { user: null; errors: UserError[] } }>(
        'mutation { createUser(input: { email: "not-an-email", name: "X" }) { user { id } errors { field code message } } }',
      ),
    ).createUser;
    expect(bad).toEqual({ user: null, errors: [expect.objectContaining({ field: 'input.email', code: 'INVALID_EMAIL' })] });

    const taken = dataOf(
      await h.gql<{ createUser: { errors: UserError[] } }>(
        'mutation { createUser(input: { email: "ADA@example.com", name: "Ada again" }) { errors { field code } } }',
      ),
    ).createUser;
    expect(taken.errors).toEqual([{ field: 'input.email', code: 'EMAIL_TAKEN' }]);
  });

  it('returns the gk_ key once and stores only its hash', async () => {
    const version = await configVersion();
    const changes = h.configChanges();
    const issued = await createKey({ userId, name: 'laptop', servers: [{ server: 'wiki', tools: ['search', 'search'] }], expiresAt: inOneHour() });
    expect(issued.errors).toEqual([]);
    expect(issued.key).toMatch(/^gk_[0-9A-Za-z]{43}$/);
    expect(issued.virtualKey).toMatchObject({
      name: 'laptop',
      revoked: false,
      servers: [{ server: 'wiki', tools: ['search'] }],
      user: { id: userId, email: 'ada@example.com' },
    });
    expect(issued.virtualKey?.keyPreview).toBe(`${issued.key?.slice(0, 6)}…${issued.key?.slice(-4)}`);
    expect(await configVersion()).toBe(version + 1);
    expect(h.configChanges()).toBe(changes + 1);

    const row = await keyRow(issued.virtualKey?.id ?? '');
    expect(row.key_hash).toBe(hashToken(issued.key ?? ''));
    expect(JSON.stringify(row)).not.toContain(issued.key);

    const read = await h.gql(`query($id: ID!) { virtualKey(id: $id) { ${KEY_FIELDS} } }`, { id: issued.virtualKey?.id });
    expect(JSON.stringify(read)).not.toContain(issued.key);
  });

  it('rejects an expiry in the past or unparsable, an unknown server, empty tools and an unknown user', async () => {
    const version = await configVersion();
    const past = await createKey({ userId, name: 'old', servers: [], allowNoServers: true, expiresAt: '2001-01-01T00:00:00Z' });
    expect(past).toEqual({ virtualKey: null, key: null, errors: [expect.objectContaining({ field: 'input.expiresAt', code: 'EXPIRES_IN_PAST' })] });
    const garbage = await createKey({ userId, name: 'old', servers: [], allowNoServers: true, expiresAt: 'next tuesday' });
    expect(garbage.errors).toEqual([expect.objectContaining({ field: 'input.expiresAt', code: 'INVALID_DATETIME' })]);
    const unknown = await createKey({ userId, name: 'k', servers: [{ server: 'wiki', tools: ['*'] }, { server: 'nope', tools: ['*'] }] });
    expect(unknown.errors).toEqual([expect.objectContaining({ field: 'input.servers.1.server', code: 'UNKNOWN_SERVER' })]);
    const empty = await createKey({ userId, name: 'k', servers: [{ server: 'wiki', tools: [] }] });
    expect(empty.errors).toEqual([expect.objectContaining({ field: 'input.servers.0.tools', code: 'REQUIRED' })]);
    const dup = await createKey({ userId, name: 'k', servers: [{ server: 'wiki', tools: ['a'] }, { server: 'wiki', tools: ['b'] }] });
    expect(dup.errors).toEqual([expect.objectContaining({ field: 'input.servers.1.server', code: 'DUPLICATE' })]);
    const nobody = await createKey({ userId: '00000000-0000-0000-0000-000000000000', name: 'k', servers: [], allowNoServers: true });
    expect(nobody.errors).toEqual([expect.objectContaining({ field: 'input.userId', code: 'NOT_FOUND' })]);
    expect(await configVersion()).toBe(version);
    expect(await h.database.db.selectFrom('virtual_keys').select('id').where('name', '=', 'old').execute()).toEqual([]);
  });

  it('refuses a key with no servers unless allowNoServers, and grants in the stored spelling', async () => {
    const none = await createKey({ userId, name: 'empty', servers: [] });
    expect(none.errors).toEqual([expect.objectContaining({ field: 'input.servers', code: 'NO_SERVERS' })]);
    // Server names are unique ignoring case; the grant is stored as the server is named (nodes match on it).
    const cased = await createKey({ userId, name: 'cased', servers: [{ server: 'WIKI', tools: ['*'] }] });
    expect(cased.errors).toEqual([]);
    expect(cased.virtualKey?.servers).toEqual([{ server: 'wiki', tools: ['*'] }]);
    const cleared = dataOf(await h.gql<{ updateVirtualKey: { errors: UserError[] } }>(UPDATE_KEY, { input: { id: cased.virtualKey?.id, servers: [] } })).updateVirtualKey;
    expect(cleared.errors).toEqual([expect.objectContaining({ field: 'input.servers', code: 'NO_SERVERS' })]);
  });

  it('warns, without refusing, about tools the server lacks or does not allow', async () => {
    const created = await h.gql<{ createMcpServer: { errors: UserError[] } }>(
      'mutation { createMcpServer(input: { name: "narrow", connectionType: HTTP, connectionString: "https://n.example/mcp", toolsToExecute: ["read"] }) { errors { code } } }',
    );
    expect(dataOf(created).createMcpServer.errors).toEqual([]);
    await recordToolCatalogs(h.database.db, [{ server: 'narrow', tools: [{ name: 'read', description: null }, { name: 'write', description: null }] }]);
    const WARNED = `mutation($input: CreateVirtualKeyInput!) { createVirtualKey(input: $input) { key warnings { field code message } errors { code } } }`;
    const payload = dataOf(
      await h.gql<{ createVirtualKey: { key: string | null; warnings: UserError[]; errors: UserError[] } }>(WARNED, {
        input: { userId, name: 'warned', servers: [{ server: 'narrow', tools: ['read', 'write', 'nosuchtool'] }] },
      }),
    ).createVirtualKey;
    expect(payload.errors).toEqual([]);
    expect(payload.key).toMatch(/^gk_/);
    expect(payload.warnings).toEqual([
      { field: 'input.servers.0.tools.1', code: 'TOOL_NOT_EXECUTABLE', message: expect.stringContaining('server "narrow" does not allow "write"') },
      { field: 'input.servers.0.tools.2', code: 'UNKNOWN_TOOL', message: expect.stringContaining('server "narrow" has no tool "nosuchtool"') },
    ]);
    const serverWarnings = dataOf(
      await h.gql<{ updateMcpServer: { warnings: UserError[] } }>('mutation { updateMcpServer(input: { name: "narrow", toolsToExecute: ["read", "nosuchtool"] }) { warnings { field code } } }'),
    ).updateMcpServer.warnings;
    expect(serverWarnings).toEqual([{ field: 'input.toolsToExecute.1', code: 'UNKNOWN_TOOL' }]);
  });

  it('rotates: a new value, a new hash, the old hash gone', async () => {
    const issued = await createKey({ userId, name: 'ci', servers: [{ server: 'tickets', tools: ['*'] }] });
    const id = issued.virtualKey?.id ?? '';
    const before = await keyRow(id);
    const version = await configVersion();
    const rotated = dataOf(await h.gql<{ rotateVirtualKey: IssuedPayload }>(ROTATE_KEY, { id })).rotateVirtualKey;
    expect(rotated.errors).toEqual([]);
    expect(rotated.key).toMatch(/^gk_/);
    expect(rotated.key).not.toBe(issued.key);
    const after = await keyRow(id);
    expect(after.key_hash).toBe(hashToken(rotated.key ?? ''));
    expect(after.key_hash).not.toBe(before.key_hash);
    expect(await h.database.db.selectFrom('virtual_keys').select('id').where('key_hash', '=', before.key_hash).execute()).toEqual([]);
    expect(await configVersion()).toBe(version + 1);
  });

  it('revokes (idempotently) and refuses to rotate a revoked key', async () => {
    const issued = await createKey({ userId, name: 'to-revoke', servers: [], allowNoServers: true });
    const id = issued.virtualKey?.id ?? '';
    const version = await configVersion();
    const revoked = dataOf(await h.gql<{ revokeVirtualKey: { virtualKey: KeyView; errors: UserError[] } }>(REVOKE_KEY, { id })).revokeVirtualKey;
    expect(revoked.errors).toEqual([]);
    expect(revoked.virtualKey.revoked).toBe(true);
    expect(revoked.virtualKey.revokedAt).not.toBeNull();
    expect((await keyRow(id)).revoked_at).not.toBeNull();
    expect(await configVersion()).toBe(version + 1);

    const again = dataOf(await h.gql<{ revokeVirtualKey: { virtualKey: KeyView; errors: UserError[] } }>(REVOKE_KEY, { id })).revokeVirtualKey;
    expect(again.virtualKey.revokedAt).toBe(revoked.virtualKey.revokedAt);
    expect(await configVersion()).toBe(version + 1);

    const rotate = dataOf(await h.gql<{ rotateVirtualKey: IssuedPayload }>(ROTATE_KEY, { id })).rotateVirtualKey;
    expect(rotate).toEqual({ virtualKey: null, key: null, errors: [expect.objectContaining({ field: 'input.id', code: 'KEY_REVOKED' })] });

    const missing = dataOf(await h.gql<{ revokeVirtualKey: { errors: UserError[] } }>(REVOKE_KEY, { id: 'nope' })).revokeVirtualKey;
    expect(missing.errors).toEqual([expect.objectContaining({ field: 'input.id', code: 'NOT_FOUND' })]);
  });

  it('updates name, grants and expiry; null clears the expiry', async () => {
    const issued = await createKey({ userId, name: 'edit-me', servers: [{ server: 'wiki', tools: ['*'] }], expiresAt: inOneHour() });
    const id = issued.virtualKey?.id ?? '';
    const version = await configVersion();
    const updated = dataOf(
      await h.gql<{ updateVirtualKey: { virtualKey: KeyView; errors: UserError[] } }>(UPDATE_KEY, {
        input: { id, name: 'edited', servers: [{ server: 'tickets', tools: ['create_ticket'] }], expiresAt: null },
      }),
    ).updateVirtualKey;
    expect(updated.errors).toEqual([]);
    expect(updated.virtualKey).toMatchObject({ name: 'edited', expiresAt: null, servers: [{ server: 'tickets', tools: ['create_ticket'] }] });
    expect(await configVersion()).toBe(version + 1);

    const past = dataOf(
      await h.gql<{ updateVirtualKey: { errors: UserError[] } }>(UPDATE_KEY, { input: { id, expiresAt: '2000-01-01T00:00:00Z' } }),
    ).updateVirtualKey;
    expect(past.errors).toEqual([expect.objectContaining({ field: 'input.expiresAt', code: 'EXPIRES_IN_PAST' })]);
  });

  it('pages keys with first/after, filtered by user, and through User.virtualKeys', async () => {
    const other = dataOf(
      await h.gql<{ createUser: { user: { id: string } } }>('mutation { createUser(input: { email: "grace@example.com" }) { user { id } } }'),
    ).createUser.user.id;
    for (let i = 0; i < 7; i++) expect((await createKey({ userId: other, name: `g${i}`, servers: [], allowNoServers: true })).errors).toEqual([]);

    type Page = { edges: Array<{ node: { name: string } }>; pageInfo: { hasNextPage: boolean; hasPreviousPage: boolean; endCursor: string } };
    const names: string[] = [];
    let after: string | null = null;
    let pages = 0;
    for (;;) {
      const page: Page = dataOf(
        await h.gql<{ virtualKeys: Page }>(
          'query($u: ID, $after: String) { virtualKeys(userId: $u, first: 3, after: $after) { edges { node { name } } pageInfo { hasNextPage hasPreviousPage endCursor } } }',
          { u: other, after },
        ),
      ).virtualKeys;
      pages++;
      expect(page.pageInfo.hasPreviousPage).toBe(after !== null);
      names.push(...page.edges.map((e) => e.node.name));
      if (!page.pageInfo.hasNextPage) break;
      after = page.pageInfo.endCursor;
    }
    expect(pages).toBe(3);
    expect(names).toEqual(['g0', 'g1', 'g2', 'g3', 'g4', 'g5', 'g6']);

    const nested = dataOf(
      await h.gql<{ user: { virtualKeys: { edges: Array<{ node: { name: string; user: { id: string } } }> } } }>(
        'query($id: ID!) { user(id: $id) { virtualKeys(first: 2) { edges { node { name user { id } } } } } }',
        { id: other },
      ),
    ).user;
    expect(nested.virtualKeys.edges.map((e) => e.node.name)).toEqual(['g0', 'g1']);
    expect(nested.virtualKeys.edges.every((e) => e.node.user.id === other)).toBe(true);

    const users = dataOf(await h.gql<{ users: { edges: Array<{ node: { email: string } }> } }>('{ users(first: 1) { edges { node { email } } } }')).users;
    expect(users.edges).toHaveLength(1);
  });

  it('deleting a user deletes their keys and bumps the version', async () => {
    const u = dataOf(
      await h.gql<{ createUser: { user: { id: string } } }>('mutation { createUser(input: { email: "leaver@example.com" }) { user { id } } }'),
    ).createUser.user.id;
    const k = await createKey({ userId: u, name: 'temp', servers: [], allowNoServers: true });
    const version = await configVersion();
    const deleted = dataOf(
      await h.gql<{ deleteUser: { user: { email: string }; errors: UserError[] } }>(
        'mutation($id: ID!) { deleteUser(input: { id: $id }) { user { email } errors { code } } }',
        { id: u },
      ),
    ).deleteUser;
    expect(deleted).toEqual({ user: { email: 'leaver@example.com' }, errors: [] });
    expect(await configVersion()).toBe(version + 1);
    expect(await h.database.db.selectFrom('virtual_keys').select('id').where('id', '=', k.virtualKey?.id ?? '').execute()).toEqual([]);
  });
});
