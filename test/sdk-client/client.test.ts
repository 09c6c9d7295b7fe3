/**
 * The typed SDK client against a real control plane (in-process, SQLite, real socket): creating servers,
 * users and keys; paging through more items than one page holds; user errors returned typed rather than
 * thrown; key rotation and revocation; and the GatehouseError codes for a bad token, a VIEWER mutation, a
 * GraphQL error, an unreachable host and a non-GraphQL answer, none of which may mention the admin token.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGatehouseClient, graphqlEndpoint, paginate, type GatehouseClient } from '../../sdk-client/client.js';
import { GatehouseError } from '../../sdk-client/errors.js';
import type { Connection } from '../../sdk-client/client.js';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';

let cp: TestControlPlane;
let client: GatehouseClient;

beforeAll(async () => {
  cp = await startTestControlPlane();
  client = createGatehouseClient({ url: cp.url, adminToken: cp.adminToken });
});
afterAll(async () => {
  await cp?.close();
});

/** Runs `work`, expecting a GatehouseError, and returns it. */
async function gatehouseError(work: () => Promise<unknown>): Promise<GatehouseError> {
  try {
    await work();
  } catch (error) {
    if (error instanceof GatehouseError) return error;
    throw error;
  }
  throw new Error('expected a GatehouseError');
}

