/**
 * An MCP server's connectionString may carry its credential in the URL (`https://host/mcp?api_key=…`,
 * `/t/<token>/mcp`): hosted servers do this for clients that cannot send headers. Only `user:pass@` was
 * refused; a token in the query or path was stored and shown in full by every read (mcpServers, the
 * mutation payloads, exportConfig, applyConfig plans) to every admin token, VIEWER included, and shipped
 * in clear in snapshots. Now such a URL is a secret like a header value: stored sealed, shipped sealed to
 * nodes (which still connect with the whole URL), shown with each credential-bearing part as `***`; the
 * redacted form given back keeps the stored URL, and `***` with other changes is refused (INVALID_URL).
 * Rows stored before are sealed at startup. Both dialects.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DataPlaneNode } from '../../data-plane/node/node.js';
import type { TestControlPlane } from '../support/control-plane.js';
import { testDialects } from '../support/db.js';
import { startNodeOf } from '../support/node-of.js';
import { expectNoSecretIn, snapshotTexts, startSecretsControlPlane, type ViewerReads } from '../support/secret-reads.js';
import { startHttpUpstream, type HttpUpstream } from '../support/upstreams.js';
import { waitFor } from '../support/wait.js';

const QUERY_SECRET = 'sk_live_4f9a8c7d2e1b0a9f8e7d6c5b';
const PATH_SECRET = '9c1f4a7e-0d3b-4c8e-9f21-6a5b7c8d9e0f';
const CODE_SECRET = 'Zm9vYmFyYmF6cXV4cXV1eA2';

interface ServerRead {
  connectionString: string | null;
}

describe.each(testDialects)('credentials inside connection URLs on %s', (dialect) => {
  let planes: Awaited<ReturnType<typeof startSecretsControlPlane>>;
  let cp: TestControlPlane;
  let upstream: HttpUpstream;
  let node: DataPlaneNode | undefined;
  let viewer: ViewerReads;

  beforeAll(async () => {
    planes = await startSecretsControlPlane(dialect);
    ({ cp, viewer } = planes);
    upstream = await startHttpUpstream({ label: 'crm' });
  }, 60_000);
  afterAll(async () => {
    await node?.close();
    await upstream?.close();
    await planes?.close();
  });

  it('hides query and path credentials on every read, and refuses *** given back with changes', async () => {
    const withQuery = `${upstream.url}?api_key=${QUERY_SECRET}&region=eu`;
    const created = await cp.gql<{ createMcpServer: { mcpServer: ServerRead; errors: unknown[] } }>(
      'mutation($u: String!) { createMcpServer(input: {name: "crm", connectionType: HTTP, connectionString: $u, toolsToExecute: ["*"]}) { mcpServer { connectionString } errors { code } } }',
      { u: withQuery },
    );
    expect(created.createMcpServer.errors).toEqual([]);
    expect(created.createMcpServer.mcpServer.connectionString).toBe(`${upstream.url}?api_key=***&region=eu`);

    const shapes: Array<[string, string, string]> = [
      ['path token after /t/', `https://mcp.example.com/t/${PATH_SECRET}/mcp`, 'https://mcp.example.com/t/***/mcp'],
      ['token-shaped segment', `https://mcp.example.com/servers/x/${PATH_SECRET}/sse`, 'https://mcp.example.com/servers/x/***/sse'],
      ['azure code', `https://fn.example.net/api/mcp?code=${CODE_SECRET}`, 'https://fn.example.net/api/mcp?code=***'],
      ['camelCase key name', `https://mcp.example.com/mcp?exaApiKey=${CODE_SECRET}&x=1`, 'https://mcp.example.com/mcp?exaApiKey=***&x=***'],
      ['fragment', `https://mcp.example.com/mcp#${CODE_SECRET}`, 'https://mcp.example.com/mcp#***'],
      ['no credential', 'https://mcp.example.com/v1/mcp-server-v2/mcp?region=eu', 'https://mcp.example.com/v1/mcp-server-v2/mcp?region=eu'],
    ];
    for (const [what, url, shown] of shapes) {
      const name = `s_${what.replace(/[^a-z]/g, '_')}`;
      const made = await cp.gql<{ createMcpServer: { mcpServer: ServerRead | null; errors: unknown[] } }>(
        'mutation($n: String!, $u: String!) { createMcpServer(input: {name: $n, connectionType: HTTP, connectionString: $u}) { mcpServer { connectionString } errors { code } } }',
        { n: name, u: url },
      );
      expect({ what, shown: made.createMcpServer.mcpServer?.connectionString }).toEqual({ what, shown });
    }

    // Given back as read: kept. Given back with another change: refused, nothing stored.
    const kept = await cp.gql<{ updateMcpServer: { errors: unknown[] } }>(
      'mutation($u: String!) { updateMcpServer(input: {name: "crm", connectionString: $u, toolTimeoutMs: 20000}) { errors { code } } }',
      { u: `${upstream.url}?api_key=***&region=eu` },
    );
    expect(kept.updateMcpServer.errors).toEqual([]);
    const refused = await cp.gql<{ updateMcpServer: { errors: Array<{ code: string; field: string }> } }>(
      'mutation($u: String!) { updateMcpServer(input: {name: "crm", connectionString: $u}) { errors { code field } } }',
      { u: `${upstream.url}?api_key=***&region=us` },
    );
    expect(refused.updateMcpServer.errors).toEqual([{ code: 'INVALID_URL', field: 'input.connectionString' }]);

    // Reads of every kind, as an ADMIN and as a VIEWER; a dry-run plan with a new secret; the export re-applied.
    await cp.gql('{ mcpServers { edges { node { name connectionString } } } exportConfig }');
    await viewer.read('{ mcpServers { edges { node { name connectionString } } } mcpServer(name: "crm") { connectionString } }');
    const NEW_SECRET = 'sk_live_0123456789abcdefNEW';
    const plan = await cp.gql<{ applyConfig: { changes: Array<{ fields: Array<{ field: string; before: string | null; after: string | null }> }> } }>(
      'mutation($d: JSON!) { applyConfig(document: $d, dryRun: true) { changes { fields { field before after } } } }',
      { d: { mcp_servers: [{ name: 'crm', connection_type: 'http', connection_string: `${upstream.url}?api_key=${NEW_SECRET}&region=eu`, tools_to_execute: ['*'] }] } },
    );
    expect(JSON.stringify(plan)).not.toContain(NEW_SECRET);
    const same = await cp.gql<{ applyConfig: { changes: Array<{ fields: Array<{ field: string }> }> } }>(
      'mutation($d: JSON!) { applyConfig(document: $d, dryRun: true) { changes { fields { field } } } }',
      { d: { mcp_servers: [{ name: 'crm', connection_type: 'http', connection_string: withQuery, tools_to_execute: ['*'], tool_timeout_ms: 20000 }] } },
    );
    expect(same.applyConfig.changes.flatMap((c) => c.fields.map((f) => f.field))).not.toContain('connectionString');
    const exported = await cp.gql<{ exportConfig: unknown }>('{ exportConfig }');
    const reapplied = await cp.gql<{ applyConfig: { errors: unknown[] } }>('mutation($d: JSON!) { applyConfig(document: $d) { errors { code field message } } }', { d: exported.exportConfig });
    expect(reapplied.applyConfig.errors).toEqual([]);

    expectNoSecretIn(cp, viewer, [QUERY_SECRET, PATH_SECRET, CODE_SECRET]);
  });

  it('nodes still connect with the whole URL, which the snapshot carries sealed', async () => {
    const { text, decoded } = await snapshotTexts(cp);
    for (const secret of [QUERY_SECRET, PATH_SECRET, CODE_SECRET]) {
      expect(text).not.toContain(secret);
      expect(decoded).not.toContain(secret);
    }

    node = await startNodeOf(cp, { nodeId: `url-secrets-${dialect}`, trustedJwks: cp.cp.trustedKeys, env: {}, reportIntervalMs: 600_000, upstreamProbeIntervalMs: 200 });
    // The node's health probe reaches the upstream with the credential the operator put in the URL.
    await waitFor(() => upstream.requests.some((r) => r.path.includes(`api_key=${QUERY_SECRET}`)), { what: 'node request with the whole URL', timeoutMs: 15_000 });
  });

  it('rows stored whole before 0020 are sealed at startup', async () => {
    const server = await cp.cp.db.selectFrom('mcp_servers').select('id').where('name', '=', 'crm').executeTakeFirstOrThrow();
    await cp.cp.db.updateTable('mcp_servers').set({ connection_string: `${upstream.url}?token=${QUERY_SECRET}`, connection_secret: null }).where('id', '=', server.id).execute();
    const { sealConnectionSecrets } = await import('../../control-plane/repos/mcp-servers.js');
    expect(await sealConnectionSecrets(cp.cp.db, cp.cp.box)).toBe(1);
    expect(await sealConnectionSecrets(cp.cp.db, cp.cp.box)).toBe(0);
    const read = await cp.gql<{ mcpServer: ServerRead }>('{ mcpServer(name: "crm") { connectionString } }');
    expect(read.mcpServer.connectionString).toBe(`${upstream.url}?token=***`);
  });
});
