/**
 * `npm start` as a new operator runs it: control plane and node in one process, embedded SQLite and key
 * material generated under the data dir with a log line each, a bootstrap admin token printed once,
 * GraphiQL on /graphql and /mcp answering. Ports are ephemeral here so this runs beside a real `npm start`.
 */
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { removeAtExit, spawnOwned } from '../support/processes.js';
import { waitFor } from '../support/wait.js';

const ROOT = resolve(import.meta.dirname, '../..');
const dataDir = removeAtExit(mkdtempSync(join(tmpdir(), 'gatehouse-start-')));

async function start(): Promise<{ output: () => string; cpUrl: string; mcpUrl: string; stop: () => Promise<void> }> {
  // Owned (support/processes.ts): its own process group, killed with the worker if this test never stops it.
  const owned = spawnOwned('npm', ['start'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', GATEHOUSE_DATA_DIR: dataDir, GATEHOUSE_CP_PORT: '0', GATEHOUSE_NODE_PORT: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  owned.proc.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  owned.proc.stderr?.on('data', (c: Buffer) => (out += c.toString()));
  // Generous: `npm start` compiles both planes with tsx, which on a loaded 2-core CI box is the slow part.
  const up = await waitFor(() => /GraphiQL:\s+(\S+)\s+MCP:\s+(\S+)/.exec(out), { timeoutMs: 90_000, what: 'npm start to come up' }).catch(
    (error: unknown) => {
      // The output at the moment of giving up, not at the moment of starting to wait.
      throw new Error(`${error instanceof Error ? error.message : String(error)}; its output:\n${out}`);
    },
  );
  return {
    output: () => out,
    cpUrl: (up[1] ?? '').replace(/\/graphql$/, ''),
    mcpUrl: up[2] ?? '',
    // To the whole group, and until every process of it has exited: npm exits when its child does, but
    // tsx's node may still be closing (flushing, releasing the node's state-dir lock), and the next start
    // on this data dir must not begin before (on a loaded CI box it began early: StateDirLockedError).
    stop: () => owned.stop({ graceMs: 60_000 }),
  };
}

describe('npm start', () => {
  it('refuses a node setting that is not a number of milliseconds before it starts anything, naming it', async () => {
    const refusedDir = removeAtExit(mkdtempSync(join(tmpdir(), 'gatehouse-start-refused-')));
    const owned = spawnOwned('npm', ['start'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', GATEHOUSE_DATA_DIR: refusedDir, GATEHOUSE_CP_PORT: '0', GATEHOUSE_NODE_PORT: '0', GATEHOUSE_DRAIN_MS: 'soon' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    owned.proc.stderr?.on('data', (c: Buffer) => (err += c.toString()));
    const code = await new Promise<number | null>((done) => owned.proc.once('exit', done));
    expect(code).not.toBe(0);
    expect(err).toContain('GATEHOUSE_DRAIN_MS must be a number of milliseconds');
    expect(err).not.toMatch(/\n\s+at /);
    // Nothing was started: no database, no key material.
    expect(existsSync(join(refusedDir, 'gatehouse.db'))).toBe(false);
  }, 90_000);

  it('serves GraphiQL and /mcp, generating keys and printing the admin token once', async () => {
    const first = await start();
    const token = /Bootstrap admin token \(shown once, keep it safe\): (gha_\w+)/.exec(first.output())?.[1];
    expect(token).toBeDefined();
    expect(first.output()).toMatch(/generated a new master key/);
    expect(first.output()).toMatch(/generated a new Ed25519 snapshot signing key/);
    expect(existsSync(join(dataDir, 'gatehouse.db'))).toBe(true);

    const graphiql = await fetch(`${first.cpUrl}/graphql`, { headers: { accept: 'text/html' } });
    expect(graphiql.status).toBe(200);
    expect(await graphiql.text()).toMatch(/graphiql/i);

    const version = await fetch(`${first.cpUrl}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query: '{ configVersion }' }),
    });
    expect(((await version.json()) as { data: { configVersion: number } }).data.configVersion).toBeGreaterThan(0);

    const mcp = await fetch(first.mcpUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(mcp.status).toBe(401);
    expect(await mcp.json()).toMatchObject({ type: 'virtual_key_required' });
    await waitFor(async () => (await fetch(first.mcpUrl.replace(/\/mcp$/, '/readyz'))).status === 200, { what: 'node ready' });
    await first.stop();

    // Second start on the same data dir: same keys, no new token printed.
    const second = await start();
    expect(second.output()).not.toMatch(/Bootstrap admin token/);
    expect(second.output()).not.toMatch(/generated a new/);
    const again = await fetch(`${second.cpUrl}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query: '{ configVersion }' }),
    });
    expect(again.status).toBe(200);
    await second.stop();
  }, 240_000);
});
