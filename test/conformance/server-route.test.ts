/**
 * The official MCP conformance suite (0.2.x, server requirement sets for 2025-11-25 and 2026-07-28) against
 * `/mcp/{server}` (issue 9), with the conformance fixture as the upstream, through two nodes in turn (every
 * request of a session lands on the other node than the one before: sealed session ids, no sticky routing).
 * Failures must be listed under `"mcp-server"` in `expected-failures.json`; every listed one must still fail.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServerRouteTarget } from './harness.js';
import { judge, loadExpectedFailures, REVISIONS, runRevision, type RevisionRun, type Verdict } from './runner.js';

describe('MCP conformance suite against /mcp/{server}, through two nodes', () => {
  let target: Awaited<ReturnType<typeof startServerRouteTarget>>;
  const runs: RevisionRun[] = [];
  let verdict: Verdict;

  beforeAll(async () => {
    target = await startServerRouteTarget();
    for (const revision of REVISIONS) runs.push(await runRevision(target.url, revision));
    verdict = judge(runs, loadExpectedFailures()['mcp-server']);
  }, 240_000);

  afterAll(async () => {
    await target?.close();
  });

  it('runs every scenario of both requirement sets', () => {
    for (const run of runs) {
      expect(run.scenarios.length, run.output).toBeGreaterThan(20);
      expect(run.results.map((r) => r.scenario).sort(), run.output).toEqual([...run.scenarios].sort());
    }
  });

  it('fails nothing beyond its expected failures, and each of those still fails', () => {
    expect(verdict.unexpected).toEqual([]);
    expect(verdict.stale).toEqual([]);
  });

  it('carried 2025-11-25 sessions across both nodes without showing the client an upstream session id', () => {
    const upstreamIds = new Set(target.fixture.events.events.flatMap((e) => (e.kind === 'http' && e.sessionId ? [e.sessionId] : [])));
    expect(upstreamIds.size).toBeGreaterThan(5);
    for (const id of upstreamIds) expect(id.startsWith('v1.')).toBe(false);
    // Nothing of the caller's reached the upstream: no virtual key, no Authorization at all.
    for (const e of target.fixture.events.events) {
      if (e.kind !== 'http') continue;
      expect(e.headers.authorization).toBeUndefined();
      expect(JSON.stringify(e.headers)).not.toContain(target.key);
    }
  });
});
