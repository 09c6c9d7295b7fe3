/**
 * Authorization-server URLs an admin gives (setMcpServerOAuth authorizeUrl, tokenUrl, registrationUrl)
 * were accepted as http:// without the insecure opt-in (GATEHOUSE_OAUTH_ALLOW_HTTP) that discovery
 * requires of the URLs servers publish: the authorization code, PKCE verifier, client secret and refresh
 * tokens then travelled in clear to an endpoint an admin typed (or pasted from a dev setup). One rule now
 * serves every source (control-plane/oauth/urls.ts): the setter answers INVALID_URL, and settings stored
 * before (or while the opt-in was on) are refused when a flow starts (OAUTH_DISCOVERY_FAILED, no link).
 * With the opt-in (tests, loopback development) http stays accepted. The resource indicator is an
 * identifier, not an endpoint: an http one (an http MCP server's URL) is accepted. Both dialects.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { openTestDatabase, testDialects, type TestDatabase } from '../support/db.js';

interface Payload {
  setMcpServerOAuth: { errors: Array<{ field: string | null; code: string; message: string }> };
}

const SET = `mutation($i: McpServerOAuthInput!) { setMcpServerOAuth(input: $i) { errors { field code message } } }`;

describe.each(testDialects)('OAuth endpoint URLs without the insecure opt-in on %s', (dialect) => {
  let testDb: TestDatabase | undefined;
  let strict: TestControlPlane;
  let optedIn: TestControlPlane;

  beforeAll(async () => {
    if (dialect === 'postgres') testDb = await openTestDatabase('postgres');
    strict = await startTestControlPlane({ allowInsecureOAuth: false, ...(testDb ? { databaseUrl: testDb.url, databaseSchema: testDb.searchPath } : {}) });
    optedIn = await startTestControlPlane({ allowInsecureOAuth: true });
    for (const cp of [strict, optedIn]) {
      await cp.gql('mutation { createMcpServer(input: {name: "crm", connectionType: HTTP, connectionString: "http://127.0.0.1:9/mcp", authType: OAUTH}) { errors { code } } }');
    }
  }, 60_000);
  afterAll(async () => {
    await strict?.close();
    await optedIn?.close();
    await testDb?.close();
  });

  it('setMcpServerOAuth refuses http:// (and other schemes) for each endpoint', async () => {
    const https = { authorizeUrl: 'https://as.example.com/authorize', tokenUrl: 'https://as.example.com/token' };
    const cases: Array<[string, Record<string, string>]> = [
      ['authorizeUrl', { ...https, authorizeUrl: 'http://as.example.com/authorize' }],
      ['tokenUrl', { ...https, tokenUrl: 'http://as.example.com/token' }],
      ['registrationUrl', { ...https, registrationUrl: 'http://as.example.com/register' }],
      ['tokenUrl', { ...https, tokenUrl: 'HTTP://AS.EXAMPLE.COM/token' }],
      ['authorizeUrl', { ...https, authorizeUrl: 'http://127.0.0.1:8000/authorize' }],
      ['authorizeUrl', { ...https, authorizeUrl: 'javascript:alert(1)' }],
      ['tokenUrl', { ...https, tokenUrl: 'ftp://as.example.com/token' }],
    ];
    for (const [field, input] of cases) {
      const answer = await strict.gql<Payload>(SET, { i: { name: 'crm', clientId: 'c', ...input } });
      expect({ input, errors: answer.setMcpServerOAuth.errors.map((e) => [e.field, e.code]) }).toEqual({ input, errors: [[`input.${field}`, 'INVALID_URL']] });
    }
    const insecure = await strict.gql<Payload>(SET, { i: { name: 'crm', ...https, tokenUrl: 'http://as.example.com/token' } });
    expect(insecure.setMcpServerOAuth.errors[0]?.message).toContain('GATEHOUSE_OAUTH_ALLOW_HTTP');
    // Nothing was stored by the refusals.
    const shown = await strict.gql<{ mcpServer: { oauth: { authorizeUrl: string | null; tokenUrl: string | null } | null } }>('{ mcpServer(name: "crm") { oauth { authorizeUrl tokenUrl } } }');
    expect(JSON.stringify(shown)).not.toContain('http://');
  });

  it('https endpoints and an http resource indicator are accepted; with the opt-in, http endpoints are too', async () => {
    const ok = await strict.gql<Payload>(SET, {
      i: { name: 'crm', clientId: 'c', authorizeUrl: 'https://as.example.com/authorize', tokenUrl: 'https://as.example.com/token', resource: 'http://127.0.0.1:9/mcp' },
    });
    expect(ok.setMcpServerOAuth.errors).toEqual([]);
    const dev = await optedIn.gql<Payload>(SET, { i: { name: 'crm', clientId: 'c', authorizeUrl: 'http://127.0.0.1:1/authorize', tokenUrl: 'http://127.0.0.1:1/token' } });
    expect(dev.setMcpServerOAuth.errors).toEqual([]);
  });

  it('http endpoints stored earlier are refused when a flow starts: no start link', async () => {
    const server = await strict.cp.db.selectFrom('mcp_servers').select('id').where('name', '=', 'crm').executeTakeFirstOrThrow();
    await strict.cp.db
      .updateTable('server_oauth_settings')
      .set({ authorize_url: 'http://as.example.com/authorize', token_url: 'http://as.example.com/token' })
      .where('server_id', '=', server.id)
      .execute();
    const started = await strict.gql<{ startServerOAuth: { url: string | null; errors: Array<{ code: string; message: string }> } }>('mutation { startServerOAuth(name: "crm") { url errors { code message } } }');
    expect(started.startServerOAuth.url).toBeNull();
    expect(started.startServerOAuth.errors.map((e) => e.code)).toEqual(['OAUTH_DISCOVERY_FAILED']);
    expect(started.startServerOAuth.errors[0]?.message).toContain('setMcpServerOAuth');
  });
});
