/**
 * The control plane's `/metrics` answered anyone: every MCP server's name and upstream health (which ones
 * refuse their credentials, which are down), the config version and the node stream count, from the one
 * component that holds every secret. It now needs an admin token (VIEWER is enough) or the dedicated
 * GATEHOUSE_METRICS_TOKEN; anything else (nothing, a wrong or revoked token, the node token, the metrics
 * token's hash) gets the typed 401. On every test dialect (admin tokens are looked up in the database).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashToken } from '../../control-plane/crypto/tokens.js';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { openTestDatabase, testDialects, type TestDatabase } from '../support/db.js';

const METRICS_TOKEN = 'ghm_metrics-scraper-token-0123456789abcdef';

describe.each(testDialects)('control-plane /metrics credentials on %s', (dialect) => {
  let testDb: TestDatabase | undefined;
  let cp: TestControlPlane;
  let viewer = '';
  let revoked = '';

  beforeAll(async () => {
    if (dialect === 'postgres') testDb = await openTestDatabase('postgres');
    cp = await startTestControlPlane({
      env: { GATEHOUSE_METRICS_TOKEN: METRICS_TOKEN },
      ...(testDb ? { databaseUrl: testDb.url, databaseSchema: testDb.searchPath } : {}),
    });
    await cp.gql('mutation { createMcpServer(input: {name: "secret_crm", connectionType: HTTP, connectionString: "http://127.0.0.1:9/mcp"}) { errors { code } } }');
    viewer = (await cp.gql<{ createAdminToken: { token: string } }>('mutation { createAdminToken(input: {name: "scraper", role: VIEWER}) { token } }')).createAdminToken.token;
    const gone = await cp.gql<{ createAdminToken: { token: string; adminToken: { id: string } } }>('mutation { createAdminToken(input: {name: "gone", role: ADMIN}) { token adminToken { id } } }');
    revoked = gone.createAdminToken.token;
    await cp.gql(`mutation { revokeAdminToken(input: {id: "${gone.createAdminToken.adminToken.id}"}) { errors { code } } }`);
  }, 60_000);
  afterAll(async () => {
    await cp?.close();
    await testDb?.close();
  });

  const scrape = (authorization?: string) => fetch(`${cp.url}/metrics`, { headers: authorization === undefined ? {} : { authorization } });

  it('refuses a scrape without an accepted credential, with the typed 401', async () => {
    const refused: Array<[string, string | undefined]> = [
      ['no credential', undefined],
      ['empty bearer', 'Bearer '],
      ['wrong token', 'Bearer ghm_not-the-metrics-token'],
      ['revoked admin token', `Bearer ${revoked}`],
      ['the node token', `Bearer ${cp.cp.nodeToken ?? ''}`],
      ['the metrics token hash', `Bearer ${hashToken(METRICS_TOKEN)}`],
      ['basic auth', `Basic ${Buffer.from(`x:${METRICS_TOKEN}`).toString('base64')}`],
      ['a huge header', `Bearer ${'x'.repeat(16_000)}`],
    ];
    for (const [what, authorization] of refused) {
      const response = await scrape(authorization);
      const text = await response.text();
      expect({ what, status: response.status, type: (JSON.parse(text) as { type: string }).type }).toEqual({ what, status: 401, type: 'admin_token_required' });
      expect(text).not.toContain('secret_crm');
      expect(text).not.toContain('gatehouse_config_version');
    }
  });

  it('serves the metrics to an ADMIN token, a VIEWER token and the metrics token', async () => {
    for (const token of [cp.adminToken, viewer, METRICS_TOKEN]) {
      const response = await scrape(`Bearer ${token}`);
      expect(response.status).toBe(200);
      expect(await response.text()).toMatch(/gatehouse_config_version [1-9]/);
    }
  });

  it('the metrics token opens nothing else', async () => {
    const graphql = await fetch(`${cp.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${METRICS_TOKEN}` },
      body: JSON.stringify({ query: '{ mcpServers { edges { node { name } } } }' }),
    });
    expect(graphql.status).toBe(401);
    const exported = await fetch(`${cp.url}/audit/export`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    expect(exported.status).toBe(401);
  });
});
