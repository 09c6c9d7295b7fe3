/**
 * applyConfig and exportConfig over GraphQL on every test dialect: the article's documents (snake_case,
 * `env.` references and plaintext headers) applied, idempotency (no change, no version bump), dry runs,
 * errors by JSON path with nothing applied, prune by section, export → apply as a no-op (sealed secrets as
 * `{stored}` markers), keys printed once, the refused `virtual_key`, budgets/rate limits, and warnings.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordToolCatalogs } from '../../../control-plane/repos/mcp-servers.js';
import { testDialects } from '../../support/db.js';
import { createHarness, dataOf, type Harness } from '../graphql/harness.js';

interface UserError {
  field: string | null;
  code: string;
  message: string;
}
interface Change {
  kind: string;
  action: string;
  name: string;
  path: string | null;
  fields: Array<{ field: string; before: string | null; after: string | null }>;
}
interface ApplyPayload {
  dryRun: boolean;
  applied: boolean;
  changes: Change[];
  keys: Array<{ id: string; name: string; user: string; key: string }>;
  configVersion: number | null;
  warnings: UserError[];
  errors: UserError[];
}

const APPLY = `mutation($document: JSON!, $dryRun: Boolean, $prune: Boolean) {
  applyConfig(document: $document, dryRun: $dryRun, prune: $prune) {
    dryRun applied configVersion
    changes { kind action name path fields { field before after } }
    keys { id name user key }
    warnings { field code message }
    errors { field code message }
  }
}`;

const CRM_TOKEN = 'Bearer your-service-token-7f3a9c';

/** The article's two server examples, as written there (plus its key example's servers). */
function articleDocument(): Record<string, unknown> {
  return {
    mcp_servers: [
      {
        name: 'internal_crm',
        connection_type: 'http',
        connection_string: 'https://crm-mcp.internal.example.com/mcp',
        auth_type: 'headers',
        headers: { Authorization: CRM_TOKEN, 'X-Tenant-ID': 'production' },
        tools_to_execute: ['get_customer', 'list_accounts'],
        allowed_extra_headers: ['x-user-token', 'x-tenant-id'],
      },
      {
        name: 'data_warehouse',
        connection_type: 'http',
        connection_string: 'env.DW_MCP_URL',
        auth_type: 'headers',
        headers: { Authorization: 'env.DW_SERVICE_TOKEN' },
        tools_to_execute: ['*'],
      },
    ],
    users: [{ email: 'alice@example.com', name: 'Alice' }],
    virtual_keys: [{ name: 'alice-laptop', user: 'alice@example.com', mcp_servers: ['internal_crm'] }],
  };
}

