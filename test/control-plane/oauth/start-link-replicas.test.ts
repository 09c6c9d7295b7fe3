/**
 * The admin's one-time start link with two control-plane replicas over one PostgreSQL (behind one public
 * origin, simulated here by sending the link's path to the other replica): the link and the sealed
 * authorization URL live in the database, so whichever replica the browser reaches spends it, exactly once.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestControlPlane, type TestControlPlane } from '../../support/control-plane.js';
import { openTestDatabase, postgresUrl, type TestDatabase } from '../../support/db.js';
import { loginAndConsent, startAuthorizationServer, startProtectedMcpServer, type AuthorizationServer, type ProtectedMcpServer } from '../../support/oauth-upstream.js';
import { openOneTimeLink } from '../../support/one-time-link.js';

describe.skipIf(!postgresUrl)('OAuth start links across replicas on PostgreSQL', () => {
  let testDb: TestDatabase;
  let as: AuthorizationServer;
  let upstream: ProtectedMcpServer;
  let replicaA: TestControlPlane;
  let replicaB: TestControlPlane;

  beforeAll(async () => {
    testDb = await openTestDatabase('postgres');
    as = await startAuthorizationServer();
    upstream = await startProtectedMcpServer(as);
    // Replicas share key material (as they would share GATEHOUSE_* secrets) and one database.
    const dataDir = mkdtempSync(join(tmpdir(), 'gatehouse-start-links-'));
    const common = { databaseUrl: testDb.url, databaseSchema: testDb.searchPath, dataDir, adminToken: 'gha_start_link_test_admin_token_0123456789' };
    replicaA = await startTestControlPlane(common);
    replicaB = await startTestControlPlane(common);
  }, 60_000);

  afterAll(async () => {
    await replicaA?.close();
    await replicaB?.close();
    await upstream?.close();
    await as?.close();
    await testDb?.close();
  });

  it('a link made by replica A is spent once by replica B, and the flow completes with the cookie B set', async () => {
    await replicaA.gql(`mutation { createMcpServer(input: { name: "crm", connectionType: HTTP, connectionString: "${upstream.url}", authType: OAUTH }) { errors { code } } }`);
    const started = await replicaA.gql<{ startServerOAuth: { url: string } }>('mutation { startServerOAuth(name: "crm") { url errors { code } } }');
    const link = new URL(started.startServerOAuth.url);
    expect(link.origin).toBe(replicaA.url);

    const opened = await openOneTimeLink(`${replicaB.url}${link.pathname}`);
    expect(opened.status).toBe(303);
    const location = opened.headers.get('location') ?? '';
    expect(new URL(location).origin).toBe(as.issuer);
    const cookie = opened.headers.getSetCookie().map((line) => line.split(';')[0] ?? '').join('; ');
    expect(cookie).toMatch(/^gh_oauth_flow=/);

    // Spent: the other replica refuses it too.
    const again = await fetch(link, { redirect: 'manual' });
    expect(again.status).toBe(410);
    await again.body?.cancel();

    // The callback (on A, the redirect_uri) accepts the cookie B set: one public origin in a deployment.
    const landed = await loginAndConsent(location, 'ops-admin', { cookies: { [replicaA.url]: cookie } });
    expect(landed.status).toBe(200);
    expect((await replicaB.gql<{ mcpServer: { status: string } }>('{ mcpServer(name: "crm") { status } }')).mcpServer.status).toBe('ACTIVE');
    expect(replicaA.responses.join('\n')).not.toContain(new URL(location).searchParams.get('state') ?? 'x');
  });
});