describe('sdk-client: entities', () => {
  it('creates a server and reads it back, with header values shown only as previews', async () => {
    const created = await client.createMcpServer({
      name: 'crm',
      connectionType: 'HTTP',
      connectionString: 'https://crm.example.com/mcp',
      authType: 'HEADERS',
      headers: [{ name: 'Authorization', value: 'Bearer sk-live-0123456789abcdef' }],
      toolsToExecute: ['*'],
    });
    expect(created.errors).toEqual([]);
    expect(created.mcpServer).toMatchObject({ name: 'crm', connectionType: 'HTTP', authType: 'HEADERS', toolsToExecute: ['*'], disabled: false });
    expect(created.mcpServer?.headers).toHaveLength(1);
    expect(created.mcpServer?.headers[0]).toMatchObject({ name: 'Authorization', source: 'STORED' });
    expect(created.mcpServer?.headers[0]?.value).not.toContain('0123456789abcdef');

    const read = await client.mcpServer('crm');
    expect(read?.id).toBe(created.mcpServer?.id);
    expect(await client.mcpServer('nope')).toBeNull();

    const updated = await client.updateMcpServer({ name: 'crm', toolsToExecute: ['search', 'fetch'], toolTimeoutMs: 5000 });
    expect(updated.errors).toEqual([]);
    expect(updated.mcpServer).toMatchObject({ toolsToExecute: ['search', 'fetch'], toolTimeoutMs: 5000 });
  });

  it('returns user errors typed, with field and code, instead of throwing', async () => {
    const bad = await client.createMcpServer({ name: 'bad-name', connectionType: 'HTTP', connectionString: 'https://x.example.com' });
    expect(bad.mcpServer).toBeNull();
    expect(bad.errors).toEqual([expect.objectContaining({ field: 'input.name', code: 'INVALID_NAME' })]);
    expect(bad.errors[0]?.message).toMatch(/hyphen|letters/i);

    const taken = await client.createMcpServer({ name: 'crm', connectionType: 'HTTP', connectionString: 'https://x.example.com' });
    expect(taken.errors.map((e) => e.code)).toEqual(['NAME_TAKEN']);

    const missing = await client.deleteMcpServer({ name: 'never_existed' });
    expect(missing.errors.map((e) => e.code)).toEqual(['NOT_FOUND']);

    const email = await client.createUser({ email: 'not-an-email' });
    expect(email).toEqual({ user: null, warnings: [], errors: [expect.objectContaining({ field: 'input.email', code: 'INVALID_EMAIL' })] });
  });

  it('creates a user and a key, returning the plaintext key once', async () => {
    const user = await client.createUser({ email: 'Alice@Example.com', name: 'Alice' });
    expect(user.errors).toEqual([]);
    expect(user.user).toMatchObject({ email: 'alice@example.com', name: 'Alice' });
    const userId = user.user?.id ?? '';

    const created = await client.createVirtualKey({ userId, name: 'laptop', servers: [{ server: 'crm', tools: ['search'] }] });
    expect(created.errors).toEqual([]);
    expect(created.key).toMatch(/^gk_[A-Za-z0-9_-]{40,}$/);
    expect(created.virtualKey).toMatchObject({
      name: 'laptop',
      userId,
      user: { id: userId, email: 'alice@example.com', name: 'Alice' },
      servers: [{ server: 'crm', tools: ['search'] }],
      revoked: false,
      expired: false,
      expiresAt: null,
    });

    // Reads never show the value again.
    const listed = await client.allVirtualKeys({ userId });
    expect(listed.map((k) => k.id)).toEqual([created.virtualKey?.id]);
    expect(JSON.stringify(listed)).not.toContain(created.key ?? '<none>');
    expect(await client.virtualKey(created.virtualKey?.id ?? '')).toMatchObject({ name: 'laptop' });

    const unknownServer = await client.createVirtualKey({ userId, name: 'x', servers: [{ server: 'ghost', tools: ['*'] }] });
    expect(unknownServer.key).toBeNull();
    expect(unknownServer.errors.map((e) => e.code)).toEqual(['UNKNOWN_SERVER']);

    const renamed = await client.updateVirtualKey({ id: created.virtualKey?.id ?? '', name: 'laptop-2', expiresAt: '2099-01-01T00:00:00.000Z' });
    expect(renamed.errors).toEqual([]);
    expect(renamed.virtualKey).toMatchObject({ name: 'laptop-2', expiresAt: '2099-01-01T00:00:00.000Z' });
  });

  it('rotates a key (new value, old one replaced) and revokes it for good', async () => {
    const user = await client.createUser({ email: 'bob@example.com' });
    const created = await client.createVirtualKey({ userId: user.user?.id ?? '', name: 'ci', servers: [{ server: 'crm', tools: ['*'] }] });
    const id = created.virtualKey?.id ?? '';

    const rotated = await client.rotateVirtualKey({ id });
    expect(rotated.errors).toEqual([]);
    expect(rotated.key).toMatch(/^gk_/);
    expect(rotated.key).not.toBe(created.key);
    expect(rotated.virtualKey?.keyPreview).not.toBe(created.virtualKey?.keyPreview);

    const revoked = await client.revokeVirtualKey({ id });
    expect(revoked.errors).toEqual([]);
    expect(revoked.virtualKey).toMatchObject({ id, revoked: true });
    expect(revoked.virtualKey?.revokedAt).toEqual(expect.any(String));

    // Idempotent, and a revoked key cannot be given a new value.
    expect((await client.revokeVirtualKey({ id })).errors).toEqual([]);
    const again = await client.rotateVirtualKey({ id });
    expect(again.key).toBeNull();
    expect(again.errors.map((e) => e.code)).toEqual(['KEY_REVOKED']);
  });

  it('reads the config version, the viewer, nodes and admin tokens; issues and revokes an admin token', async () => {
    const before = await client.configVersion();
    expect(before).toBeGreaterThan(0);
    await client.createMcpServer({ name: 'bumps_version', connectionType: 'SSE', connectionString: 'env.SSE_URL' });
    expect(await client.configVersion()).toBeGreaterThan(before);

    expect(await client.viewer()).toMatchObject({ name: 'bootstrap', role: 'ADMIN' });
    expect(await client.allNodes()).toEqual([]);

    const issued = await client.createAdminToken({ name: 'scripts', role: 'VIEWER' });
    expect(issued.errors).toEqual([]);
    expect(issued.token).toMatch(/^gha_/);
    const tokens = await client.allAdminTokens();
    expect(tokens.map((t) => t.name).sort()).toEqual(['bootstrap', 'scripts']);
    expect(JSON.stringify(tokens)).not.toContain(issued.token ?? '<none>');

    const revoked = await client.revokeAdminToken({ id: issued.adminToken?.id ?? '' });
    expect(revoked.adminToken).toMatchObject({ revoked: true });
  });
});