describe.each(testDialects)('applyConfig on %s', (dialect) => {
  let h: Harness;

  beforeAll(async () => {
    h = await createHarness(dialect);
  });
  afterAll(async () => {
    await h?.close();
  });

  async function apply(document: unknown, options: { dryRun?: boolean; prune?: boolean } = {}): Promise<ApplyPayload> {
    return dataOf(await h.gql<{ applyConfig: ApplyPayload }>(APPLY, { document, ...options })).applyConfig;
  }
  async function version(): Promise<number> {
    return dataOf(await h.gql<{ configVersion: number }>('{ configVersion }')).configVersion;
  }
  async function exported(): Promise<Record<string, unknown>> {
    return dataOf(await h.gql<{ exportConfig: Record<string, unknown> }>('{ exportConfig }')).exportConfig;
  }
  async function serverNames(): Promise<string[]> {
    const data = dataOf(await h.gql<{ mcpServers: { edges: Array<{ node: { name: string } }> } }>('{ mcpServers(first: 100) { edges { node { name } } } }'));
    return data.mcpServers.edges.map((e) => e.node.name).sort();
  }

  it('dry-runs the article documents: the diff, and nothing stored', async () => {
    const before = await version();
    const dry = await apply(articleDocument(), { dryRun: true });
    expect(dry.errors).toEqual([]);
    expect(dry).toMatchObject({ dryRun: true, applied: false, keys: [], configVersion: before });
    expect(dry.changes.map((c) => `${c.action} ${c.kind} ${c.name}`)).toEqual([
      'CREATE USER alice@example.com',
      'CREATE MCP_SERVER internal_crm',
      'CREATE MCP_SERVER data_warehouse',
      'CREATE VIRTUAL_KEY alice@example.com/alice-laptop',
    ]);
    const crm = dry.changes.find((c) => c.name === 'internal_crm')!;
    expect(crm.path).toBe('mcp_servers[0]');
    expect(crm.fields.find((f) => f.field === 'headers')?.after).toContain('X-Tenant-ID=');
    expect(await serverNames()).toEqual([]);
    expect(await version()).toBe(before);
    expect(h.bodies.join('\n')).not.toContain('your-service-token-7f3a9c');
  });

  it('applies them, prints the new key once, and a second apply changes nothing', async () => {
    const first = await apply(articleDocument());
    expect(first.errors).toEqual([]);
    expect(first.applied).toBe(true);
    expect(first.changes).toHaveLength(4);
    expect(first.keys).toEqual([{ id: expect.any(String), name: 'alice-laptop', user: 'alice@example.com', key: expect.stringMatching(/^gk_/) }]);
    expect(await serverNames()).toEqual(['data_warehouse', 'internal_crm']);

    const server = dataOf(
      await h.gql<{ mcpServer: { connectionString: string; authType: string; headers: Array<{ name: string; value: string; source: string }> } }>(
        '{ mcpServer(name: "data_warehouse") { connectionString authType headers { name value source } } }',
      ),
    ).mcpServer;
    expect(server).toEqual({ connectionString: 'env.DW_MCP_URL', authType: 'HEADERS', headers: [{ name: 'Authorization', value: 'env.DW_SERVICE_TOKEN', source: 'ENV' }] });

    const v = await version();
    const again = await apply(articleDocument());
    expect(again).toMatchObject({ applied: false, changes: [], keys: [], errors: [], configVersion: v });
    expect(await version()).toBe(v);
    expect(h.bodies.join('\n')).not.toContain('your-service-token-7f3a9c');
  });

  it('reads the camelCase shape as the same configuration', async () => {
    const camel = {
      mcpServers: [
        {
          name: 'internal_crm',
          connectionType: 'HTTP',
          connectionString: 'https://crm-mcp.internal.example.com/mcp',
          authType: 'HEADERS',
          headers: [
            { name: 'Authorization', value: CRM_TOKEN },
            { name: 'X-Tenant-ID', value: 'production' },
          ],
          toolsToExecute: ['get_customer', 'list_accounts'],
          allowedExtraHeaders: ['x-user-token', 'x-tenant-id'],
        },
      ],
      virtualKeys: [{ name: 'alice-laptop', user: 'alice@example.com', servers: [{ server: 'internal_crm', tools: ['*'] }] }],
    };
    expect(await apply(camel)).toMatchObject({ errors: [], changes: [] });
  });

  it('reports every problem by JSON path and applies nothing', async () => {
    const v = await version();
    const doc = articleDocument();
    const servers = doc.mcp_servers as Array<Record<string, unknown>>;
    servers.push(
      { name: 'new_valid', connection_type: 'http', connection_string: 'https://ok.example/mcp' },
      { name: 'bad-name', connection_type: 'carrier-pigeon', connectionString: 'x', connection_string: 'y' },
      { name: 'bad_header', connection_type: 'sse', connection_string: 'https://x.example/sse', auth_type: 'headers', headers: { 'Bad Header': 'v' } },
      { name: 'typo', connection_type: 'http', connection_string: 'https://x.example', tools_to_exectue: ['*'] },
    );
    (doc.virtual_keys as Array<Record<string, unknown>>).push(
      { name: 'k2', user: 'nobody@example.com', mcp_servers: ['no_such_server'] },
      { name: 'k3', user: 'alice@example.com', mcp_servers: [] },
    );
    doc.surprise = true;
    const result = await apply(doc);
    expect(result.applied).toBe(false);
    expect(result.changes).toEqual([]);
    const byField = Object.fromEntries(result.errors.map((e) => [e.field, e.code]));
    expect(byField).toMatchObject({
      'document.surprise': 'UNKNOWN_FIELD',
      'document.mcp_servers[3].connection_type': 'INVALID_VALUE',
      'document.mcp_servers[3].connection_string': 'DUPLICATE',
      'document.mcp_servers[4].headers["Bad Header"]': 'INVALID_VALUE',
      'document.mcp_servers[5].tools_to_exectue': 'UNKNOWN_FIELD',
      'document.virtual_keys[1].user': 'NOT_FOUND',
      'document.virtual_keys[2].mcp_servers': 'NO_SERVERS',
    });
    // A bad header name is reported as such, not as a missing header.
    expect(result.errors.filter((e) => e.field?.startsWith('document.mcp_servers[4]')).map((e) => e.code)).toEqual(['INVALID_VALUE']);
    expect(result.errors.find((e) => e.field === 'document.mcp_servers[5].tools_to_exectue')?.message).toContain('did you mean "tools_to_execute"');
    // The valid entry in the same document was not applied either.
    expect(result.errors.some((e) => e.field?.startsWith('document.mcp_servers[2]'))).toBe(false);
    expect(await serverNames()).toEqual(['data_warehouse', 'internal_crm']);
    expect(await version()).toBe(v);
  });

  it('refuses a caller-chosen key value without echoing it', async () => {
    const doc = { virtual_keys: [{ virtual_key: 'sk-bf-dev-alice-secretvalue', name: 'x', user: 'alice@example.com', mcp_servers: ['internal_crm'] }] };
    const result = await apply(doc);
    expect(result.errors).toEqual([{ field: 'document.virtual_keys[0].virtual_key', code: 'KEY_VALUE_REFUSED', message: expect.stringContaining('never accepts a chosen key value') }]);
    expect(JSON.stringify(result)).not.toContain('secretvalue');
  });

  it('reads budget and rate_limit into budgets/rateLimit, refused until virtual keys store them', async () => {
    // The schema tells whether keys accept limits yet; when they do, this test expects them applied.
    const input = dataOf(await h.gql<{ __type: { inputFields: Array<{ name: string }> } }>('{ __type(name: "CreateVirtualKeyInput") { inputFields { name } } }'));
    const keysAcceptLimits = input.__type.inputFields.some((f) => f.name === 'budgets');
    const doc = {
      virtual_keys: [
        { name: 'alice-laptop', user: 'alice@example.com', mcp_servers: ['internal_crm'], budget: { daily_usd: 10 }, rate_limit: { rpm: 60 } },
      ],
    };
    const result = await apply(doc, { dryRun: true });
    if (keysAcceptLimits) {
      expect(result.errors).toEqual([]);
      expect(result.changes[0]?.fields.map((f) => f.field)).toEqual(expect.arrayContaining(['budgets', 'rateLimit']));
    } else {
      expect(result.errors.map((e) => [e.field, e.code])).toEqual([
        ['document.virtual_keys[0].budget', 'NOT_SUPPORTED'],
        ['document.virtual_keys[0].rate_limit', 'NOT_SUPPORTED'],
      ]);
    }
    // Bad values are reported by path either way.
    const bad = await apply({ virtual_keys: [{ name: 'x', user: 'alice@example.com', mcp_servers: ['internal_crm'], budget: { daily_usd: -1 }, rate_limit: { rpm: 1.5 } }] });
    expect(bad.errors.map((e) => [e.field, e.code])).toEqual(
      expect.arrayContaining([
        ['document.virtual_keys[0].budget.daily_usd', 'INVALID_VALUE'],
        ['document.virtual_keys[0].rate_limit.rpm', 'INVALID_VALUE'],
      ]),
    );
  });

  it('warns about tools the known catalog lacks, without refusing', async () => {
    await recordToolCatalogs(h.database.db, [{ server: 'internal_crm', tools: [{ name: 'get_customer', description: null }, { name: 'list_accounts', description: null }] }]);
    const doc = articleDocument();
    (doc.virtual_keys as Array<Record<string, unknown>>)[0]!.mcp_servers = [{ server: 'internal_crm', tools: ['get_customer', 'nosuchtool'] }];
    const result = await apply(doc);
    expect(result.errors).toEqual([]);
    expect(result.warnings).toEqual([
      { field: 'document.virtual_keys[0].mcp_servers[0].tools[1]', code: 'UNKNOWN_TOOL', message: expect.stringContaining('"nosuchtool"') },
    ]);
    expect(result.changes.map((c) => `${c.action} ${c.name}`)).toEqual(['UPDATE alice@example.com/alice-laptop']);
  });

  it('exports a document that applies as a no-op, secrets only as references', async () => {
    // A stdio server with a sealed env value and a per-user-headers server round-trip too.
    const stdio = await apply({
      mcp_servers: [
        ...(articleDocument().mcp_servers as unknown[]),
        { name: 'local_tool', connection_type: 'stdio', stdio: { command: 'node', args: ['tool.js'], env: { API_KEY: 'stdio-secret-value-1234', MODE: 'env.TOOL_MODE' } }, tools_to_execute: ['*'] },
        { name: 'per_user', connection_type: 'http', connection_string: 'https://p.example/mcp', auth_type: 'per_user_headers', per_user_header_keys: ['X-User-Token'], tools_to_execute: ['*'] },
      ],
    });
    expect(stdio.errors).toEqual([]);
    expect(stdio.changes.map((c) => `${c.action} ${c.name}`)).toEqual(['CREATE local_tool', 'CREATE per_user']);
    const doc = await exported();
    expect(JSON.stringify(doc)).not.toContain('stdio-secret-value-1234');
    const text = JSON.stringify(doc);
    expect(text).not.toContain('your-service-token-7f3a9c');
    const crm = (doc.mcpServers as Array<{ name: string; headers: Array<{ name: string; value: unknown }> }>).find((s) => s.name === 'internal_crm')!;
    expect(crm.headers).toEqual([
      { name: 'Authorization', value: { stored: 'Bear…3a9c' } },
      { name: 'X-Tenant-ID', value: { stored: '••••' } },
    ]);
    const v = await version();
    expect(await apply(doc)).toMatchObject({ errors: [], changes: [], applied: false });
    expect(await version()).toBe(v);
    // And with prune: the export names everything, so nothing goes.
    expect(await apply(doc, { prune: true })).toMatchObject({ errors: [], changes: [] });
  });

  it('a {stored} marker with nothing stored under that name is an error at its path', async () => {
    const result = await apply({
      mcp_servers: [{ name: 'fresh', connection_type: 'http', connection_string: 'https://f.example', auth_type: 'headers', headers: { Authorization: { stored: 'sk-a…x9f2' } } }],
    });
    expect(result.errors).toEqual([{ field: 'document.mcp_servers[0].headers.Authorization', code: 'REQUIRED', message: expect.stringContaining('Authorization') }]);
  });

  it('prunes only within the sections the document gives', async () => {
    const added = await apply({
      mcp_servers: [{ name: 'scratch', connection_type: 'sse', connection_string: 'https://s.example/sse', tools_to_execute: ['*'] }],
      users: [{ email: 'bob@example.com' }],
      virtual_keys: [{ name: 'bob-ci', user: 'bob@example.com', mcp_servers: ['scratch'] }],
    });
    expect(added.errors).toEqual([]);
    // Only servers given: users and keys are left alone, but bob-ci loses its grant with the server.
    const servers = articleDocument().mcp_servers;
    const pruned = await apply({ mcp_servers: servers }, { prune: true });
    expect(pruned.errors).toEqual([]);
    expect(pruned.changes.map((c) => `${c.action} ${c.kind} ${c.name}`).sort()).toEqual(['DELETE MCP_SERVER local_tool', 'DELETE MCP_SERVER per_user', 'DELETE MCP_SERVER scratch']);
    expect(pruned.changes.find((c) => c.name === 'scratch')?.fields).toContainEqual({ field: 'grants', before: 'granted by 1 key(s), which lose it', after: null });
    expect(await serverNames()).toEqual(['data_warehouse', 'internal_crm']);

    // The whole article document with prune: bob and his key go.
    const all = await apply(articleDocument(), { prune: true, dryRun: true });
    expect(all.changes.map((c) => `${c.action} ${c.kind} ${c.name}`).sort()).toEqual(
      ['DELETE USER bob@example.com', 'DELETE VIRTUAL_KEY bob@example.com/bob-ci', 'UPDATE VIRTUAL_KEY alice@example.com/alice-laptop'].sort(),
    );
  });

  it('serialises concurrent applies: one creates, the other finds nothing left to do', async () => {
    const doc = { mcp_servers: [{ name: 'raced', connection_type: 'http', connection_string: 'https://raced.example/mcp', tools_to_execute: ['*'] }] };
    const [a, b] = await Promise.all([apply(doc), apply(doc)]);
    expect([a.errors, b.errors]).toEqual([[], []]);
    expect([a.changes.length, b.changes.length].sort()).toEqual([0, 1]);
    expect((await serverNames()).filter((n) => n === 'raced')).toEqual(['raced']);
  });

  it('names the stored server when a name differs only in case', async () => {
    const taken = dataOf(
      await h.gql<{ createMcpServer: { errors: UserError[] } }>(
        'mutation { createMcpServer(input: { name: "INTERNAL_CRM", connectionType: HTTP, connectionString: "https://x.example" }) { errors { field code message } } }',
      ),
    ).createMcpServer.errors;
    expect(taken).toEqual([{ field: 'input.name', code: 'NAME_TAKEN', message: expect.stringContaining('a server named "internal_crm" already exists') }]);
    const missing = dataOf(
      await h.gql<{ deleteMcpServer: { errors: UserError[] } }>('mutation { deleteMcpServer(input: { name: "Internal_CRM" }) { errors { field code message } } }'),
    ).deleteMcpServer.errors;
    expect(missing).toEqual([{ field: 'input.name', code: 'NOT_FOUND', message: 'no server named "Internal_CRM" (did you mean "internal_crm"?)' }]);
  });
});
