/**
 * Who may call the GraphQL API, on every test dialect: no or bad token → 401 UNAUTHENTICATED (for
 * introspection too), VIEWER reads but gets FORBIDDEN on mutations, revoked tokens stop working, the last
 * ADMIN token cannot be revoked; plus the depth/alias limits, field suggestions for ADMIN tokens only, and
 * masking of unexpected errors.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashToken } from '../../../control-plane/crypto/tokens.js';
import { testDialects } from '../../support/db.js';
import { createHarness, dataOf, type Harness } from './harness.js';

interface UserError {
  field: string | null;
  code: string;
}
type TokenPayload = { adminToken: { id: string; role: string; tokenPreview: string } | null; token: string | null; errors: UserError[] };

const CREATE_TOKEN = `mutation($name: String!, $role: AdminRole!) {
  createAdminToken(input: { name: $name, role: $role }) { adminToken { id role tokenPreview } token errors { field code } }
}`;
const REVOKE_TOKEN = `mutation($id: ID!) { revokeAdminToken(input: { id: $id }) { adminToken { id revoked } errors { field code } } }`;

describe.each(testDialects)('GraphQL auth and limits on %s', (dialect) => {
  let h: Harness;

  beforeAll(async () => {
    h = await createHarness(dialect);
  });
  afterAll(async () => {
    await h?.close();
  });

  async function issue(role: 'ADMIN' | 'VIEWER', name = `${role.toLowerCase()}-token`): Promise<{ id: string; token: string }> {
    const payload = dataOf(await h.gql<{ createAdminToken: TokenPayload }>(CREATE_TOKEN, { name, role })).createAdminToken;
    expect(payload.errors).toEqual([]);
    return { id: payload.adminToken?.id ?? '', token: payload.token ?? '' };
  }

  it('answers a request without a token with 401 UNAUTHENTICATED, introspection included', async () => {
    for (const query of ['{ configVersion }', '{ __schema { types { name } } }', 'mutation { createUser(input: { email: "x@example.com" }) { errors { code } } }']) {
      const response = await h.gql(query, undefined, null);
      expect(response.status).toBe(401);
      expect(response.data ?? null).toBeNull();
      expect(response.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    }
    expect(await h.database.db.selectFrom('users').select('id').execute()).toEqual([]);
  });

  it('refuses an unknown token, a malformed header, and a virtual key', async () => {
    for (const token of ['gha_not-a-real-token', '']) {
      const response = await h.gql('{ configVersion }', undefined, token);
      expect(response.status).toBe(401);
      expect(response.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    }
    const basic = await h.fetch({
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Basic ${Buffer.from('a:b').toString('base64')}` },
      body: JSON.stringify({ query: '{ configVersion }' }),
    });
    expect(basic.status).toBe(401);
    expect(basic.headers.get('www-authenticate')).toMatch(/^Bearer/);
  });

  it('lets an ADMIN token query and see who it is', async () => {
    const viewer = dataOf(await h.gql<{ viewer: { name: string; role: string } }>('{ viewer { name role } configVersion }')).viewer;
    expect(viewer).toEqual({ name: 'bootstrap', role: 'ADMIN' });
  });

  it('issues admin tokens shown once, hashed at rest', async () => {
    const { id, token } = await issue('VIEWER', 'dashboards');
    expect(token).toMatch(/^gha_/);
    const row = await h.database.db.selectFrom('admin_tokens').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    expect(row.token_hash).toBe(hashToken(token));
    expect(JSON.stringify(row)).not.toContain(token);
    const list = await h.gql('{ adminTokens(first: 10) { edges { node { id name role tokenPreview revoked } } } }');
    expect(JSON.stringify(list)).not.toContain(token);
  });

  it('lets a VIEWER query but not mutate (FORBIDDEN, nothing changed)', async () => {
    const viewer = await issue('VIEWER');
    const read = await h.gql<{ configVersion: number; mcpServers: { edges: unknown[] } }>('{ configVersion mcpServers { edges { cursor } } }', undefined, viewer.token);
    expect(read.status).toBe(200);
    expect(dataOf(read).configVersion).toBeGreaterThan(0);

    const version = dataOf(read).configVersion;
    const write = await h.gql(
      'mutation { createMcpServer(input: { name: "sneaky", connectionType: HTTP, connectionString: "https://x.example" }) { errors { code } } }',
      undefined,
      viewer.token,
    );
    expect(write.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expect(write.data ?? null).toBeNull();
    const tokenWrite = await h.gql(CREATE_TOKEN, { name: 'escalate', role: 'ADMIN' }, viewer.token);
    expect(tokenWrite.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expect(dataOf(await h.gql<{ configVersion: number }>('{ configVersion }')).configVersion).toBe(version);
    expect(await h.database.db.selectFrom('mcp_servers').select('id').where('name', '=', 'sneaky').execute()).toEqual([]);
  });

  it('refuses a revoked admin token', async () => {
    const admin = await issue('ADMIN', 'short-lived');
    expect((await h.gql('{ configVersion }', undefined, admin.token)).status).toBe(200);
    const revoked = dataOf(await h.gql<{ revokeAdminToken: { adminToken: { revoked: boolean }; errors: UserError[] } }>(REVOKE_TOKEN, { id: admin.id }))
      .revokeAdminToken;
    expect(revoked).toEqual({ adminToken: { id: admin.id, revoked: true }, errors: [] });
    const after = await h.gql('{ configVersion }', undefined, admin.token);
    expect(after.status).toBe(401);
    expect(after.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });

  it('will not revoke the last active ADMIN token', async () => {
    const tokens = await h.database.db.selectFrom('admin_tokens').select(['id', 'role', 'revoked_at']).execute();
    const activeAdmins = tokens.filter((t) => t.role === 'ADMIN' && t.revoked_at === null);
    expect(activeAdmins).toHaveLength(1);
    const last = dataOf(await h.gql<{ revokeAdminToken: { errors: UserError[] } }>(REVOKE_TOKEN, { id: activeAdmins[0]?.id })).revokeAdminToken;
    expect(last.errors).toEqual([{ field: 'input.id', code: 'LAST_ADMIN_TOKEN' }]);
    expect((await h.gql('{ configVersion }')).status).toBe(200);
  });

  it('rejects a query deeper than the limit, and too many aliases', async () => {
    // users → virtualKeys → user → virtualKeys → … : legal by the schema, refused by depth.
    const deep = `{ users { edges { node { virtualKeys { edges { node { user { virtualKeys { edges { node { user { email } } } } } } } } } } } }`;
    const response = await h.gql(deep);
    expect(response.data ?? null).toBeNull();
    expect(response.errors?.[0]?.message).toMatch(/depth/i);

    const aliases = `{ ${Array.from({ length: 20 }, (_, i) => `a${i}: configVersion`).join(' ')} }`;
    const aliased = await h.gql(aliases);
    expect(aliased.errors?.[0]?.message).toMatch(/alias/i);
  });

  it('accepts introspection with a token and serves GraphiQL to a browser', async () => {
    const introspection = await h.gql<{ __schema: { queryType: { name: string } } }>('{ __schema { queryType { name } } }');
    expect(dataOf(introspection).__schema.queryType.name).toBe('Query');
    const page = await h.fetch({ method: 'GET', headers: { accept: 'text/html' } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('Gatehouse');
  });

  it('suggests field and enum names to ADMIN tokens only; without a token nothing is validated at all', async () => {
    const typos = ['{ mcpServer(name: "x") { nam } }', 'mutation { createMcpServer(input: { name: "x", connectionType: HTTPS }) { errors { code } } }'];
    for (const query of typos) {
      const admin = await h.gql(query);
      expect(admin.errors?.[0]?.message).toMatch(/Did you mean "?(the enum value )?"?(name|HTTPS?)"?\?/);
    }
    const viewer = await issue('VIEWER', 'suggestion-viewer');
    for (const query of typos) {
      const response = await h.gql(query, undefined, viewer.token);
      expect(response.errors?.[0]?.message).toMatch(/^(Cannot query field|Value|Enum)/);
      expect(response.errors?.[0]?.message).not.toMatch(/Did you mean/);
    }
    // Authentication comes before parsing and validation: a caller without a token learns nothing.
    const anonymous = await h.gql(typos[0]!, undefined, null);
    expect(anonymous.status).toBe(401);
    expect(anonymous.errors?.map((e) => e.message)).toEqual(['an admin token is required: send Authorization: Bearer <token>']);
  });

  it('masks unexpected errors: no internal message reaches the client', async () => {
    const now = new Date().toISOString();
    await h.database.db
      .insertInto('mcp_servers')
      .values({
        id: 'corrupt',
        name: 'corrupt',
        connection_type: 'HTTP',
        connection_string: 'https://x.example',
        stdio_command: null,
        stdio_args: '[]',
        stdio_env: '{}',
        auth_type: 'NONE',
        headers: '{not json',
        per_user_header_keys: '[]',
        tools_to_execute: '[]',
        allowed_extra_headers: '[]',
        tool_timeout_ms: 1,
        disabled: 0,
        status: 'ACTIVE',
        tools: null,
        created_at: now,
        updated_at: now,
      })
      .execute();
    try {
      const response = await h.gql('{ mcpServer(name: "corrupt") { name } }');
      expect(response.errors?.[0]?.message).toBe('Unexpected error.');
      expect(response.errors?.[0]?.extensions?.code).toBe('INTERNAL_SERVER_ERROR');
      expect(JSON.stringify(response)).not.toMatch(/JSON|position|stack/i);
    } finally {
      await h.database.db.deleteFrom('mcp_servers').where('id', '=', 'corrupt').execute();
    }
  });
});
