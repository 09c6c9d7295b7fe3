/**
 * Credentials inside the other URLs the control plane stores: an LLM provider's baseUrl (Azure OpenAI's
 * `?api-key=…`, Google-style `?key=…`, a gateway's `/t/<token>`) and a server's OAuth settings (authorizeUrl,
 * tokenUrl, registrationUrl, resource: `?sig=…`, `?client_secret=…`, `?access_token=…`). Only
 * `user:pass@` was refused; any other credential in them was stored and shown in full by every read
 * (providers, McpServer.oauth, exportConfig, applyConfig plans) to every admin token, VIEWER included, and a
 * provider's was shipped in clear in snapshots. Now they follow the connection URL's rule
 * (control-plane/repos/url-secrets.ts, 8ca4211): stored sealed, shown with each credential-bearing part as
 * `***`, the shown form given back keeps the stored URL, `***` with other changes is INVALID_URL; the node
 * still reaches the provider with the whole URL, an OAuth flow still uses the whole endpoint URLs, and rows
 * stored before are sealed at startup. Both dialects.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DataPlaneNode } from '../../data-plane/node/node.js';
import { sealSettingsUrls } from '../../control-plane/repos/oauth.js';
import { sealProviderBaseUrls } from '../../control-plane/repos/providers.js';
import { startAnthropicStandIn, type AnthropicStandIn } from '../support/anthropic-stand-in.js';
import type { TestControlPlane } from '../support/control-plane.js';
import { testDialects } from '../support/db.js';
import { startNodeOf } from '../support/node-of.js';
import { expectNoSecretIn, snapshotTexts, startSecretsControlPlane, type ViewerReads } from '../support/secret-reads.js';
import { openOneTimeLink } from '../support/one-time-link.js';
import { waitFor } from '../support/wait.js';

const SECRETS = {
  apiKey: 'azureApiKey0123456789abcdef',
  key: 'AIzaSyD0123456789abcdefghij',
  path: '9c1f4a7e-0d3b-4c8e-9f21-6a5b7c8d9e0f',
  sig: 'sv2024sigValue0123456789ABC',
  clientSecret: 'clientSecretInUrl0123456789',
  accessToken: 'accessTokenInUrl0123456789x',
  token: 'resourceTokenInUrl012345678',
  newKey: 'brandNewApiKey0123456789xyz',
  legacy: 'legacyStoredSecret012345678',
};
const PRICE = { model: 'claude-sonnet-4*', inputPerMTok: 3, outputPerMTok: 15, cacheWritePerMTok: 3.75, cacheReadPerMTok: 0.3 };

interface Payload {
  errors: Array<{ field: string | null; code: string }>;
}

describe.each(testDialects)('credentials inside provider and OAuth settings URLs on %s', (dialect) => {
  let planes: Awaited<ReturnType<typeof startSecretsControlPlane>>;
  let cp: TestControlPlane;
  let standIn: AnthropicStandIn;
  let node: DataPlaneNode | undefined;
  let viewer: ViewerReads;

  beforeAll(async () => {
    planes = await startSecretsControlPlane(dialect);
    ({ cp, viewer } = planes);
    standIn = await startAnthropicStandIn({ toolName: 'x', toolInput: {} });
  }, 60_000);
  afterAll(async () => {
    await node?.close();
    await standIn?.close();
    await planes?.close();
  });

  const upsert = (name: string, baseUrl: string) =>
    cp.gql<{ upsertProvider: Payload & { provider: { baseUrl: string } | null } }>(
      'mutation($n: String!, $u: String!, $p: [ModelPriceInput!]) { upsertProvider(input: {name: $n, baseUrl: $u, apiKey: "sk-ant-provider-0123456789", prices: $p}) { provider { baseUrl } errors { field code } } }',
      { n: name, u: baseUrl, p: [PRICE] },
    );

  const expectNoSecretAnywhere = (): void => expectNoSecretIn(cp, viewer, Object.values(SECRETS));

  it('hides credentials in a provider baseUrl on every read, plan and export', async () => {
    const shapes: Array<[string, string, string]> = [
      ['azure', `https://x.openai.azure.com/?api-key=${SECRETS.apiKey}`, 'https://x.openai.azure.com/?api-key=***'],
      ['google', `https://llm.example.com/v1?key=${SECRETS.key}&alt=json`, 'https://llm.example.com/v1?key=***&alt=json'],
      ['sas', `https://llm.example.com/v1?sv=2024&sig=${SECRETS.sig}`, 'https://llm.example.com/v1?sv=2024&sig=***'],
      ['plain', 'https://api.anthropic.com', 'https://api.anthropic.com'],
    ];
    for (const [name, url, shown] of shapes) {
      const made = await upsert(name, url);
      expect({ name, errors: made.upsertProvider.errors, shown: made.upsertProvider.provider?.baseUrl }).toEqual({ name, errors: [], shown });
    }
    // Given back as read (with another change): kept. With the hidden part's neighbour changed: refused.
    const kept = await upsert('azure', 'https://x.openai.azure.com/?api-key=***');
    expect(kept.upsertProvider.errors).toEqual([]);
    const refused = await upsert('azure', 'https://y.openai.azure.com/?api-key=***');
    expect(refused.upsertProvider.errors).toEqual([{ field: 'input.baseUrl', code: 'INVALID_URL' }]);
    const created = await upsert('fresh', 'https://y.openai.azure.com/?api-key=***');
    expect(created.upsertProvider.errors).toEqual([{ field: 'input.baseUrl', code: 'INVALID_URL' }]);

    await cp.gql('{ providers { name baseUrl } exportConfig }');
    await viewer.read('{ providers { name baseUrl } provider(name: "google") { baseUrl } }');
    const plan = await cp.gql<{ applyConfig: { changes: Array<{ name: string; fields: Array<{ field: string; before: string | null; after: string | null }> }> } }>(
      'mutation($d: JSON!) { applyConfig(document: $d, dryRun: true) { changes { name fields { field before after } } } }',
      { d: { providers: [{ name: 'azure', base_url: `https://x.openai.azure.com/?api-key=${SECRETS.newKey}`, api_key: 'sk-ant-provider-0123456789', prices: [PRICE] }] } },
    );
    expect(plan.applyConfig.changes.flatMap((c) => c.fields)).toContainEqual({ field: 'baseUrl', before: 'https://x.openai.azure.com/?api-key=***', after: 'https://x.openai.azure.com/?api-key=***' });
    // The whole URL as stored is no change.
    const same = await cp.gql<{ applyConfig: { changes: Array<{ fields: Array<{ field: string }> }> } }>(
      'mutation($d: JSON!) { applyConfig(document: $d, dryRun: true) { changes { fields { field } } } }',
      { d: { providers: [{ name: 'google', base_url: `https://llm.example.com/v1?key=${SECRETS.key}&alt=json`, api_key: 'sk-ant-provider-0123456789', prices: [PRICE] }] } },
    );
    expect(same.applyConfig.changes.flatMap((c) => c.fields.map((f) => f.field))).not.toContain('baseUrl');
    const exported = await cp.gql<{ exportConfig: unknown }>('{ exportConfig }');
    const reapplied = await cp.gql<{ applyConfig: { errors: unknown[]; changes: Array<{ fields: Array<{ field: string }> }> } }>(
      'mutation($d: JSON!) { applyConfig(document: $d) { errors { code field } changes { fields { field } } } }',
      { d: exported.exportConfig },
    );
    expect(reapplied.applyConfig.errors).toEqual([]);
    expect(reapplied.applyConfig.changes.flatMap((c) => c.fields.map((f) => f.field))).not.toContain('baseUrl');
    expectNoSecretAnywhere();
  });

  it('ships the whole provider URL to nodes sealed, and the node reaches the provider with it', async () => {
    await upsert('anthropic', `${standIn.url}/t/${SECRETS.path}`);
    const read = await cp.gql<{ provider: { baseUrl: string } }>('{ provider(name: "anthropic") { baseUrl } }');
    expect(read.provider.baseUrl).toBe(`${standIn.url}/t/***`);

    const { text, decoded } = await snapshotTexts(cp);
    for (const secret of Object.values(SECRETS)) {
      expect(text).not.toContain(secret);
      expect(decoded).not.toContain(secret);
    }

    const user = await cp.gql<{ createUser: { user: { id: string } } }>('mutation { createUser(input: { email: "llm@example.com" }) { user { id } } }');
    const created = await cp.gql<{ createVirtualKey: { key: string } }>(
      'mutation($u: ID!) { createVirtualKey(input: { userId: $u, name: "llm", servers: [], allowNoServers: true }) { key } }',
      { u: user.createUser.user.id },
    );
    const key = created.createVirtualKey.key;
    node = await startNodeOf(cp, { nodeId: `url-secrets-${dialect}`, env: {}, reportIntervalMs: 600_000 });
    const body = JSON.stringify({ model: 'claude-sonnet-4-5', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] });
    await waitFor(
      async () => (await fetch(`${node!.url}/anthropic/v1/messages`, { method: 'POST', headers: { 'x-api-key': key, 'content-type': 'application/json' }, body })).status === 200,
      { what: 'a message through the node', timeoutMs: 15_000 },
    );
    expect(standIn.requests.some((r) => r.url === `/t/${SECRETS.path}/v1/messages`)).toBe(true);
    expectNoSecretAnywhere();
  });

  it('hides credentials in OAuth settings URLs, and a flow still uses the whole URLs', async () => {
    await cp.gql('mutation { createMcpServer(input: {name: "notes", connectionType: HTTP, connectionString: "http://127.0.0.1:9/mcp", authType: OAUTH}) { errors { code } } }');
    const whole = {
      authorizeUrl: `https://as.example.com/oauth2/authorize?sig=${SECRETS.sig}`,
      tokenUrl: `https://as.example.com/oauth2/token?client_secret=${SECRETS.clientSecret}`,
      registrationUrl: `https://as.example.com/register?access_token=${SECRETS.accessToken}`,
      resource: `https://mcp.example.com/mcp?token=${SECRETS.token}`,
    };
    const shown = {
      authorizeUrl: 'https://as.example.com/oauth2/authorize?sig=***',
      tokenUrl: 'https://as.example.com/oauth2/token?client_secret=***',
      registrationUrl: 'https://as.example.com/register?access_token=***',
      resource: 'https://mcp.example.com/mcp?token=***',
    };
    const set = (urls: Record<string, string>) =>
      cp.gql<{ setMcpServerOAuth: Payload }>(
        'mutation($a: String!, $t: String!, $g: String!, $r: String!) { setMcpServerOAuth(input: {name: "notes", clientId: "gatehouse-test", authorizeUrl: $a, tokenUrl: $t, registrationUrl: $g, resource: $r}) { errors { field code } } }',
        { a: urls.authorizeUrl, t: urls.tokenUrl, g: urls.registrationUrl, r: urls.resource },
      );
    const read = async () => (await cp.gql<{ mcpServer: { oauth: Record<string, string> } }>('{ mcpServer(name: "notes") { oauth { authorizeUrl tokenUrl registrationUrl resource } } }')).mcpServer.oauth;

    expect((await set(whole)).setMcpServerOAuth.errors).toEqual([]);
    expect(await read()).toEqual(shown);
    await viewer.read('{ mcpServer(name: "notes") { oauth { authorizeUrl tokenUrl registrationUrl resource } } }');
    // Given back as read: kept; `***` with another change: refused, nothing stored.
    expect((await set(shown)).setMcpServerOAuth.errors).toEqual([]);
    const changed = await set({ ...shown, tokenUrl: 'https://as2.example.com/oauth2/token?client_secret=***' });
    expect(changed.setMcpServerOAuth.errors).toEqual([{ field: 'input.tokenUrl', code: 'INVALID_URL' }]);
    expect(await read()).toEqual(shown);

    // The flow opens the sealed URLs: the browser is sent to the whole authorization URL, with the whole resource.
    const started = await cp.gql<{ startServerOAuth: { url: string | null; errors: unknown[] } }>('mutation { startServerOAuth(name: "notes") { url errors { code message } } }');
    expect(started.startServerOAuth.errors).toEqual([]);
    const opened = await openOneTimeLink(started.startServerOAuth.url ?? '');
    expect(opened.status).toBe(303);
    const location = new URL(opened.headers.get('location') ?? '');
    expect(`${location.origin}${location.pathname}`).toBe('https://as.example.com/oauth2/authorize');
    expect(location.searchParams.get('sig')).toBe(SECRETS.sig);
    expect(location.searchParams.get('resource')).toBe(whole.resource);
    expectNoSecretAnywhere();
  });

  it('never echoes a refused URL or write-only value in an error message', async () => {
    const refused: Array<[string, Record<string, unknown>]> = [
      ['mutation($u: String!) { p: createMcpServer(input: {name: "envurl", connectionType: HTTP, connectionString: $u}) { errors { field code message } } }', { u: `env.https://mcp.example.com/mcp?api_key=${SECRETS.legacy}` }],
      [
        'mutation($v: String!) { p: createMcpServer(input: {name: "envheader", connectionType: HTTP, connectionString: "https://mcp.example.com/mcp", headers: [{name: "x-api-key", value: $v}]}) { errors { field code message } } }',
        { v: `env.${SECRETS.legacy}-not-a-name` },
      ],
      ['mutation($u: String!) { p: upsertProvider(input: {name: "envprovider", baseUrl: $u, apiKey: "sk-ant-provider-0123456789"}) { errors { field code message } } }', { u: `env.https://llm.example.com/?key=${SECRETS.legacy}` }],
    ];
    for (const [query, variables] of refused) {
      const answer = await cp.gql<{ p: { errors: Array<{ code: string }> } }>(query, variables);
      expect(answer.p.errors.map((e) => e.code)).toEqual([expect.stringMatching(/^INVALID_/)]);
    }
    expectNoSecretAnywhere();
  });

  it('seals URLs stored whole before the rule at startup', async () => {
    const provider = await cp.cp.db.selectFrom('providers').select('id').where('name', '=', 'google').executeTakeFirstOrThrow();
    await cp.cp.db.updateTable('providers').set({ base_url: `https://llm.example.com/v1?key=${SECRETS.legacy}`, base_url_secret: null }).where('id', '=', provider.id).execute();
    const server = await cp.cp.db.selectFrom('mcp_servers').select('id').where('name', '=', 'notes').executeTakeFirstOrThrow();
    await cp.cp.db.updateTable('server_oauth_settings').set({ token_url: `https://as.example.com/oauth2/token?client_secret=${SECRETS.legacy}`, token_url_secret: null }).where('server_id', '=', server.id).execute();

    expect(await sealProviderBaseUrls(cp.cp.db, cp.cp.box)).toBe(1);
    expect(await sealProviderBaseUrls(cp.cp.db, cp.cp.box)).toBe(0);
    expect(await sealSettingsUrls(cp.cp.db, cp.cp.box)).toBe(1);
    expect(await sealSettingsUrls(cp.cp.db, cp.cp.box)).toBe(0);
    const read = await cp.gql<{ provider: { baseUrl: string }; mcpServer: { oauth: { tokenUrl: string; authorizeUrl: string } } }>(
      '{ provider(name: "google") { baseUrl } mcpServer(name: "notes") { oauth { tokenUrl authorizeUrl } } }',
    );
    expect(read).toEqual({
      provider: { baseUrl: 'https://llm.example.com/v1?key=***' },
      mcpServer: { oauth: { tokenUrl: 'https://as.example.com/oauth2/token?client_secret=***', authorizeUrl: 'https://as.example.com/oauth2/authorize?sig=***' } },
    });
    const sealed = await cp.cp.db.selectFrom('providers').select(['base_url_secret']).where('id', '=', provider.id).executeTakeFirstOrThrow();
    expect(sealed.base_url_secret).not.toContain(SECRETS.legacy);
    expectNoSecretAnywhere();
  });
});
