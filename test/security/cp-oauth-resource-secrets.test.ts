/**
 * The RFC 8707 resource indicator each pending OAuth flow and each stored OAuth credential keeps
 * (`oauth_flows.resource`, `oauth_credentials.resource`) was stored whole, so a credential-bearing one
 * (an MCP server at `…/mcp?api_key=…` whose protected-resource metadata names itself, or an admin's
 * `resource` setting) sat in the clear in two tables while the same URL was sealed in the server's
 * connection URL and OAuth settings (0020, 0021). Now both follow url-secrets.ts's rule
 * (0022_oauth_resource_secrets): redacted in the column, whole and sealed beside it; the flow still asks
 * for, exchanges and refreshes with the whole indicator (the protected server takes only tokens whose
 * audience is exactly it), and rows stored before are sealed at startup. Both dialects.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SecretBox } from '../../control-plane/crypto/secret-box.js';
import { OAuthService } from '../../control-plane/oauth/service.js';
import { createMcpServer, type McpServer } from '../../control-plane/repos/mcp-servers.js';
import { findCredential, sealOAuthResources } from '../../control-plane/repos/oauth.js';
import { openTestDatabase, testDialects, type TestDatabase } from '../support/db.js';
import { callWhoami, loginAndConsent, startAuthorizationServer, startProtectedMcpServer, type AuthorizationServer, type ProtectedMcpServer } from '../support/oauth-upstream.js';

const PUBLIC_URL = 'http://gatehouse.test';
const CALLBACK = `${PUBLIC_URL}/oauth/callback`;
const SECRET = 'resourceApiKey0123456789abcdef';

describe.each(testDialects)('credential-bearing OAuth resource indicators at rest on %s', (dialect) => {
  let database: TestDatabase;
  let as: AuthorizationServer;
  let upstream: ProtectedMcpServer;
  let server: McpServer;
  const box = new SecretBox(randomBytes(32));
  const service = (refreshMarginMs?: number) =>
    new OAuthService({ db: database.db, dialect, box, publicUrl: () => PUBLIC_URL, allowInsecure: true, retryDelaysMs: [5], ...(refreshMarginMs ? { refreshMarginMs } : {}) });

  /** Every stored column of both tables, as text: what a database dump or a backup would show. */
  async function rawRows(): Promise<string> {
    const flows = await database.db.selectFrom('oauth_flows').selectAll().execute();
    const credentials = await database.db.selectFrom('oauth_credentials').selectAll().execute();
    return JSON.stringify({ flows, credentials });
  }

  beforeAll(async () => {
    database = await openTestDatabase(dialect);
    as = await startAuthorizationServer();
    upstream = await startProtectedMcpServer(as, { resourceQuery: `api_key=${SECRET}` });
    server = await createMcpServer(database.db, box, { name: 'hosted', connectionType: 'HTTP', connectionString: upstream.url, authType: 'OAUTH' });
  });
  afterAll(async () => {
    await upstream?.close();
    await as?.close();
    await database?.close();
  });

  it('stores the indicator redacted and sealed, and authorizes, calls and refreshes with the whole one', async () => {
    const s = service();
    const url = await s.startAuthorization(server, null);
    expect(url.searchParams.get('resource')).toBe(upstream.url);
    const pending = await rawRows();
    expect(pending).toContain('mcp?api_key=***');
    expect(pending).not.toContain(SECRET);

    const landed = await loginAndConsent(url.href, 'admin-alice', { stopAt: CALLBACK });
    await s.completeAuthorization(new URL(landed.url).searchParams);
    const token = await s.accessToken(server.id, null);
    // The protected server takes only tokens issued for its whole URL.
    expect(await callWhoami(upstream.url, token.token)).toBe('sub:admin-alice');
    const row = await findCredential(database.db, server.id, null);
    expect(row?.resource).toBe(upstream.url.replace(SECRET, '***'));
    expect(await rawRows()).not.toContain(SECRET);

    // A refresh asks for the whole indicator too (the AS checks it against the grant's).
    const refreshed = await service(10 * 3600_000).accessToken(server.id, null);
    expect(refreshed.generation).toBe(token.generation + 1);
    expect(await callWhoami(upstream.url, refreshed.token)).toBe('sub:admin-alice');
    expect(as.refreshErrors()).toBe(0);
    expect(await rawRows()).not.toContain(SECRET);
  });

  it('seals a flow and a credential stored whole before the rule, and both still work', async () => {
    const s = service();
    const url = await s.startAuthorization(server, null);
    // As 0021 left them: the whole indicator in the column, nothing beside it.
    await database.db.updateTable('oauth_flows').set({ resource: upstream.url, resource_secret: null }).where('used_at', 'is', null).execute();
    await database.db.updateTable('oauth_credentials').set({ resource: upstream.url, resource_secret: null }).execute();
    expect(await rawRows()).toContain(SECRET);

    expect(await sealOAuthResources(database.db, box)).toBe(2);
    expect(await sealOAuthResources(database.db, box)).toBe(0);
    expect(await rawRows()).not.toContain(SECRET);

    // The sealed credential refreshes with the whole indicator; the sealed flow completes.
    const before = await s.accessToken(server.id, null);
    const refreshed = await service(10 * 3600_000).accessToken(server.id, null);
    expect(refreshed.generation).toBe(before.generation + 1);
    expect(await callWhoami(upstream.url, refreshed.token)).toBe('sub:admin-alice');
    const landed = await loginAndConsent(url.href, 'admin-bob', { stopAt: CALLBACK });
    await s.completeAuthorization(new URL(landed.url).searchParams);
    expect(await callWhoami(upstream.url, (await s.accessToken(server.id, null)).token)).toBe('sub:admin-bob');
    expect(as.refreshErrors()).toBe(0);
    expect(await rawRows()).not.toContain(SECRET);
  });
});
