/**
 * URLs the control plane stores are shown on reads as they were given, so a credential embedded in one
 * (`https://user:password@host/…`) would be readable by every admin token, VIEWER included, while the
 * fields meant for credentials are write-only. connectionString and a provider's baseUrl refused such URLs;
 * the OAuth settings' authorizeUrl, tokenUrl, registrationUrl and resource stored and showed them. Every
 * URL field, through its mutation and through applyConfig, now refuses embedded credentials with
 * INVALID_URL, and the password never comes back in any answer.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';

const PASSWORD = 'url-embedded-password-0123456789';
const WITH_CREDENTIALS = `https://svc:${PASSWORD}@auth.example.com/path`;

interface Payload {
  errors: Array<{ field: string | null; code: string }>;
}

describe('URLs with embedded credentials', () => {
  let cp: TestControlPlane;

  beforeAll(async () => {
    cp = await startTestControlPlane();
    await cp.gql('mutation { createMcpServer(input: {name: "notes", connectionType: HTTP, connectionString: "http://127.0.0.1:9/mcp", authType: OAUTH}) { errors { code } } }');
  }, 60_000);
  afterAll(async () => {
    await cp?.close();
  });

  it('are refused in every URL field a read shows, through mutations and applyConfig', async () => {
    const refused: Array<[string, string, Record<string, unknown>, (data: Record<string, Payload>) => Payload]> = [
      ['createMcpServer.connectionString', 'mutation($u: String!) { p: createMcpServer(input: {name: "crm", connectionType: HTTP, connectionString: $u}) { errors { field code } } }', { u: WITH_CREDENTIALS }, (d) => d.p!],
      ['updateMcpServer.connectionString', 'mutation($u: String!) { p: updateMcpServer(input: {name: "notes", connectionString: $u}) { errors { field code } } }', { u: WITH_CREDENTIALS }, (d) => d.p!],
      ['upsertProvider.baseUrl', 'mutation($u: String!) { p: upsertProvider(input: {name: "anthropic", baseUrl: $u, apiKey: "sk-ant-0123456789abcdef"}) { errors { field code } } }', { u: WITH_CREDENTIALS }, (d) => d.p!],
      ...(['authorizeUrl', 'tokenUrl', 'registrationUrl', 'resource'] as const).map(
        (field): [string, string, Record<string, unknown>, (data: Record<string, Payload>) => Payload] => [
          `setMcpServerOAuth.${field}`,
          `mutation($u: String!, $ok: String!) { p: setMcpServerOAuth(input: {name: "notes", authorizeUrl: ${field === 'authorizeUrl' ? '$u' : '$ok'}, tokenUrl: ${field === 'tokenUrl' ? '$u' : '$ok'}, ${field === 'registrationUrl' || field === 'resource' ? `${field}: $u` : ''}}) { errors { field code } } }`,
          { u: WITH_CREDENTIALS, ok: 'https://auth.example.com/ok' },
          (d) => d.p!,
        ],
      ),
      [
        'applyConfig connection_string',
        'mutation($d: JSON!) { p: applyConfig(document: $d) { errors { field code } } }',
        { d: { mcp_servers: [{ name: 'crm', connection_type: 'http', connection_string: WITH_CREDENTIALS }] } },
        (d) => d.p!,
      ],
      [
        'applyConfig providers base_url',
        'mutation($d: JSON!) { p: applyConfig(document: $d) { errors { field code } } }',
        { d: { providers: [{ name: 'anthropic', base_url: WITH_CREDENTIALS, api_key: 'sk-ant-0123456789abcdef' }] } },
        (d) => d.p!,
      ],
    ];
    for (const [what, query, variables, payload] of refused) {
      const data = await cp.gql<Record<string, Payload>>(query, variables);
      expect({ what, codes: payload(data).errors.map((e) => e.code) }).toEqual({ what, codes: ['INVALID_URL'] });
    }
    await cp.gql('{ mcpServers { edges { node { name connectionString oauth { authorizeUrl tokenUrl registrationUrl resource } } } } providers { name baseUrl } exportConfig }');
    for (const body of cp.responses) expect(body).not.toContain(PASSWORD);
  });
});
