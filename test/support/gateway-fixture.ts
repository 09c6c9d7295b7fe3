/**
 * A whole Gatehouse for end-to-end tests: three real upstream MCP servers (Streamable HTTP, SSE, stdio),
 * a control plane (SQLite or PostgreSQL), servers registered through GraphQL with secret credentials,
 * a user, and a virtual key with a tool filter. Every secret value it configures is listed in `secrets`,
 * so a test can search any output for them.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Dialect } from '../../control-plane/db/database.js';
import { startTestControlPlane, type TestControlPlane } from './control-plane.js';
import { openTestDatabase, type TestDatabase } from './db.js';
import { startHttpUpstream, startSseUpstream, stdioUpstreamCommand, type HttpUpstream } from './upstreams.js';

export interface GatewayFixture {
  cp: TestControlPlane;
  http: HttpUpstream;
  sse: HttpUpstream;
  stdioRecordFile: string;
  /** Env the nodes must have: `env.NAME` references resolve from it. */
  nodeEnv: Record<string, string>;
  secrets: { httpToken: string; tenant: string; sseKey: string; stdioToken: string };
  userId: string;
  key: string;
  keyId: string;
  /** Names the key may see, `{server}-{tool}`. */
  expectedTools: string[];
  gqlCreateKey(servers: { server: string; tools: string[] }[], expiresAt?: string): Promise<{ id: string; key: string }>;
  close(): Promise<void>;
}

const CREATE_SERVER = `mutation($input: CreateMcpServerInput!) { createMcpServer(input: $input) { mcpServer { id name } errors { field code message } } }`;
const CREATE_KEY = `mutation($input: CreateVirtualKeyInput!) { createVirtualKey(input: $input) { key virtualKey { id } errors { field code message } } }`;

export async function startGatewayFixture(dialect: Dialect = 'sqlite'): Promise<GatewayFixture> {
  const suffix = randomBytes(6).toString('hex');
  const secrets = {
    httpToken: `Bearer upstream-http-secret-${suffix}`,
    tenant: `tenant-from-node-env-${suffix}`,
    sseKey: `sse-api-key-secret-${suffix}`,
    stdioToken: `stdio-token-secret-${suffix}`,
  };
  let testDb: TestDatabase | null = null;
  if (dialect === 'postgres') testDb = await openTestDatabase('postgres');
  const cp = await startTestControlPlane(testDb ? { databaseUrl: testDb.url, databaseSchema: testDb.searchPath } : {});
  const http = await startHttpUpstream({ label: 'http' });
  const sse = await startSseUpstream({ label: 'sse' });
  const stdioRecordFile = join(mkdtempSync(join(tmpdir(), 'gatehouse-stdio-')), 'starts.jsonl');
  const stdio = stdioUpstreamCommand(stdioRecordFile, 'stdio');

  const servers = [
    {
      name: 'crm_http',
      connectionType: 'HTTP',
      connectionString: http.url,
      authType: 'HEADERS',
      headers: [
        { name: 'Authorization', value: secrets.httpToken },
        { name: 'X-Tenant-ID', value: 'env.GH_TEST_TENANT' },
      ],
      toolsToExecute: ['echo', 'whoami', 'add'],
      allowedExtraHeaders: ['x-request-source'],
    },
    { name: 'kb_sse', connectionType: 'SSE', connectionString: sse.url, authType: 'HEADERS', headers: [{ name: 'X-Api-Key', value: secrets.sseKey }], toolsToExecute: ['*'] },
    { name: 'local_stdio', connectionType: 'STDIO', stdio: { command: stdio.command, args: stdio.args, env: [{ name: 'UPSTREAM_TOKEN', value: secrets.stdioToken }] }, toolsToExecute: ['echo', 'add'] },
    // Registered but not granted to the key: none of its tools may show.
    { name: 'hidden_http', connectionType: 'HTTP', connectionString: http.url, toolsToExecute: ['*'] },
  ];
  for (const input of servers) {
    const r = await cp.gql<{ createMcpServer: { errors: unknown[] } }>(CREATE_SERVER, { input });
    if (r.createMcpServer.errors.length) throw new Error(`createMcpServer ${input.name}: ${JSON.stringify(r.createMcpServer.errors)}`);
  }
  const user = await cp.gql<{ createUser: { user: { id: string } } }>(
    `mutation { createUser(input: { email: "dev-${suffix}@example.com", name: "Dev" }) { user { id } errors { code message } } }`,
  );
  const userId = user.createUser.user.id;

  const gqlCreateKey = async (grants: { server: string; tools: string[] }[], expiresAt?: string): Promise<{ id: string; key: string }> => {
    const r = await cp.gql<{ createVirtualKey: { key: string; virtualKey: { id: string }; errors: unknown[] } }>(CREATE_KEY, {
      input: { userId, name: `key-${randomBytes(3).toString('hex')}`, servers: grants, ...(expiresAt ? { expiresAt } : {}) },
    });
    if (r.createVirtualKey.errors.length) throw new Error(JSON.stringify(r.createVirtualKey.errors));
    return { id: r.createVirtualKey.virtualKey.id, key: r.createVirtualKey.key };
  };
  const { id: keyId, key } = await gqlCreateKey([
    { server: 'crm_http', tools: ['*'] },
    { server: 'kb_sse', tools: ['echo', 'add'] },
    { server: 'local_stdio', tools: ['echo'] },
  ]);

  return {
    cp,
    http,
    sse,
    stdioRecordFile,
    nodeEnv: { GH_TEST_TENANT: secrets.tenant },
    secrets,
    userId,
    key,
    keyId,
    expectedTools: ['crm_http-add', 'crm_http-echo', 'crm_http-whoami', 'kb_sse-add', 'kb_sse-echo', 'local_stdio-echo'],
    gqlCreateKey,
    async close() {
      await cp.close();
      await http.close();
      await sse.close();
      await testDb?.close();
    },
  };
}
