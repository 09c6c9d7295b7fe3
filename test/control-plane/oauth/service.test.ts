/**
 * The OAuth service against a real authorization server (oidc-provider) and an MCP server that checks
 * bearer tokens (requireBearerAuth), on SQLite and PostgreSQL: discovery (RFC 9728 → RFC 8414) + dynamic
 * registration + PKCE S256 + resource; refresh before expiry and after an upstream 401; two replicas
 * refreshing at once spend a rotating refresh token once; a network failure keeps the credential; only
 * invalid_grant marks NEEDS_REAUTH; a replayed state is refused.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SecretBox } from '../../../control-plane/crypto/secret-box.js';
import { openDatabase } from '../../../control-plane/db/database.js';
import { OAuthFlowError } from '../../../control-plane/oauth/errors.js';
import { OAuthService, type OAuthServiceOptions } from '../../../control-plane/oauth/service.js';
import { createMcpServer, getMcpServerByName, type McpServer } from '../../../control-plane/repos/mcp-servers.js';
import { findCredential } from '../../../control-plane/repos/oauth.js';
import { openTestDatabase, testDialects, type TestDatabase } from '../../support/db.js';
import {
  callWhoami,
  loginAndConsent,
  startAuthorizationServer,
  startProtectedMcpServer,
  type AuthorizationServer,
  type ProtectedMcpServer,
} from '../../support/oauth-upstream.js';

const PUBLIC_URL = 'http://gatehouse.test';
const CALLBACK = `${PUBLIC_URL}/oauth/callback`;

async function expectOAuthError(promise: Promise<unknown>, code: string): Promise<OAuthFlowError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(OAuthFlowError);
  expect((error as OAuthFlowError).code).toBe(code);
  return error as OAuthFlowError;
}

describe.each(testDialects)('OAuth service (%s)', (dialect) => {
  let database: TestDatabase;
  let as: AuthorizationServer;
  let upstream: ProtectedMcpServer;
  let server: McpServer;
  const box = new SecretBox(randomBytes(32));
  const services: OAuthService[] = [];
  const extraPools: Array<{ destroy(): Promise<void> }> = [];

  function service(options: Partial<OAuthServiceOptions> = {}): OAuthService {
    const s = new OAuthService({ db: database.db, dialect, box, publicUrl: () => PUBLIC_URL, allowInsecure: true, retryDelaysMs: [5, 10], ...options });
    services.push(s);
    return s;
  }

  /** A second "replica": its own connection pool on the same database. */
  function replica(options: Partial<OAuthServiceOptions> = {}): OAuthService {
    if (dialect === 'sqlite') return service(options);
    const { db } = openDatabase(database.url, database.searchPath ? { searchPath: database.searchPath } : {});
    extraPools.push(db);
    // Its own pool and its own in-process single flight, as another process would have: only the
    // PostgreSQL row lock stands between the two.
    return service({ ...options, db, inFlight: new Map() });
  }

  beforeAll(async () => {
    database = await openTestDatabase(dialect);
    as = await startAuthorizationServer();
    upstream = await startProtectedMcpServer(as);
    server = await createMcpServer(database.db, box, { name: 'crm', connectionType: 'HTTP', connectionString: upstream.url, authType: 'OAUTH' });
  });

  afterAll(async () => {
    for (const pool of extraPools) await pool.destroy();
    await upstream?.close();
    await as?.close();
    await database?.close();
  });

  async function connect(s: OAuthService, userId: string | null, login: string): Promise<void> {
    const url = await s.startAuthorization(server, userId);
    const landed = await loginAndConsent(url.href, login, { stopAt: CALLBACK });
    await s.completeAuthorization(new URL(landed.url).searchParams);
  }

  it('discovers the AS from the 401, registers dynamically, and authorizes with PKCE S256 and resource', async () => {
    expect((await getMcpServerByName(database.db, 'crm'))?.status).toBe('NEEDS_AUTH');
    const s = service();
    const url = await s.startAuthorization(server, null);
    expect(url.origin).toBe(as.issuer);
    expect(url.searchParams.get('code_challenge_method')).toBe('S256');
    expect(url.searchParams.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(url.searchParams.get('resource')).toBe(upstream.url);
    expect(url.searchParams.get('redirect_uri')).toBe(CALLBACK);
    expect(url.searchParams.get('scope')).toBe('mcp');
    expect(as.registrations).toEqual([url.searchParams.get('client_id')]);

    const landed = await loginAndConsent(url.href, 'admin-alice', { stopAt: CALLBACK });
    const query = new URL(landed.url).searchParams;
    expect(query.get('iss')).toBe(as.issuer);
    await s.completeAuthorization(query);

    const token = await s.accessToken(server.id, null);
    expect(await callWhoami(upstream.url, token.token)).toBe('sub:admin-alice');
    expect((await getMcpServerByName(database.db, 'crm'))?.status).toBe('ACTIVE');
    const row = await findCredential(database.db, server.id, null);
    expect(row?.issuer).toBe(as.issuer);
    // Sealed at rest: the stored column is ciphertext, not the token.
    expect(row?.access_token.startsWith('enc:v1:')).toBe(true);
    expect(row?.access_token).not.toContain(token.token);

    // The state was spent: replaying the callback is refused, and changes nothing.
    await expectOAuthError(s.completeAuthorization(query), 'STATE_INVALID');
    expect((await s.accessToken(server.id, null)).token).toBe(token.token);
    // A second authorization reuses the registered client (keyed by issuer).
    await connect(s, null, 'admin-alice');
    expect(as.registrations).toHaveLength(1);
  });

  it('refreshes before expiry and after an upstream 401, with a rotating refresh token', async () => {
    const s = service();
    const before = await s.accessToken(server.id, null);
    const eager = service({ refreshMarginMs: 10 * 3600_000 });
    const refreshesBefore = as.grants.filter((g) => g === 'refresh_token').length;
    const refreshed = await eager.accessToken(server.id, null);
    expect(refreshed.token).not.toBe(before.token);
    expect(refreshed.generation).toBe(before.generation + 1);
    expect(as.grants.filter((g) => g === 'refresh_token').length).toBe(refreshesBefore + 1);
    expect(await callWhoami(upstream.url, refreshed.token)).toBe('sub:admin-alice');

    // An upstream 401 against the current generation forces a refresh; against an older one it does not.
    const after401 = await s.accessToken(server.id, null, { rejectedGeneration: refreshed.generation });
    expect(after401.generation).toBe(refreshed.generation + 1);
    const stale = await s.accessToken(server.id, null, { rejectedGeneration: refreshed.generation });
    expect(stale.token).toBe(after401.token);
  });

  it('two replicas refreshing at once spend the refresh token once', async () => {
    const a = replica();
    const b = replica();
    const current = await service().accessToken(server.id, null);
    const refreshesBefore = as.grants.filter((g) => g === 'refresh_token').length;
    const errorsBefore = as.refreshErrors();
    // Both see a token that needs refreshing (an upstream 401 against the current generation).
    const [ta, tb, tc] = await Promise.all([
      a.accessToken(server.id, null, { rejectedGeneration: current.generation }),
      b.accessToken(server.id, null, { rejectedGeneration: current.generation }),
      a.accessToken(server.id, null, { rejectedGeneration: current.generation }),
    ]);
    expect(as.grants.filter((g) => g === 'refresh_token').length).toBe(refreshesBefore + 1);
    expect(as.refreshErrors()).toBe(errorsBefore);
    expect(ta.token).toBe(tb.token);
    expect(tc.token).toBe(ta.token);
    expect((await findCredential(database.db, server.id, null))?.status).toBe('CONNECTED');
  });

  it('a network failure during refresh keeps the credential', async () => {
    const s = service({ refreshMarginMs: 10 * 3600_000 });
    const current = await service().accessToken(server.id, null);
    await as.stop();
    try {
      // Still valid: the old token is served while the AS is away.
      const kept = await s.accessToken(server.id, null);
      expect(kept.token).toBe(current.token);
      // Rejected upstream and the AS unreachable: a retryable error, never NEEDS_REAUTH.
      await expectOAuthError(s.accessToken(server.id, null, { rejectedGeneration: current.generation }), 'AS_UNREACHABLE');
      const row = await findCredential(database.db, server.id, null);
      expect(row?.status).toBe('CONNECTED');
      expect(row?.last_error).toContain('could not reach');
      expect((await getMcpServerByName(database.db, 'crm'))?.status).toBe('ACTIVE');
    } finally {
      await as.restart();
    }
    const recovered = await s.accessToken(server.id, null, { rejectedGeneration: current.generation });
    expect(await callWhoami(upstream.url, recovered.token)).toBe('sub:admin-alice');
  });

  it('only invalid_grant marks the credential NEEDS_REAUTH, and the server says so', async () => {
    const s = service({ refreshMarginMs: 10 * 3600_000 });
    await as.revokeRefreshTokens();
    const error = await expectOAuthError(s.accessToken(server.id, null), 'NEEDS_REAUTH');
    expect(error.message).toContain('authorize again');
    expect((await findCredential(database.db, server.id, null))?.status).toBe('NEEDS_REAUTH');
    expect((await getMcpServerByName(database.db, 'crm'))?.status).toBe('NEEDS_REAUTH');
    // Authorizing again recovers.
    await connect(service(), null, 'admin-alice');
    expect((await getMcpServerByName(database.db, 'crm'))?.status).toBe('ACTIVE');
    expect((await findCredential(database.db, server.id, null))?.status).toBe('CONNECTED');
  });

  it('a denied consent stores nothing and says so', async () => {
    const other = await createMcpServer(database.db, box, { name: `deny_${dialect}`, connectionType: 'HTTP', connectionString: upstream.url, authType: 'OAUTH' });
    const s = service();
    const url = await s.startAuthorization(other, null);
    const landed = await loginAndConsent(url.href, 'admin-alice', { deny: true, stopAt: CALLBACK });
    await expectOAuthError(s.completeAuthorization(new URL(landed.url).searchParams), 'ACCESS_DENIED');
    expect(await findCredential(database.db, other.id, null)).toBeNull();
  });
});
