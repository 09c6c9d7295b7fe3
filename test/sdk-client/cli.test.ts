/**
 * The `gatehouse` CLI against a real control plane: runCli in-process for each command (tables, `--json`
 * that parses, the key alone on stdout, user errors as `field: message (CODE)` with exit 1, usage errors
 * with exit 2), and once as a real process through sdk-client/cli.ts, as `npm run gatehouse` runs it.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { McpServer, User, VirtualKey } from '../../sdk-client/client.js';
import { cliRunner, type CliRun } from '../support/cli.js';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';

let cp: TestControlPlane;
let dir: string;

beforeAll(async () => {
  cp = await startTestControlPlane();
  dir = mkdtempSync(join(tmpdir(), 'gatehouse-cli-'));
});
afterAll(async () => {
  await cp?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

type Run = CliRun;

const gatehouse = cliRunner(() => ({ url: cp.url, adminToken: cp.adminToken, cwd: dir }));

function json<T>(run: Run): T {
  expect(run.code).toBe(0);
  return JSON.parse(run.stdout) as T;
}

function writeJson(name: string, value: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, JSON.stringify(value));
  return path;
}

describe('gatehouse CLI: servers', () => {
  it('creates a server from a JSON file and lists it as a table and as JSON', async () => {
    const file = writeJson('crm.json', {
      name: 'crm',
      connectionType: 'HTTP',
      connectionString: 'https://crm.example.com/mcp',
      authType: 'HEADERS',
      headers: [{ name: 'Authorization', value: 'Bearer sk-live-cli-secret-987654' }],
      toolsToExecute: ['search', 'fetch'],
    });
    const created = await gatehouse(['servers', 'create', '--file', file]);
    expect(created).toMatchObject({ code: 0, stderr: '' });
    expect(created.stdout).toMatch(/^created MCP server crm \(id /);
    expect(created.stdout).not.toContain('cli-secret-987654');

    // A relative path resolves against the working directory.
    writeJson('kb.json', { name: 'kb', connectionType: 'SSE', connectionString: 'env.KB_URL', toolsToExecute: ['*'] });
    expect((await gatehouse(['servers', 'create', '-f', 'kb.json'])).code).toBe(0);

    const list = await gatehouse(['servers', 'list']);
    expect(list.code).toBe(0);
    const lines = list.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^NAME\s+TYPE\s+AUTH\s+STATUS\s+TOOLS\s+CONNECTION$/);
    expect(lines.find((l) => l.startsWith('crm '))).toMatch(/HTTP\s+HEADERS\s+\w+\s+search,fetch\s+https:\/\/crm\.example\.com\/mcp/);
    expect(lines.find((l) => l.startsWith('kb '))).toMatch(/SSE\s+NONE\s+\w+\s+\*\s+env\.KB_URL/);

    const servers = json<McpServer[]>(await gatehouse(['servers', 'list', '--json']));
    expect(servers.map((s) => s.name).sort()).toEqual(['crm', 'kb']);
    // --json may come anywhere on the line.
    expect(json<McpServer[]>(await gatehouse(['--json', 'servers', 'list']))).toEqual(servers);
  });

  it('gets one server, and says so (exit 1) when there is none', async () => {
    const one = json<McpServer>(await gatehouse(['servers', 'get', 'crm', '--json']));
    expect(one).toMatchObject({ name: 'crm', toolsToExecute: ['search', 'fetch'] });
    const text = await gatehouse(['servers', 'get', 'crm']);
    expect(text.stdout).toMatch(/^name\s+crm$/m);
    expect(text.stdout).toMatch(/^headers\s+Authorization=/m);

    const missing = await gatehouse(['servers', 'get', 'nope']);
    expect(missing).toEqual({ code: 1, stdout: '', stderr: 'no MCP server named "nope"\n' });
  });

  it('prints user errors as field: message (CODE) with exit 1', async () => {
    const file = writeJson('bad.json', { name: 'bad-name', connectionType: 'HTTP', connectionString: 'ftp://x' });
    const run = await gatehouse(['servers', 'create', '--file', file]);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    const lines = run.stderr.trimEnd().split('\n');
    expect(lines).toContainEqual(expect.stringMatching(/^input\.name: .+ \(INVALID_NAME\)$/));
    expect(lines).toContainEqual(expect.stringMatching(/^input\.connectionString: .+ \(INVALID_URL\)$/));

    // With --json the payload, errors included, is on stdout for scripts.
    const asJson = await gatehouse(['servers', 'create', '--file', file, '--json']);
    expect(asJson.code).toBe(1);
    const payload = JSON.parse(asJson.stdout) as { mcpServer: null; errors: Array<{ code: string }> };
    expect(payload.mcpServer).toBeNull();
    expect(payload.errors.map((e) => e.code).sort()).toEqual(['INVALID_NAME', 'INVALID_URL']);
  });

  it('reads the server definition from stdin with --file -', async () => {
    const stdin = Readable.from([JSON.stringify({ name: 'from_stdin', connectionType: 'HTTP', connectionString: 'https://s.example.com' })]);
    const run = await gatehouse(['servers', 'create', '--file', '-', '--json'], { stdin });
    expect(json<{ mcpServer: McpServer }>(run).mcpServer.name).toBe('from_stdin');
    expect((await gatehouse(['servers', 'delete', 'from_stdin'])).stdout).toMatch(/^deleted MCP server from_stdin/);
    expect((await gatehouse(['servers', 'delete', 'from_stdin'])).stderr).toMatch(/^input\.name: .+ \(NOT_FOUND\)\n$/);
  });
});

describe('gatehouse CLI: users and keys', () => {
  let userId: string;

  it('creates and lists users', async () => {
    const created = json<{ user: User }>(await gatehouse(['users', 'create', '--email', 'dev@example.com', '--name', 'Dev', '--json']));
    userId = created.user.id;
    expect(created.user).toMatchObject({ email: 'dev@example.com', name: 'Dev' });
    expect((await gatehouse(['users', 'create', '--email', 'other@example.com'])).stdout).toMatch(/^created user other@example\.com \(id /);

    const taken = await gatehouse(['users', 'create', '--email', 'DEV@example.com']);
    expect(taken.code).toBe(1);
    expect(taken.stderr).toMatch(/^input\.email: .+ \(EMAIL_TAKEN\)\n$/);

    const list = await gatehouse(['users', 'list']);
    expect(list.stdout.split('\n')[0]).toMatch(/^ID\s+EMAIL\s+NAME\s+CREATED$/);
    expect(list.stdout).toContain('dev@example.com');
    expect(json<User[]>(await gatehouse(['users', 'list', '--json'])).map((u) => u.email).sort()).toEqual(['dev@example.com', 'other@example.com']);
  });

  it('keys create prints only the gk_ key on stdout, the details on stderr', async () => {
    const run = await gatehouse(['keys', 'create', '--user', userId, '--name', 'laptop', '--server', 'crm:search,fetch', '--server', 'kb:*']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^gk_[A-Za-z0-9_-]{40,}\n$/);
    const key = run.stdout.trim();
    expect(run.stderr).toContain('laptop');
    expect(run.stderr).toContain('dev@example.com');
    expect(run.stderr).toContain('crm:search,fetch kb:*');
    expect(run.stderr).toMatch(/shown only this once/);
    expect(run.stderr).not.toContain(key);

    // Never shown again.
    const keys = await gatehouse(['keys', 'list', '--json']);
    expect(keys.stdout).not.toContain(key);
    expect(json<VirtualKey[]>(keys)).toEqual([expect.objectContaining({ name: 'laptop', servers: [{ server: 'crm', tools: ['search', 'fetch'] }, { server: 'kb', tools: ['*'] }] })]);
  });

  it('keys create --json gives the key and the key record; --user takes an email too', async () => {
    const payload = json<{ key: string; virtualKey: VirtualKey; errors: unknown[] }>(
      await gatehouse(['keys', 'create', '--user', 'Dev@Example.com', '--name', 'ci', '--server', 'kb:*', '--expires', '2099-06-01T00:00:00Z', '--json']),
    );
    expect(payload.key).toMatch(/^gk_/);
    expect(payload.errors).toEqual([]);
    expect(payload.virtualKey).toMatchObject({ name: 'ci', userId, expiresAt: '2099-06-01T00:00:00.000Z' });

    const noUser = await gatehouse(['keys', 'create', '--user', 'ghost@example.com', '--name', 'x', '--server', 'kb:*']);
    expect(noUser).toMatchObject({ code: 1, stdout: '' });
    expect(noUser.stderr).toContain('no user with email');
  });

  it('keys create reports user errors with exit 1 and prints no key', async () => {
    const unknown = await gatehouse(['keys', 'create', '--user', userId, '--name', 'bad', '--server', 'ghost:*']);
    expect(unknown).toMatchObject({ code: 1, stdout: '' });
    expect(unknown.stderr).toMatch(/^input\.servers\.0\.server: .+ \(UNKNOWN_SERVER\)\n$/);
    const past = await gatehouse(['keys', 'create', '--user', userId, '--name', 'bad', '--server', 'kb:*', '--expires', '2001-01-01T00:00:00Z']);
    expect(past).toMatchObject({ code: 1, stdout: '' });
    expect(past.stderr).toMatch(/^input\.expiresAt: .+ \(EXPIRES_IN_PAST\)\n$/);
  });

  it('keys list filters by user and shows state; rotate prints a new key; revoke ends it', async () => {
    const other = json<User[]>(await gatehouse(['users', 'list', '--json'])).find((u) => u.email === 'other@example.com');
    expect(json<VirtualKey[]>(await gatehouse(['keys', 'list', '--user', other?.id ?? '', '--json']))).toEqual([]);

    const mine = json<VirtualKey[]>(await gatehouse(['keys', 'list', '--user', userId, '--json']));
    expect(mine.map((k) => k.name)).toEqual(['laptop', 'ci']);
    const laptop = mine[0]?.id ?? '';

    const rotated = await gatehouse(['keys', 'rotate', laptop]);
    expect(rotated.code).toBe(0);
    expect(rotated.stdout).toMatch(/^gk_[A-Za-z0-9_-]{40,}\n$/);
    expect(rotated.stderr).toMatch(/rotated/);

    const revoked = await gatehouse(['keys', 'revoke', laptop]);
    expect(revoked).toMatchObject({ code: 0, stderr: '' });
    expect(revoked.stdout).toMatch(/^revoked virtual key laptop/);

    const table = await gatehouse(['keys', 'list', '--user', userId]);
    expect(table.stdout.split('\n')[0]).toMatch(/^ID\s+NAME\s+USER\s+STATE\s+KEY\s+EXPIRES\s+LAST USED\s+SERVERS$/);
    expect(table.stdout.split('\n').find((l) => l.includes(laptop))).toMatch(/\srevoked\s/);

    const again = await gatehouse(['keys', 'rotate', laptop]);
    expect(again).toMatchObject({ code: 1, stdout: '' });
    expect(again.stderr).toMatch(/\(KEY_REVOKED\)\n$/);
  });

  it('nodes list prints a table (empty here) and JSON', async () => {
    expect((await gatehouse(['nodes', 'list'])).stdout).toMatch(/^ID\s+CONNECTED\s+ENROLLMENT\s+HEALTH\s+VERSION\s+LAST SEEN\s+PROBLEMS\n$/);
    expect(json<unknown[]>(await gatehouse(['nodes', 'list', '--json']))).toEqual([]);
  });
});

describe('gatehouse CLI: usage, environment and auth', () => {
  it.each([
    [['keys', 'create', '--user', 'u', '--server', 'kb:*'], /--name is required/],
    [['keys', 'create', '--user', 'u', '--name', 'n', '--server', 'kb'], /--server "kb" must be SERVER:TOOL/],
    [['keys', 'create', '--user', 'u', '--name', 'n', '--server', 'kb:'], /must be SERVER:TOOL/],
    [['keys', 'revoke'], /ID is required/],
    [['keys', 'revoke', 'a', 'b'], /unexpected argument "b"/],
    [['servers', 'list', '--email', 'x@example.com'], /--email is not an option of servers list/],
    [['servers', 'create'], /--file is required/],
    [['servers', 'create', '--file', 'does-not-exist.json'], /cannot read does-not-exist\.json: ENOENT/],
    [['keys', 'list', '--token', 'gha_x'], /Unknown option '--token'/],
    [['keys', 'frobnicate'], /unknown keys subcommand "frobnicate"; one of: list, create, update, rotate, revoke, delete/],
    [['keys'], /missing keys subcommand/],
    [['audit', 'tail', '-n', 'lots'], /-n must be a whole number from 0 to 100/],
    [['audit', 'frobnicate'], /unknown audit subcommand "frobnicate"; one of: tail, export, verify, settings/],
  ])('%j is a usage error (exit 2, usage line)', async (argv, message) => {
    const run = await gatehouse(argv);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(message);
    expect(run.stderr).toMatch(/^usage: gatehouse /m);
  });

  it('an invalid JSON file is a usage error', async () => {
    writeFileSync(join(dir, 'broken.json'), '{ name: ');
    const run = await gatehouse(['servers', 'create', '--file', 'broken.json']);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/broken\.json is not valid JSON/);
  });

  it('prints help on --help (exit 0) and on no arguments (exit 2)', async () => {
    const help = await gatehouse(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^usage: gatehouse <command>/);
    expect(help.stdout).toContain('keys create --user ID|EMAIL --name NAME');
    expect(help.stdout).toContain('GATEHOUSE_ADMIN_TOKEN');
    const one = await gatehouse(['keys', 'create', '--help']);
    expect(one).toMatchObject({ code: 0, stderr: '' });
    expect(one.stdout).toMatch(/^usage: gatehouse keys create --user/);
    const none = await gatehouse([]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/^usage: gatehouse/);
  });

  it('needs GATEHOUSE_ADMIN_TOKEN in the environment (exit 2), and a valid GATEHOUSE_URL', async () => {
    const noToken = await gatehouse(['servers', 'list'], { env: { GATEHOUSE_URL: cp.url } });
    expect(noToken.code).toBe(2);
    expect(noToken.stderr).toMatch(/GATEHOUSE_ADMIN_TOKEN is not set/);
    const badUrl = await gatehouse(['servers', 'list'], { env: { GATEHOUSE_URL: 'not a url', GATEHOUSE_ADMIN_TOKEN: 'gha_x' } });
    expect(badUrl.code).toBe(2);
    expect(badUrl.stderr).toMatch(/GATEHOUSE_URL: not a URL/);
  });

  it('a bad admin token fails with UNAUTHENTICATED (exit 1), never printing the token', async () => {
    const token = 'gha_wrong-token-for-the-cli-0123456789';
    const run = await gatehouse(['servers', 'list'], { env: { GATEHOUSE_URL: cp.url, GATEHOUSE_ADMIN_TOKEN: token } });
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(/^error: .+ \(UNAUTHENTICATED\) \(check GATEHOUSE_ADMIN_TOKEN\)\n$/);
    expect(run.stderr).not.toContain(token);
  });

  it('strips control characters from server-provided text in tables', async () => {
    const created = json<{ user: User }>(await gatehouse(['users', 'create', '--email', 'esc@example.com', '--name', 'Evil\u001b[2J\nName', '--json']));
    expect(created.user.name).toContain('\u001b');
    const table = await gatehouse(['users', 'list']);
    expect(table.stdout).not.toContain('\u001b');
    expect(table.stdout).toContain('Evil [2J Name');
  });
});

describe('gatehouse CLI as a process (sdk-client/cli.ts)', () => {
  it('creates a key with the token from the environment and exits 0; a usage error exits 2', async () => {
    const root = fileURLToPath(new URL('../../', import.meta.url));
    const run = promisify(execFile);
    const env = { ...process.env, GATEHOUSE_URL: cp.url, GATEHOUSE_ADMIN_TOKEN: cp.adminToken };
    const cli = ['--import', 'tsx', 'sdk-client/cli.ts'];

    const users = JSON.parse((await run(process.execPath, [...cli, 'users', 'list', '--json'], { cwd: root, env })).stdout) as User[];
    const user = users[0];
    expect(user).toBeDefined();
    const created = await run(process.execPath, [...cli, 'keys', 'create', '--user', user?.id ?? '', '--name', 'proc', '--server', 'kb:*'], { cwd: root, env });
    expect(created.stdout).toMatch(/^gk_[A-Za-z0-9_-]{40,}\n$/);

    const usage = await run(process.execPath, [...cli, 'keys', 'create'], { cwd: root, env }).then(
      () => ({ code: 0, stderr: '' }),
      (error: { code: number; stderr: string }) => ({ code: error.code, stderr: error.stderr }),
    );
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/^usage: gatehouse keys create/m);
  });
});