describe('sdk-client: pagination', () => {
  it('pages through more servers than one page holds, by hand and with allMcpServers', async () => {
    const names = Array.from({ length: 23 }, (_, i) => `paged_${String(i).padStart(2, '0')}`);
    for (const name of names) {
      const payload = await client.createMcpServer({ name, connectionType: 'HTTP', connectionString: `https://${name}.example.com` });
      expect(payload.errors).toEqual([]);
    }
    const total = (await client.allMcpServers()).length;
    expect(total).toBeGreaterThanOrEqual(names.length);

    // By hand, 10 a page.
    const seen: string[] = [];
    let after: string | null = null;
    let pages = 0;
    for (;;) {
      const page: Connection<{ name: string }> = await client.mcpServers({ first: 10, after });
      pages++;
      expect(page.edges.length).toBeLessThanOrEqual(10);
      seen.push(...page.edges.map((e) => e.node.name));
      if (!page.pageInfo.hasNextPage) break;
      after = page.pageInfo.endCursor;
    }
    expect(pages).toBe(Math.ceil(total / 10));
    expect(new Set(seen).size).toBe(total);
    expect(seen).toEqual(expect.arrayContaining(names));

    // The helper, with a page size that does not divide the total.
    const all = await client.allMcpServers({ pageSize: 7 });
    expect(all.map((s) => s.name)).toEqual(seen);

    // The server's default page (20) is used when `first` is left out.
    const first = await client.mcpServers();
    expect(first.edges).toHaveLength(20);
    expect(first.pageInfo.hasNextPage).toBe(true);
  });

  it('pages users and a user\'s keys', async () => {
    const created = [];
    for (let i = 0; i < 5; i++) created.push((await client.createUser({ email: `page${i}@example.com` })).user?.id ?? '');
    const users = await client.allUsers({ pageSize: 2 });
    expect(users.map((u) => u.id)).toEqual(expect.arrayContaining(created));

    const owner = created[0] ?? '';
    for (let i = 0; i < 3; i++) await client.createVirtualKey({ userId: owner, name: `k${i}`, servers: [], allowNoServers: true });
    const keys = await client.allVirtualKeys({ userId: owner, pageSize: 2 });
    expect(keys.map((k) => k.name)).toEqual(['k0', 'k1', 'k2']);
  });

  it('rejects a page size outside 1..100 before sending anything', async () => {
    await expect(client.allUsers({ pageSize: 0 })).rejects.toThrow(RangeError);
    await expect(client.allUsers({ pageSize: 101 })).rejects.toThrow(RangeError);
  });

  it('paginate() stops with an error when the server does not advance the cursor', async () => {
    const stuck: Connection<number> = { edges: [{ cursor: 'a', node: 1 }], pageInfo: { endCursor: 'a', hasNextPage: true, hasPreviousPage: false, startCursor: 'a' } };
    const seen: number[] = [];
    const error = await gatehouseError(async () => {
      for await (const n of paginate(async () => stuck)) seen.push(n);
    });
    expect(error.code).toBe('GRAPHQL');
    expect(seen).toEqual([1, 1]);
  });
});

