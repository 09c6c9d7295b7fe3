/**
 * `gatehouse audit …` against a running control plane whose store holds real ingested events: `tail`
 * prints the newest and follows new ones until interrupted, `export --from --to` streams exactly the
 * events in the window as JSON Lines, `verify` passes and then fails (exit 1) on a tampered row,
 * `settings` sets and lists a server's guardrail.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliRunner } from '../support/cli.js';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { waitFor } from '../support/wait.js';

let cp: TestControlPlane;
const dir = mkdtempSync(join(tmpdir(), 'gatehouse-cli-audit-'));
const gatehouse = cliRunner(() => ({ url: cp.url, adminToken: cp.adminToken, cwd: dir, env: { GATEHOUSE_CONFIG: join(dir, 'none.json') } }));

const event = (minute: number, tool = 'search') => ({
  id: randomUUID(),
  time: new Date(Date.UTC(2026, 11, 1, 1, minute)).toISOString(),
  node: 'n',
  method: 'tools/call',
  keyId: 'key-1',
  server: 'docs',
  tool,
  arguments: { q: `minute ${minute}` },
  outcome: 'ok',
  latencyMs: 4,
});

beforeAll(async () => {
  cp = await startTestControlPlane();
  await cp.cp.audit.ingest('node-a', [event(0), event(10), event(20), event(30)]);
});
afterAll(async () => {
  await cp?.close();
});

describe('gatehouse audit', () => {
  it('export streams the events of a time window as JSON Lines', async () => {
    const run = await gatehouse(['audit', 'export', '--from', '2026-12-01T01:05:00Z', '--to', '2026-12-01T01:25:00Z']);
    expect(run.code).toBe(0);
    const lines = run.stdout.trim().split('\n').map((l) => JSON.parse(l) as { arguments: { q: string }; node: string; hash: string });
    expect(lines.map((l) => l.arguments.q)).toEqual(['minute 10', 'minute 20']);
    expect(lines[0]).toMatchObject({ node: 'node-a', hash: expect.any(String) });
    expect(run.stderr).toContain('2 audit events exported');
    expect((await gatehouse(['audit', 'export', '--from', 'yesterday-ish'])).code).toBe(2);
  });

  it('tail prints the newest events, then follows until interrupted', async () => {
    const stop = new AbortController();
    let stdout = '';
    const running = gatehouse(['audit', 'tail', '-n', '2', '--interval', '100', '--server', 'docs'], {
      stdout: { write: (s: string) => (stdout += s) },
      signal: stop.signal,
    });
    await waitFor(() => stdout.split('\n').filter(Boolean).length === 2, { what: 'newest two' });
    expect(stdout).toContain('2026-12-01T01:20:00.000Z');
    expect(stdout).toContain('2026-12-01T01:30:00.000Z');
    await cp.cp.audit.ingest('node-a', [event(40, 'fetch'), event(50, 'fetch')]);
    await waitFor(() => stdout.split('\n').filter(Boolean).length === 4, { what: 'followed events' });
    stop.abort();
    const run = await running;
    expect(run.code).toBe(0);
    expect(stdout.trim().split('\n').at(-1)).toMatch(/2026-12-01T01:50:00.000Z ok +key-1 tools\/call docs-fetch 4ms node=node-a/);
  });

  it('verify passes, then fails at a tampered row', async () => {
    expect(await gatehouse(['audit', 'verify'])).toMatchObject({ code: 0, stdout: expect.stringMatching(/^ok: 6 events/) });
    await cp.cp.db.updateTable('audit_events').set({ outcome: 'denied' }).where('seq', '=', 3).execute();
    const run = await gatehouse(['audit', 'verify']);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/BROKEN at partition .* seq 3 .*column_mismatch/);
  });

  it('settings sets a server\'s guardrail and lists it', async () => {
    await cp.gql(`mutation { createMcpServer(input: { name: "docs", connectionType: HTTP, connectionString: "http://127.0.0.1:9/mcp", toolsToExecute: ["*"] }) { errors { code } } }`);
    const set = await gatehouse(['audit', 'settings', '--server', 'docs', '--guardrail', 'block', '--content', 'off']);
    expect(set).toMatchObject({ code: 0, stdout: 'server docs: content off, guardrail block\n' });
    const list = await gatehouse(['audit', 'settings']);
    expect(list.stdout).toMatch(/SERVER +docs +off +BLOCK/);
    expect((await gatehouse(['audit', 'settings', '--server', 'nope', '--guardrail', 'block'])).code).toBe(1);
    expect((await gatehouse(['audit', 'settings', '--guardrail', 'sometimes', '--server', 'docs'])).code).toBe(2);
  });
});
