/**
 * Every `gatehouse` command against a running control plane: apply of the article's documents
 * (`internal_crm`, `data_warehouse` with `env.` references) from YAML, --dry-run, idempotency, --prune,
 * export → apply as a no-op, an invalid document reported by path with nothing applied; the servers,
 * users, keys, tokens and nodes verbs with tables and --json; login/logout (owner-only credentials file,
 * the environment still wins); and the built `bin` started as `npx gatehouse`.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AdminToken, DataPlaneNode, McpServer, User, VirtualKey } from '../../sdk-client/client.js';
import { cliRunner, type CliRun } from '../support/cli.js';
import { rawNode } from '../support/raw-node.js';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';

let cp: TestControlPlane;
let dir: string;

beforeAll(async () => {
  cp = await startTestControlPlane();
  dir = mkdtempSync(join(tmpdir(), 'gatehouse-cli-cmds-'));
});
afterAll(async () => {
  await cp?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

type Run = CliRun;

const gatehouse = cliRunner(() => ({ url: cp.url, adminToken: cp.adminToken, cwd: dir, env: { GATEHOUSE_CONFIG: join(dir, 'no-login.json') } }));

function ok(run: Run): Run {
  expect(run, run.stderr).toMatchObject({ code: 0 });
  return run;
}

function json<T>(run: Run): T {
  return JSON.parse(ok(run).stdout) as T;
}

function write(name: string, text: string): string {
  writeFileSync(join(dir, name), text);
  return name;
}

const CRM_SECRET = 'your-service-token-cli-4e1d';

// The article's two server documents, in YAML, with a user and a key for them.
const ARTICLE_YAML = `
mcp_servers:
  - name: internal_crm
    connection_type: http
    connection_string: https://crm-mcp.internal.example.com/mcp
    auth_type: headers
    headers:
      Authorization: Bearer ${CRM_SECRET}
      X-Tenant-ID: production
    tools_to_execute: [get_customer, list_accounts]
    allowed_extra_headers: [x-user-token, x-tenant-id]
  - name: data_warehouse
    connection_type: http
    connection_string: env.DW_MCP_URL
    auth_type: headers
    headers:
      Authorization: env.DW_SERVICE_TOKEN
    tools_to_execute: ["*"]
users:
  - email: alice@example.com
    name: Alice
virtual_keys:
  - name: alice-laptop
    user: alice@example.com
    mcp_servers: [internal_crm]
`;

describe('gatehouse apply and export', () => {
  it('--dry-run prints the plan and applies nothing', async () => {
    const file = write('article.yaml', ARTICLE_YAML);
    const run = ok(await gatehouse(['apply', '-f', file, '--dry-run']));
    expect(run.stdout).toContain('+ create mcp_server internal_crm  (mcp_servers[0])');
    expect(run.stdout).toContain('+ create mcp_server data_warehouse  (mcp_servers[1])');
    expect(run.stdout).toMatch(/^ {4}connectionString: env\.DW_MCP_URL$/m);
    expect(run.stdout).toContain('+ create virtual_key alice@example.com/alice-laptop');
    expect(run.stdout).toMatch(/4 change\(s\) planned; dry run: nothing was applied\n$/);
    expect(run.stdout).not.toContain(CRM_SECRET);
    expect(run.stdout).not.toMatch(/gk_/);
    expect(json<McpServer[]>(await gatehouse(['servers', 'list', '--json']))).toEqual([]);
  });

  it('applies the article documents, printing the new key once, and says so when nothing changes', async () => {
    const run = ok(await gatehouse(['apply', '-f', 'article.yaml']));
    expect(run.stdout).toMatch(/4 change\(s\) applied \(config version \d+\)/);
    const key = /^alice@example\.com\/alice-laptop {2}(gk_\S+)$/m.exec(run.stdout)?.[1];
    expect(key).toBeDefined();
    expect(run.stdout).toContain('shown only this once');

    const servers = json<McpServer[]>(await gatehouse(['servers', 'list', '--json']));
    expect(servers.map((s) => s.name).sort()).toEqual(['data_warehouse', 'internal_crm']);
    expect(servers.find((s) => s.name === 'data_warehouse')?.headers).toEqual([{ name: 'Authorization', value: 'env.DW_SERVICE_TOKEN', source: 'ENV' }]);

    const again = ok(await gatehouse(['apply', '-f', 'article.yaml']));
    expect(again.stdout).toBe('no changes: the control plane already matches article.yaml\n');
    expect(again.stdout).not.toContain('gk_');
    // --json gives the payload to scripts.
    const payload = json<{ changes: unknown[]; applied: boolean; errors: unknown[] }>(await gatehouse(['apply', '-f', 'article.yaml', '--json']));
    expect(payload).toMatchObject({ changes: [], applied: false, errors: [] });
  });

  it('exports YAML and JSON that apply as a no-op, with secrets as references only', async () => {
    ok(await gatehouse(['export', '-o', 'exported.yaml']));
    const yaml = readFileSync(join(dir, 'exported.yaml'), 'utf8');
    expect(yaml).toContain('name: internal_crm');
    expect(yaml).toContain('stored: Bear…4e1d');
    expect(yaml).toContain('value: env.DW_SERVICE_TOKEN');
    expect(yaml).not.toContain(CRM_SECRET);
    expect(ok(await gatehouse(['apply', '-f', 'exported.yaml'])).stdout).toBe('no changes: the control plane already matches exported.yaml\n');
    expect(ok(await gatehouse(['apply', '-f', 'exported.yaml', '--prune'])).stdout).toMatch(/^no changes/);

    const exported = ok(await gatehouse(['export', '--json']));
    write('exported.json', exported.stdout);
    expect(JSON.parse(exported.stdout)).toMatchObject({ version: 1, users: [{ email: 'alice@example.com', name: 'Alice' }] });
    expect(ok(await gatehouse(['apply', '-f', 'exported.json'])).stdout).toMatch(/^no changes/);
  });

  it('reports an invalid document by path and applies nothing', async () => {
    const before = json<McpServer[]>(await gatehouse(['servers', 'list', '--json']));
    const file = write(
      'bad.json',
      JSON.stringify({
        mcp_servers: [
          { name: 'fine_server', connection_type: 'http', connection_string: 'https://fine.example/mcp' },
          { name: 'broken', connection_type: 'carrier_pigeon', connection_string: 'https://x.example' },
        ],
        virtual_keys: [{ name: 'k', user: 'alice@example.com', mcp_servers: ['nope'], virtual_key: 'sk-bf-chosen-value' }],
      }),
    );
    const run = await gatehouse(['apply', '-f', file]);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    const lines = run.stderr.trimEnd().split('\n');
    expect(lines).toContainEqual(expect.stringMatching(/^bad\.json: mcp_servers\[1\]\.connection_type: "carrier_pigeon" is not one of http, sse, stdio \(INVALID_VALUE\)$/));
    expect(lines).toContainEqual(expect.stringMatching(/^bad\.json: virtual_keys\[0\]\.virtual_key: .+ \(KEY_VALUE_REFUSED\)$/));
    expect(lines).toContainEqual(expect.stringMatching(/^bad\.json: virtual_keys\[0\]\.mcp_servers\[0\]: no server named "nope" \(UNKNOWN_SERVER\)$/));
    expect(lines.at(-1)).toMatch(/problem\(s\) in bad\.json: nothing was applied$/);
    expect(run.stderr).not.toContain('sk-bf-chosen-value');
    expect(json<McpServer[]>(await gatehouse(['servers', 'list', '--json']))).toEqual(before);

    write('broken.yaml', 'mcp_servers: [\n  - name: x\n');
    const yaml = await gatehouse(['apply', '-f', 'broken.yaml']);
    expect(yaml.code).toBe(2);
    expect(yaml.stderr).toMatch(/broken\.yaml is not valid YAML or JSON: .*line/);
  });

  it('--prune removes what the document no longer names, and reads stdin', async () => {
    const withoutWarehouse = ARTICLE_YAML.replace(/ {2}- name: data_warehouse[\s\S]*?tools_to_execute: \["\*"\]\n/, '');
    expect(withoutWarehouse).not.toContain('data_warehouse');
    const run = ok(await gatehouse(['apply', '-f', '-', '--prune'], { stdin: Readable.from([withoutWarehouse]) }));
    expect(run.stdout).toContain('- delete mcp_server data_warehouse');
    expect(run.stdout).toMatch(/1 change\(s\) applied/);
    expect(json<McpServer[]>(await gatehouse(['servers', 'list', '--json'])).map((s) => s.name)).toEqual(['internal_crm']);
  });
});

describe('gatehouse nouns and verbs', () => {
  it('servers get / update / delete', async () => {
    const shown = ok(await gatehouse(['servers', 'get', 'internal_crm'])).stdout;
    expect(shown).toMatch(/^tools to execute\s+get_customer,list_accounts$/m);
    // No node has reported on it: usable as far as anyone knows, and said so.
    expect(shown).toMatch(/^status\s+ACTIVE$/m);
    expect(shown).toMatch(/^upstream\s+UNKNOWN \(not observed yet\)$/m);
    expect(shown).toMatch(/^synced tools\s+\(not synced yet\)$/m);
    write('patch.yaml', 'toolsToExecute: [get_customer]\ntoolTimeoutMs: 5000\n');
    const updated = ok(await gatehouse(['servers', 'update', 'internal_crm', '-f', 'patch.yaml']));
    expect(updated.stdout).toMatch(/^updated MCP server internal_crm/);
    expect(updated.stdout).toMatch(/^tool timeout\s+5000 ms$/m);
    const bad = await gatehouse(['servers', 'update', 'internal_crm', '-f', write('bad-patch.json', '{"headers":[{"name":"Bad Header","value":"v"}]}')]);
    expect(bad.code).toBe(1);
    // A bad header name is reported as such, not as "needs at least one header".
    expect(bad.stderr).toBe('input.headers.0.name: "Bad Header" is not a valid header name (INVALID_VALUE)\n');

    // A per-user server has no catalog of its own to show: each user's is listed with their own credential.
    write('per-user.json', JSON.stringify({ name: 'tickets', connectionType: 'HTTP', connectionString: 'https://t.example/mcp', authType: 'PER_USER_HEADERS', perUserHeaderKeys: ['X-Token'], toolsToExecute: ['*'] }));
    ok(await gatehouse(['servers', 'create', '-f', 'per-user.json']));
    expect(ok(await gatehouse(['servers', 'get', 'tickets'])).stdout).toMatch(/^synced tools\s+\(per user: each user's own, not shown\)$/m);
    ok(await gatehouse(['servers', 'delete', 'tickets']));

    write('scratch.json', JSON.stringify({ name: 'scratch', connectionType: 'SSE', connectionString: 'https://s.example/sse', toolsToExecute: ['*'] }));
    ok(await gatehouse(['servers', 'create', '-f', 'scratch.json']));
    expect(ok(await gatehouse(['servers', 'delete', 'scratch'])).stdout).toMatch(/^deleted MCP server scratch/);
    const again = await gatehouse(['servers', 'delete', 'scratch', '--json']);
    expect(again.code).toBe(1);
    expect(JSON.parse(again.stdout)).toMatchObject({ mcpServer: null, errors: [{ field: 'input.name', code: 'NOT_FOUND' }] });
  });

  it('users create / update / list / delete (by id or email)', async () => {
    const created = json<{ user: User }>(await gatehouse(['users', 'create', '--email', 'bob@example.com', '--json']));
    expect(ok(await gatehouse(['users', 'update', 'bob@example.com', '--name', 'Bob'])).stdout).toMatch(/^updated user bob@example\.com/);
    expect(json<User[]>(await gatehouse(['users', 'list', '--json'])).find((u) => u.id === created.user.id)?.name).toBe('Bob');
    expect(ok(await gatehouse(['users', 'list'])).stdout).toMatch(/^ID\s+EMAIL\s+NAME\s+CREATED$/m);
    expect((await gatehouse(['users', 'update', 'bob@example.com'])).code).toBe(2);
    expect(ok(await gatehouse(['users', 'delete', created.user.id])).stdout).toMatch(/^deleted user bob@example\.com/);
    const gone = await gatehouse(['users', 'delete', 'bob@example.com']);
    expect(gone).toMatchObject({ code: 1, stderr: 'error: no user with email "bob@example.com"\n' });
  });

  it('keys create / update / rotate / revoke / delete, and a key with no servers only on request', async () => {
    const refused = await gatehouse(['keys', 'create', '--user', 'alice@example.com', '--name', 'empty']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^input\.servers: .+ \(NO_SERVERS\)$/m);
    const empty = json<{ key: string; virtualKey: VirtualKey }>(await gatehouse(['keys', 'create', '--user', 'alice@example.com', '--name', 'empty', '--no-servers', '--json']));
    expect(empty.virtualKey.servers).toEqual([]);

    const created = ok(await gatehouse(['keys', 'create', '--user', 'alice@example.com', '--name', 'ci', '--server', 'internal_crm:get_customer,nosuchtool']));
    expect(created.stdout).toMatch(/^gk_\S+\n$/);
    const id = (json<VirtualKey[]>(await gatehouse(['keys', 'list', '--json'])).find((k) => k.name === 'ci') as VirtualKey).id;

    const updated = ok(await gatehouse(['keys', 'update', id, '--server', 'internal_crm:*', '--expires', '2099-01-01T00:00:00Z']));
    expect(updated.stdout).toMatch(/^servers {2}internal_crm:\*$/m);
    expect(updated.stdout).toMatch(/^expires {2}2099-01-01T00:00:00\.000Z$/m);
    expect(ok(await gatehouse(['keys', 'update', id, '--no-expiry'])).stdout).toMatch(/^expires {2}never$/m);
    expect((await gatehouse(['keys', 'update', id])).code).toBe(2);

    expect(ok(await gatehouse(['keys', 'rotate', id])).stdout).toMatch(/^gk_\S+\n$/);
    expect(ok(await gatehouse(['keys', 'revoke', id])).stdout).toMatch(/^revoked virtual key ci/);
    expect(ok(await gatehouse(['keys', 'delete', id])).stdout).toMatch(/^deleted virtual key ci/);
    expect(json<VirtualKey[]>(await gatehouse(['keys', 'list', '--json'])).some((k) => k.id === id)).toBe(false);
    ok(await gatehouse(['keys', 'delete', empty.virtualKey.id]));
  });

  it('warns (on stderr, exit 0) about a granted tool the known catalog lacks', async () => {
    const { recordToolCatalogs } = await import('../../control-plane/repos/mcp-servers.js');
    await recordToolCatalogs(cp.cp.db, [{ server: 'internal_crm', tools: [{ name: 'get_customer', description: null }] }]);
    const run = ok(await gatehouse(['keys', 'create', '--user', 'alice@example.com', '--name', 'warned', '--server', 'internal_crm:get_customer,nosuchtool']));
    expect(run.stderr).toMatch(/^warning: input\.servers\.0\.tools\.1: server "internal_crm" has no tool "nosuchtool" .+ \(UNKNOWN_TOOL\)$/m);
  });

  it('tokens create / list / revoke and nodes list', async () => {
    const created = ok(await gatehouse(['tokens', 'create', '--name', 'ci-viewer', '--role', 'viewer']));
    expect(created.stdout).toMatch(/^gha_\S+\n$/);
    const tokens = json<AdminToken[]>(await gatehouse(['tokens', 'list', '--json']));
    const viewer = tokens.find((t) => t.name === 'ci-viewer') as AdminToken;
    expect(viewer.role).toBe('VIEWER');
    // The viewer token reads but may not write.
    const asViewer = { env: { GATEHOUSE_URL: cp.url, GATEHOUSE_ADMIN_TOKEN: created.stdout.trim() } };
    expect((await gatehouse(['servers', 'list'], asViewer)).code).toBe(0);
    const denied = await gatehouse(['users', 'create', '--email', 'x@example.com'], asViewer);
    expect(denied).toMatchObject({ code: 1 });
    expect(denied.stderr).toMatch(/\(FORBIDDEN\) \(this needs an ADMIN token\)/);
    expect(ok(await gatehouse(['tokens', 'revoke', viewer.id])).stdout).toMatch(/^revoked admin token ci-viewer/);
    expect(ok(await gatehouse(['tokens', 'list'])).stdout).toMatch(/^ID\s+NAME\s+ROLE\s+STATE\s+TOKEN\s+LAST USED$/m);
    expect(ok(await gatehouse(['nodes', 'list'])).stdout).toMatch(/^ID\s+CONNECTED\s+ENROLLMENT\s+HEALTH/);
    expect(json<unknown[]>(await gatehouse(['nodes', 'list', '--json']))).toEqual([]);
  });

  it('nodes enroll / approve / revoke / forget', async () => {
    // A one-time token for one node id: the node enrolls with it and is approved at once.
    const enroll = ok(await gatehouse(['nodes', 'enroll', '--node-id', 'cli-node-a', '--ttl', '5']));
    expect(enroll.stdout).toMatch(/^ghe_\S+\n$/);
    expect(enroll.stderr).toMatch(/GATEHOUSE_ENROLLMENT_TOKEN/);
    const a = await rawNode(cp.url, 'cli-node-a');
    expect((await a.enroll(enroll.stdout.trim())).body.status).toBe('APPROVED');
    expect((await gatehouse(['nodes', 'enroll', '--ttl', 'soon'])).stderr).toMatch(/--ttl must be a whole number/);

    // A node that presents its keys without a token waits for approval by its fingerprint.
    const b = await rawNode(cp.url, 'cli-node-b');
    const pending = await b.enroll();
    expect(pending.body.status).toBe('PENDING');
    const wrong = await gatehouse(['nodes', 'approve', 'cli-node-b', '--fingerprint', 'not-the-fingerprint']);
    expect(wrong.code).toBe(1);
    expect(ok(await gatehouse(['nodes', 'approve', 'cli-node-b', '--fingerprint', pending.body.fingerprint ?? ''])).stdout).toBe('approved node cli-node-b\n');

    const nodes = json<DataPlaneNode[]>(await gatehouse(['nodes', 'list', '--json']));
    expect(nodes.map((n) => [n.id, n.enrollment, n.state])).toEqual(
      expect.arrayContaining([
        ['cli-node-a', 'APPROVED', 'DISCONNECTED'],
        ['cli-node-b', 'APPROVED', 'DISCONNECTED'],
      ]),
    );
    expect(ok(await gatehouse(['nodes', 'revoke', 'cli-node-a'])).stdout).toBe('revoked node cli-node-a\n');
    expect(ok(await gatehouse(['nodes', 'forget', 'cli-node-b'])).stdout).toBe('forgot node cli-node-b\n');
    const after = json<DataPlaneNode[]>(await gatehouse(['nodes', 'list', '--json']));
    expect(after.find((n) => n.id === 'cli-node-a')?.enrollment).toBe('REVOKED');
    expect(after.some((n) => n.id === 'cli-node-b')).toBe(false);
    const unknown = await gatehouse(['nodes', 'forget', 'no-such-node']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/no-such-node|NOT_FOUND/);
  });
});

describe('gatehouse login and logout', () => {
  it('checks the token, saves it owner-only, uses it, and lets the environment win', async () => {
    const config = join(dir, 'login', 'credentials.json');
    const noEnv = { env: { GATEHOUSE_CONFIG: config } };
    const bad = await gatehouse(['login', '--url', cp.url], { ...noEnv, stdin: Readable.from(['gha_wrong-token-0123456789\n']) });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/UNAUTHENTICATED/);
    expect(() => statSync(config)).toThrow();

    const login = ok(await gatehouse(['login', '--url', cp.url], { ...noEnv, stdin: Readable.from([`${cp.adminToken}\n`]) }));
    expect(login.stdout).toMatch(/^logged in to .+ as bootstrap \(ADMIN\); saved to /);
    expect(login.stdout).not.toContain(cp.adminToken);
    expect(statSync(config).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'login')).mode & 0o777).toBe(0o700);

    expect(json<McpServer[]>(await gatehouse(['servers', 'list', '--json'], noEnv)).map((s) => s.name)).toContain('internal_crm');
    // The environment wins over the saved token.
    const envWins = await gatehouse(['servers', 'list'], { env: { GATEHOUSE_CONFIG: config, GATEHOUSE_ADMIN_TOKEN: 'gha_env-token-wins-0123456789' } });
    expect(envWins.stderr).toMatch(/UNAUTHENTICATED\) \(check GATEHOUSE_ADMIN_TOKEN\)/);

    // A file others can read is refused, as ssh refuses such a key.
    chmodSync(config, 0o644);
    const loose = await gatehouse(['servers', 'list'], noEnv);
    expect(loose.code).toBe(1);
    expect(loose.stderr).toMatch(/can be read by other users; run chmod 600/);
    chmodSync(config, 0o600);

    expect(ok(await gatehouse(['logout'], noEnv)).stdout).toBe(`removed ${config}\n`);
    const after = await gatehouse(['servers', 'list'], noEnv);
    expect(after.code).toBe(2);
    expect(after.stderr).toMatch(/GATEHOUSE_ADMIN_TOKEN is not set: export an admin token \(gha_…\) or run gatehouse login/);
  });
});

describe('npx gatehouse (the package bin)', () => {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  const run = promisify(execFile);

  beforeAll(async () => {
    // What `npm ci` runs through `prepare`, so the test exercises the same build.
    await run('npm', ['run', '-s', 'build:cli'], { cwd: root });
  }, 120_000);

  it('npx gatehouse --help exits 0 with the help', async () => {
    const { stdout } = await run('npx', ['--offline', '--no-install', 'gatehouse', '--help'], { cwd: root });
    expect(stdout).toMatch(/^usage: gatehouse <command>/);
    expect(stdout).toContain('apply --file FILE [--dry-run] [--prune]');
  }, 60_000);

  it('starts without compiling TypeScript: --help costs under 300 ms of CPU', async () => {
    // CPU time rather than wall time, which on a shared machine measures the neighbours.
    const probe = 'data:text/javascript,process.on("exit",()=>{const u=process.cpuUsage();process.stderr.write(`cpu ${(u.user+u.system)/1000}\\n`)})';
    const { stderr } = await run(process.execPath, ['--import', probe, 'bin/gatehouse.mjs', '--help'], { cwd: root });
    const ms = Number(/cpu ([\d.]+)/.exec(stderr)?.[1]);
    expect(ms).toBeGreaterThan(0);
    expect(ms).toBeLessThan(300);
  });

  it('runs a command against the control plane with the token from the environment', async () => {
    const env = { ...process.env, GATEHOUSE_URL: cp.url, GATEHOUSE_ADMIN_TOKEN: cp.adminToken };
    const { stdout } = await run(process.execPath, ['bin/gatehouse.mjs', 'servers', 'list', '--json'], { cwd: root, env });
    expect((JSON.parse(stdout) as McpServer[]).map((s) => s.name)).toContain('internal_crm');
  });
});