describe('sdk-client: failures throw GatehouseError with a stable code', () => {
  it('a bad admin token is UNAUTHENTICATED, and the message does not contain the token', async () => {
    const badToken = 'gha_this-token-is-wrong-0123456789abcdef';
    const bad = createGatehouseClient({ url: cp.url, adminToken: badToken });
    const error = await gatehouseError(() => bad.allMcpServers());
    expect(error).toBeInstanceOf(Error);
    expect(error.name).toBe('GatehouseError');
    expect(error.code).toBe('UNAUTHENTICATED');
    expect(error.status).toBe(401);
    expect(error.graphqlErrors[0]?.code).toBe('UNAUTHENTICATED');
    expect(error.message).not.toContain(badToken);
    expect(String(error.stack)).not.toContain(badToken);
    expect(JSON.stringify(error)).not.toContain(badToken);

    // Mutations too: nothing created.
    const mutation = await gatehouseError(() => bad.createUser({ email: 'intruder@example.com' }));
    expect(mutation.code).toBe('UNAUTHENTICATED');
    expect((await client.allUsers()).map((u) => u.email)).not.toContain('intruder@example.com');
  });

  it('a VIEWER token reads but its mutations are FORBIDDEN', async () => {
    const issued = await client.createAdminToken({ name: 'read-only', role: 'VIEWER' });
    const viewer = createGatehouseClient({ url: cp.url, adminToken: issued.token ?? '' });
    expect((await viewer.viewer()).role).toBe('VIEWER');
    const error = await gatehouseError(() => viewer.createUser({ email: 'viewer-made@example.com' }));
    expect(error.code).toBe('FORBIDDEN');
    expect(error.message).not.toContain(issued.token ?? '<none>');
  });

  it('a GraphQL error (a bad cursor) is GRAPHQL, with the server\'s code in graphqlErrors', async () => {
    const error = await gatehouseError(() => client.virtualKeys({ first: 5, after: 'not-a-cursor' }));
    expect(error.code).toBe('GRAPHQL');
    expect(error.graphqlErrors[0]?.code).toBe('BAD_USER_INPUT');
  });

  it('an unreachable control plane is NETWORK', async () => {
    // A port that was just free: bind, read the port, close.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));

    const offline = createGatehouseClient({ url: `http://127.0.0.1:${port}`, adminToken: cp.adminToken });
    const error = await gatehouseError(() => offline.configVersion());
    expect(error.code).toBe('NETWORK');
    expect(error.message).toMatch(/ECONNREFUSED/);
    expect(error.message).not.toContain(cp.adminToken);
  });

  describe('against a misbehaving server', () => {
    let server: Server;
    let url: string;
    let reply: (auth: string) => { status: number; body: string; type?: string };

    beforeAll(async () => {
      server = createServer((req, res) => {
        const answer = reply(req.headers.authorization ?? '');
        res.writeHead(answer.status, { 'content-type': answer.type ?? 'application/json' });
        res.end(answer.body);
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });

    it('an HTML 502 from a proxy is HTTP, with the status', async () => {
      reply = () => ({ status: 502, body: '<html><body>Bad Gateway</body></html>', type: 'text/html' });
      const error = await gatehouseError(() => createGatehouseClient({ url, adminToken: 'gha_x' }).configVersion());
      expect(error.code).toBe('HTTP');
      expect(error.status).toBe(502);
      expect(error.message).toContain('Bad Gateway');
    });

    it('a 200 that is not GraphQL is HTTP', async () => {
      reply = () => ({ status: 200, body: '{"ok":true}' });
      expect((await gatehouseError(() => createGatehouseClient({ url, adminToken: 'gha_x' }).configVersion())).code).toBe('HTTP');
    });

    it('a bare 401 or 403 is UNAUTHENTICATED or FORBIDDEN', async () => {
      reply = () => ({ status: 401, body: 'no', type: 'text/plain' });
      expect((await gatehouseError(() => createGatehouseClient({ url, adminToken: 'gha_x' }).configVersion())).code).toBe('UNAUTHENTICATED');
      reply = () => ({ status: 403, body: 'no', type: 'text/plain' });
      expect((await gatehouseError(() => createGatehouseClient({ url, adminToken: 'gha_x' }).configVersion())).code).toBe('FORBIDDEN');
    });

    it('scrubs the token from messages even when the server echoes it', async () => {
      const token = 'gha_echoed-secret-token-abcdef012345';
      reply = (auth) => ({ status: 500, body: `upstream rejected ${auth}`, type: 'text/plain' });
      const http = await gatehouseError(() => createGatehouseClient({ url, adminToken: token }).configVersion());
      expect(http.code).toBe('HTTP');
      expect(http.message).toContain('[redacted]');
      expect(http.message).not.toContain(token);

      reply = (auth) => ({ status: 200, body: JSON.stringify({ data: null, errors: [{ message: `token ${auth} unknown`, extensions: { code: 'UNAUTHENTICATED' } }] }) });
      const gql = await gatehouseError(() => createGatehouseClient({ url, adminToken: token }).configVersion());
      expect(gql.code).toBe('UNAUTHENTICATED');
      expect(gql.message).not.toContain(token);
      expect(JSON.stringify(gql.graphqlErrors)).not.toContain(token);
    });

    it('sends the token only in the Authorization header, to the /graphql endpoint', async () => {
      const seen: Array<{ url: string; init: RequestInit }> = [];
      const recording = createGatehouseClient({
        url: 'http://gatehouse.test:8090/',
        adminToken: 'gha_recorded',
        fetch: async (u, init) => {
          seen.push({ url: u, init });
          return new Response(JSON.stringify({ data: { configVersion: 7 } }), { headers: { 'content-type': 'application/json' } });
        },
      });
      expect(await recording.configVersion()).toBe(7);
      expect(seen[0]?.url).toBe('http://gatehouse.test:8090/graphql');
      expect(new Headers(seen[0]?.init.headers).get('authorization')).toBe('Bearer gha_recorded');
      expect(String(seen[0]?.init.body)).not.toContain('gha_recorded');
    });
  });

  it('refuses a URL with credentials or a missing token at construction', () => {
    expect(() => createGatehouseClient({ url: 'http://user:pw@127.0.0.1:8090', adminToken: 'gha_x' })).toThrow(/credentials/);
    expect(() => createGatehouseClient({ url: 'ftp://127.0.0.1', adminToken: 'gha_x' })).toThrow(/http/);
    expect(() => createGatehouseClient({ url: 'http://127.0.0.1:8090', adminToken: ' ' })).toThrow(/adminToken/);
    expect(graphqlEndpoint('http://h:1/base/')).toBe('http://h:1/base/graphql');
    expect(graphqlEndpoint('https://h/graphql')).toBe('https://h/graphql');
  });
});
