/**
 * `gatehouse profiles list|create|update` and `gatehouse provision` against a running control plane:
 * a profile with servers, budgets, a rate limit and a lifetime; provision prints only the key on stdout
 * (details on stderr) and the key follows a profile update; bad options are usage errors (exit 2) and
 * user errors exit 1 with the field and code.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AccessProfile } from '../../sdk-client/client.js';
import { cliRunner } from '../support/cli.js';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';

let cp: TestControlPlane;
let dir: string;

beforeAll(async () => {
  cp = await startTestControlPlane();
  dir = mkdtempSync(join(tmpdir(), 'gatehouse-cli-profiles-'));
  await cp.gql(`mutation { createMcpServer(input: { name: "crm", connectionType: HTTP, connectionString: "https://crm.example/mcp", toolsToExecute: ["*"] }) { errors { code } } }`);
});
afterAll(async () => {
  await cp?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const gatehouse = cliRunner(() => ({ url: cp.url, adminToken: cp.adminToken, cwd: dir, env: { GATEHOUSE_CONFIG: join(dir, 'no-login.json') } }));

describe('gatehouse profiles and provision', () => {
  it('creates, lists and updates a profile; provision prints the key alone and the key follows the profile', async () => {
    const created = await gatehouse(['profiles', 'create', 'eng', '--server', 'crm:search,read', '--budget', '5/day', '--budget', '$50/month', '--rpm', '60', '--lifetime-days', '30', '--fallback', 'local-allowance']);
    expect(created, created.stderr).toMatchObject({ code: 0 });
    expect(created.stdout).toMatch(/^created access profile eng \(id [0-9a-f-]+\)\n$/);

    const list = await gatehouse(['profiles', 'list']);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/eng\s+crm:search,read\s+\$5\/daily \$50\/monthly, 60 rpm\s+30d\s+0/);

    const provisioned = await gatehouse(['provision', '--email', 'Dev@Example.com', '--profile', 'eng']);
    expect(provisioned, provisioned.stderr).toMatchObject({ code: 0 });
    expect(provisioned.stdout).toMatch(/^gk_[0-9A-Za-z]+\n$/);
    expect(provisioned.stderr).toContain('dev@example.com (created)');
    expect(provisioned.stderr).toContain('from profile eng');

    const updated = await gatehouse(['profiles', 'update', 'eng', '--server', 'crm:search', '--rpm', '10']);
    expect(updated, updated.stderr).toMatchObject({ code: 0 });
    expect(updated.stdout).toContain('(1 keys follow it)');
    const keys = await gatehouse(['keys', 'list', '--json']);
    const servers = (JSON.parse(keys.stdout) as Array<{ servers: Array<{ server: string; tools: string[] }> }>).map((k) => k.servers);
    expect(servers).toEqual([[{ server: 'crm', tools: ['search'] }]]);

    const json = JSON.parse((await gatehouse(['profiles', 'list', '--json'])).stdout) as AccessProfile[];
    expect(json[0]).toMatchObject({ name: 'eng', rateLimit: { requestsPerMinute: 10, tokensPerMinute: null }, limitsFallback: 'LOCAL_ALLOWANCE', keyCount: 1 });
  });

  it('reports usage errors (exit 2) and user errors (exit 1)', async () => {
    expect((await gatehouse(['profiles', 'create', 'x', '--server', 'crm:*', '--budget', 'lots'])).code).toBe(2);
    expect((await gatehouse(['profiles', 'create', 'x', '--server', 'crm:*', '--rpm', '0'])).code).toBe(2);
    const unknown = await gatehouse(['profiles', 'create', 'x', '--server', 'nope:*']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('UNKNOWN_SERVER');
    const missing = await gatehouse(['provision', '--email', 'a@example.com', '--profile', 'nobody']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('NOT_FOUND');
    expect(missing.stdout).toBe('');
  });
});
