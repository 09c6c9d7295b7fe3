/**
 * McpServer over GraphQL, on every test dialect: validation as user errors, secrets write-only (never in
 * any response, never plaintext at rest), patches, renames and deletes keeping key grants true, and a
 * config-version bump (with a publish request) per change.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDialects } from '../../support/db.js';
import { createHarness, dataOf, type Harness } from './harness.js';

const SECRET = 'sk-live-THIS-IS-A-SECRET-123456';

const SERVER_FIELDS = `
  id name connectionType connectionString authType status disabled toolTimeoutMs
  toolsToExecute allowedExtraHeaders perUserHeaderKeys tools { name }
  headers { name value source }
  stdio { command args env { name value source } }
`;

const CREATE = `mutation($input: CreateMcpServerInput!) {
  createMcpServer(input: $input) { mcpServer { ${SERVER_FIELDS} } errors { field code message } }
}`;
const UPDATE = `mutation($input: UpdateMcpServerInput!) {
  updateMcpServer(input: $input) { mcpServer { ${SERVER_FIELDS} } errors { field code message } }
}`;
const DELETE = `mutation($name: String!) {
  deleteMcpServer(input: { name: $name }) { mcpServer { id name } errors { field code message } }
}`;
const GET = `query($name: String!) { mcpServer(name: $name) { ${SERVER_FIELDS} } }`;

interface UserError {
  field: string | null;
  code: string;
  message: string;
}
interface ServerView {
  id: string;
  name: string;
  connectionType: string;
  connectionString: string | null;
  authType: string;
  status: string;
  toolTimeoutMs: number;
  toolsToExecute: string[];
  allowedExtraHeaders: string[];
  headers: Array<{ name: string; value: string; source: string }>;
  stdio: { command: string; args: string[]; env: Array<{ name: string; value: string; source: string }> } | null;
  tools: unknown;
}
type Payload = { mcpServer: ServerView | null; errors: UserError[] };

describe.each(testDialects)('McpServer GraphQL API on %s', (dialect) => {
  let h: Harness;

  beforeAll(async () => {
    h = await createHarness(dialect);
  });
  afterAll(async () => {
    await h?.close();
  });

  async function create(input: Record<string, unknown>): Promise<Payload> {
    return dataOf(await h.gql<{ createMcpServer: Payload }>(CREATE, { input })).createMcpServer;
  }
  async function update(input: Record<string, unknown>): Promise<Payload> {
    return dataOf(await h.gql<{ updateMcpServer: Payload }>(UPDATE, { input })).updateMcpServer;
  }
  async function configVersion(): Promise<number> {
    return dataOf(await h.gql<{ configVersion: number }>('{ configVersion }')).configVersion;
  }

  it('creates an HTTP server with defaults: deny all tools, 30 s timeout, ACTIVE', async () => {
    const { mcpServer, errors } = await create({ name: 'docs', connectionType: 'HTTP', connectionString: 'https://docs.example.com/mcp' });
    expect(errors).toEqual([]);
    expect(mcpServer).toMatchObject({
      name: 'docs',
      connectionType: 'HTTP',
      connectionString: 'https://docs.example.com/mcp',
      authType: 'NONE',
      status: 'ACTIVE',
      toolTimeoutMs: 30000,
      toolsToExecute: [],
      headers: [],
      stdio: null,
      tools: null,
    });
  });

  it('reports bad input as user errors with field and code, never as GraphQL errors', async () => {
    const cases: Array<[Record<string, unknown>, string, string]> = [
      [{ name: 'my-server', connectionType: 'HTTP', connectionString: 'https://x.example/mcp' }, 'input.name', 'INVALID_NAME'],
      [{ name: 'docs', connectionType: 'HTTP', connectionString: 'https://other.example/mcp' }, 'input.name', 'NAME_TAKEN'],
      [{ name: 'DOCS', connectionType: 'HTTP', connectionString: 'https://other.example/mcp' }, 'input.name', 'NAME_TAKEN'],
      [{ name: 'bad_url', connectionType: 'HTTP', connectionString: 'not a url' }, 'input.connectionString', 'INVALID_URL'],
      [{ name: 'ftp_url', connectionType: 'SSE', connectionString: 'ftp://files.example/mcp' }, 'input.connectionString', 'INVALID_URL'],
      [{ name: 'cred_url', connectionType: 'HTTP', connectionString: 'https://u:p@x.example/mcp' }, 'input.connectionString', 'INVALID_URL'],
      [{ name: 'no_url', connectionType: 'HTTP' }, 'input.connectionString', 'REQUIRED'],
      [{ name: 'no_stdio', connectionType: 'STDIO' }, 'input.stdio', 'REQUIRED'],
      [{ name: 'bad_env', connectionType: 'HTTP', connectionString: 'env.not-valid' }, 'input.connectionString', 'INVALID_VALUE'],
      [{ name: 'slow', connectionType: 'HTTP', connectionString: 'https://x.example', toolTimeoutMs: 0 }, 'input.toolTimeoutMs', 'INVALID_VALUE'],
      [{ name: 'slow2', connectionType: 'HTTP', connectionString: 'https://x.example', toolTimeoutMs: 600001 }, 'input.toolTimeoutMs', 'INVALID_VALUE'],
      [
        { name: 'dup', connectionType: 'HTTP', connectionString: 'https://x.example', headers: [{ name: 'X-Key', value: 'a' }, { name: 'x-key', value: 'b' }] },
        'input.headers.1.name',
        'DUPLICATE',
      ],
      [
        { name: 'nohdr', connectionType: 'HTTP', connectionString: 'https://x.example', authType: 'HEADERS' },
        'input.headers',
        'REQUIRED',
      ],
      [
        { name: 'leaky', connectionType: 'HTTP', connectionString: 'https://x.example', allowedExtraHeaders: ['Authorization'] },
        'input.allowedExtraHeaders.0',
        'INVALID_VALUE',
      ],
      [
        { name: 'stars', connectionType: 'HTTP', connectionString: 'https://x.example', toolsToExecute: ['*', 'search'] },
        'input.toolsToExecute',
        'INVALID_VALUE',
      ],
    ];
    const before = await configVersion();
    for (const [input, field, code] of cases) {
      const response = await h.gql<{ createMcpServer: Payload }>(CREATE, { input });
      expect(response.status, JSON.stringify(input)).toBe(200);
      expect(response.errors, JSON.stringify(input)).toBeUndefined();
      const payload = dataOf(response).createMcpServer;
      expect(payload.mcpServer, JSON.stringify(input)).toBeNull();
      expect(payload.errors, JSON.stringify(input)).toContainEqual(expect.objectContaining({ field, code }));
    }
    expect(await configVersion()).toBe(before);
  });

  it('reports every problem of one input at once', async () => {
    const { errors } = await create({ name: 'a-b', connectionType: 'HTTP', connectionString: 'nope', toolTimeoutMs: -1 });
    expect(errors.map((e) => e.code).sort()).toEqual(['INVALID_NAME', 'INVALID_URL', 'INVALID_VALUE']);
  });

  it('never returns a header secret, shows a preview or the env reference, and stores ciphertext', async () => {
    const created = await create({
      name: 'github',
      connectionType: 'HTTP',
      connectionString: 'env.GITHUB_MCP_URL',
      authType: 'HEADERS',
      headers: [
        { name: 'Authorization', value: SECRET },
        { name: 'X-Org', value: 'env.GITHUB_ORG' },
      ],
      toolsToExecute: ['search', 'get_issue'],
      allowedExtraHeaders: ['X-Request-Id'],
    });
    expect(created.errors).toEqual([]);
    expect(created.mcpServer?.connectionString).toBe('env.GITHUB_MCP_URL');
    expect(created.mcpServer?.allowedExtraHeaders).toEqual(['x-request-id']);
    expect(created.mcpServer?.headers).toEqual([
      { name: 'Authorization', value: 'sk-l…3456', source: 'STORED' },
      { name: 'X-Org', value: 'env.GITHUB_ORG', source: 'ENV' },
    ]);

    const read = dataOf(await h.gql<{ mcpServer: ServerView }>(GET, { name: 'github' })).mcpServer;
    expect(read.headers[0]).toEqual({ name: 'Authorization', value: 'sk-l…3456', source: 'STORED' });
    const list = await h.gql(`{ mcpServers(first: 50) { edges { node { ${SERVER_FIELDS} } } } }`);
    expect(list.errors).toBeUndefined();

    const row = await h.database.db.selectFrom('mcp_servers').selectAll().where('name', '=', 'github').executeTakeFirstOrThrow();
    expect(JSON.stringify(row)).not.toContain(SECRET);
    const stored = JSON.parse(row.headers) as Record<string, { kind: string; ciphertext?: string; name?: string }>;
    expect(stored.Authorization?.kind).toBe('enc');
    expect(stored.Authorization?.ciphertext).toMatch(/^enc:v1:/);
    expect(h.box.open(stored.Authorization?.ciphertext ?? '', `mcp_servers:${row.id}:headers:Authorization`)).toBe(SECRET);
    expect(stored['X-Org']).toEqual({ kind: 'env', name: 'GITHUB_ORG' });
  });

  it('stores stdio env values sealed and shows only previews', async () => {
    const { mcpServer, errors } = await create({
      name: 'local_fs',
      connectionType: 'STDIO',
      stdio: { command: 'node', args: ['server.js', '--root', '/srv'], env: [{ name: 'API_TOKEN', value: SECRET }, { name: 'HOME_DIR', value: 'env.HOME' }] },
      toolsToExecute: ['*'],
    });
    expect(errors).toEqual([]);
    expect(mcpServer?.connectionString).toBeNull();
    expect(mcpServer?.stdio).toEqual({
      command: 'node',
      args: ['server.js', '--root', '/srv'],
      env: [
        { name: 'API_TOKEN', value: 'sk-l…3456', source: 'STORED' },
        { name: 'HOME_DIR', value: 'env.HOME', source: 'ENV' },
      ],
    });
    const row = await h.database.db.selectFrom('mcp_servers').select(['stdio_env']).where('name', '=', 'local_fs').executeTakeFirstOrThrow();
    expect(row.stdio_env).not.toContain(SECRET);
  });

  it('rejects a connectionString on STDIO and stdio on HTTP', async () => {
    const a = await create({ name: 'mixed1', connectionType: 'STDIO', connectionString: 'https://x.example', stdio: { command: 'x' } });
    expect(a.errors).toContainEqual(expect.objectContaining({ field: 'input.connectionString', code: 'INVALID_VALUE' }));
    const b = await create({ name: 'mixed2', connectionType: 'HTTP', connectionString: 'https://x.example', stdio: { command: 'x' } });
    expect(b.errors).toContainEqual(expect.objectContaining({ field: 'input.stdio', code: 'INVALID_VALUE' }));
  });

  it('updates a patch, keeping a header value left out and re-sealing it under a new name casing', async () => {
    const before = await configVersion();
    const changesBefore = h.configChanges();
    const { mcpServer, errors } = await update({
      name: 'github',
      headers: [{ name: 'authorization' }, { name: 'X-Team', value: 'platform-team-secret-value' }],
      toolTimeoutMs: 5000,
    });
    expect(errors).toEqual([]);
    expect(mcpServer?.toolTimeoutMs).toBe(5000);
    expect(mcpServer?.toolsToExecute).toEqual(['search', 'get_issue']);
    expect(mcpServer?.headers).toEqual([
      { name: 'authorization', value: 'sk-l…3456', source: 'STORED' },
      { name: 'X-Team', value: 'plat…alue', source: 'STORED' },
    ]);
    expect(await configVersion()).toBe(before + 1);
    expect(h.configChanges()).toBe(changesBefore + 1);

    const row = await h.database.db.selectFrom('mcp_servers').selectAll().where('name', '=', 'github').executeTakeFirstOrThrow();
    const stored = JSON.parse(row.headers) as Record<string, { ciphertext: string }>;
    expect(h.box.open(stored.authorization?.ciphertext ?? '', `mcp_servers:${row.id}:headers:authorization`)).toBe(SECRET);
  });

  it('requires a value for a header that is new on update', async () => {
    const { errors } = await update({ name: 'github', headers: [{ name: 'Authorization' }, { name: 'X-New' }] });
    expect(errors).toEqual([expect.objectContaining({ field: 'input.headers.1.value', code: 'REQUIRED' })]);
  });

  it('reports an unknown server and a taken new name on update', async () => {
    expect((await update({ name: 'nope', disabled: true })).errors).toEqual([
      expect.objectContaining({ field: 'input.name', code: 'NOT_FOUND' }),
    ]);
    expect((await update({ name: 'github', newName: 'Docs' })).errors).toEqual([
      expect.objectContaining({ field: 'input.newName', code: 'NAME_TAKEN' }),
    ]);
  });

  it('switches HTTP to STDIO, dropping the URL and demanding stdio', async () => {
    const missing = await update({ name: 'docs', connectionType: 'STDIO' });
    expect(missing.errors).toContainEqual(expect.objectContaining({ field: 'input.stdio', code: 'REQUIRED' }));
    const ok = await update({ name: 'docs', connectionType: 'STDIO', stdio: { command: 'docs-mcp' } });
    expect(ok.errors).toEqual([]);
    expect(ok.mcpServer).toMatchObject({ connectionType: 'STDIO', connectionString: null, stdio: { command: 'docs-mcp', args: [], env: [] } });
  });

  it('renames a server and carries every key grant along; deleting it removes the grants', async () => {
    const user = dataOf(
      await h.gql<{ createUser: { user: { id: string } } }>(
        'mutation { createUser(input: { email: "rename@example.com", name: "R" }) { user { id } errors { code } } }',
      ),
    ).createUser.user;
    const key = dataOf(
      await h.gql<{ createVirtualKey: { virtualKey: { id: string }; errors: UserError[] } }>(
        `mutation($userId: ID!) { createVirtualKey(input: { userId: $userId, name: "k", servers: [{ server: "github", tools: ["search"] }, { server: "local_fs", tools: ["*"] }] }) { virtualKey { id } errors { field code message } } }`,
        { userId: user.id },
      ),
    ).createVirtualKey;
    expect(key.errors).toEqual([]);

    expect((await update({ name: 'github', newName: 'gh' })).errors).toEqual([]);
    const grants = async () =>
      dataOf(
        await h.gql<{ virtualKey: { servers: Array<{ server: string; tools: string[]; mcpServer: { id: string } | null }> } }>(
          'query($id: ID!) { virtualKey(id: $id) { servers { server tools mcpServer { id } } } }',
          { id: key.virtualKey.id },
        ),
      ).virtualKey.servers;
    expect((await grants()).map((g) => g.server)).toEqual(['gh', 'local_fs']);
    expect((await grants())[0]?.mcpServer).not.toBeNull();

    const before = await configVersion();
    const deleted = dataOf(await h.gql<{ deleteMcpServer: { mcpServer: { name: string }; errors: UserError[] } }>(DELETE, { name: 'gh' }))
      .deleteMcpServer;
    expect(deleted).toEqual({ mcpServer: { id: expect.any(String), name: 'gh' }, errors: [] });
    expect(await configVersion()).toBe(before + 1);
    expect(await grants()).toEqual([{ server: 'local_fs', tools: ['*'], mcpServer: expect.anything() }]);
    expect(dataOf(await h.gql<{ mcpServer: null }>(GET, { name: 'gh' })).mcpServer).toBeNull();
    const again = dataOf(await h.gql<{ deleteMcpServer: { errors: UserError[] } }>(DELETE, { name: 'gh' })).deleteMcpServer;
    expect(again.errors).toEqual([expect.objectContaining({ field: 'input.name', code: 'NOT_FOUND' })]);
  });

  it('bumps the config version once per successful create and asks for a publish', async () => {
    const version = await configVersion();
    const changes = h.configChanges();
    expect((await create({ name: 'bump_me', connectionType: 'SSE', connectionString: 'http://sse.example/sse' })).errors).toEqual([]);
    expect(await configVersion()).toBe(version + 1);
    expect(h.configChanges()).toBe(changes + 1);
  });

  it('pages through servers with first/after', async () => {
    for (let i = 0; i < 5; i++) {
      expect((await create({ name: `page_${i}`, connectionType: 'HTTP', connectionString: `https://p${i}.example/mcp` })).errors).toEqual([]);
    }
    const seen: string[] = [];
    let after: string | null = null;
    for (let guard = 0; guard < 20; guard++) {
      const page: { mcpServers: { edges: Array<{ cursor: string; node: { name: string } }>; pageInfo: { hasNextPage: boolean; endCursor: string | null } } } =
        dataOf(
          await h.gql(
            'query($after: String) { mcpServers(first: 3, after: $after) { edges { cursor node { name } } pageInfo { hasNextPage endCursor } } }',
            { after },
          ),
        );
      expect(page.mcpServers.edges.length).toBeLessThanOrEqual(3);
      seen.push(...page.mcpServers.edges.map((e) => e.node.name));
      if (!page.mcpServers.pageInfo.hasNextPage) break;
      after = page.mcpServers.pageInfo.endCursor;
    }
    const all = await h.database.db.selectFrom('mcp_servers').select('name').execute();
    expect(seen.length).toBe(all.length);
    expect(new Set(seen).size).toBe(all.length);
    expect(seen.filter((n) => n.startsWith('page_'))).toEqual(['page_0', 'page_1', 'page_2', 'page_3', 'page_4']);
  });

  it('answers a malformed cursor with BAD_USER_INPUT', async () => {
    const response = await h.gql('{ mcpServers(first: 2, after: "garbage") { edges { cursor } } }');
    expect(response.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });

  it('never put the plaintext secret in any response of this suite', () => {
    expect(h.bodies.length).toBeGreaterThan(10);
    for (const body of h.bodies) expect(body).not.toContain(SECRET);
    for (const body of h.bodies) expect(body).not.toContain('platform-team-secret-value');
  });
});
