/**
 * The official MCP conformance suite (0.2.x, server requirement sets for 2025-11-25 and 2026-07-28) against
 * a node's aggregated `/mcp`, with the conformance fixture as its upstream (`harness.ts` says what stands in
 * front of the node and why). Every failure must be listed, with its reason, under `"mcp"` in
 * `expected-failures.json`, and every entry there must still fail: a scenario that starts passing (e.g.
 * when `/mcp` learns 2026-07-28 or resources) fails this test until its entry is removed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startConformanceTarget, type ConformanceTarget } from './harness.js';
import { judge, loadExpectedFailures, REVISIONS, runRevision, type RevisionRun, type Verdict } from './runner.js';

describe('MCP conformance suite, server requirement sets, against the aggregated /mcp', () => {
  let target: ConformanceTarget;
  const runs: RevisionRun[] = [];
  let verdict: Verdict;

  beforeAll(async () => {
    target = await startConformanceTarget();
    for (const revision of REVISIONS) runs.push(await runRevision(target.url, revision));
    verdict = judge(runs, loadExpectedFailures().mcp);
  }, 180_000);

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

  it('passes the tools scenarios of 2025-11-25 outright, through the node and the key', () => {
    const run = runs.find((r) => r.revision === '2025-11-25');
    for (const scenario of ['server-initialize', 'ping', 'tools-list', 'tools-call-simple-text', 'tools-call-image', 'tools-call-error', 'json-schema-2020-12']) {
      const checks = run?.results.find((r) => r.scenario === scenario)?.checks ?? [];
      expect(checks.filter((c) => c.status === 'SUCCESS').length, scenario).toBeGreaterThan(0);
      expect(checks.filter((c) => c.status === 'FAILURE'), scenario).toEqual([]);
    }
    // The calls really went through the node to the fixture.
    expect(target.fixture.events.events.some((e) => e.kind === 'http' && e.rpcMethod === 'tools/call')).toBe(true);
  });
});
