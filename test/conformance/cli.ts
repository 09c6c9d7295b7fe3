/**
 * `npm run conformance`: the MCP conformance suite's server requirement sets (2025-11-25 and 2026-07-28)
 * against a target, judged against `expected-failures.json`, with a summary. Exit code 0 when the run is as
 * expected (no unexpected failure, no stale entry).
 *
 *   npm run conformance                                   the fixture upstream behind two nodes' /mcp/conf (with a
 *                                                         virtual key), then the fixture straight (its own failures)
 *   npm run conformance -- --url http://127.0.0.1:8080/mcp/conformance \
 *       --header "Authorization: Bearer gk_…" --target mcp-server
 *   options: --revision 2026-07-28 (repeatable), --expected-failures <file>, --keep <dir> (keep results)
 *
 * With `--header`, a local proxy adds the headers (the suite cannot send any) and the suite is pointed at it.
 */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { startConformanceFixture, type ConformanceFixture } from '../fixtures/conformance/server.js';
import { startServerRouteTarget } from './harness.js';
import { startHeaderProxy, type HeaderProxy } from './header-proxy.js';
import { formatSummary, isClean, judge, loadExpectedFailures, REVISIONS, runRevision, type Revision, type RevisionRun } from './runner.js';

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    target: { type: 'string' },
    header: { type: 'string', multiple: true },
    revision: { type: 'string', multiple: true },
    'expected-failures': { type: 'string' },
    keep: { type: 'string' },
    help: { type: 'boolean' },
  },
});

if (values.help) {
  process.stdout.write(
    'npm run conformance -- [--url URL] [--target NAME] [--header "Name: value"]... [--revision R]... [--expected-failures FILE] [--keep DIR]\n',
  );
  process.exit(0);
}

const revisions = (values.revision ?? [...REVISIONS]).map((r) => {
  if (!(REVISIONS as readonly string[]).includes(r)) throw new Error(`unknown revision ${r}; use one of ${REVISIONS.join(', ')}`);
  return r as Revision;
});
const headers: Record<string, string> = {};
for (const line of values.header ?? []) {
  const colon = line.indexOf(':');
  if (colon <= 0) throw new Error(`--header "${line}" is not "Name: value"`);
  headers[line.slice(0, colon).trim()] = line.slice(colon + 1).trim();
}

const expected = loadExpectedFailures(values['expected-failures'] ? resolve(values['expected-failures']) : undefined);

/** Runs the requirement sets against `url` and prints the verdict for `target`; true when as expected. */
async function runAgainst(url: string, target: string, display: string): Promise<boolean> {
  if (target !== 'none' && !(target in expected)) throw new Error(`no target "${target}" in the expected-failures file (have: ${Object.keys(expected).join(', ')})`);
  const runs: RevisionRun[] = [];
  for (const revision of revisions) {
    process.stderr.write(`running the ${revision} requirement set against ${display}…\n`);
    const outDir = values.keep ? join(resolve(values.keep), target, revision) : undefined;
    if (outDir) mkdirSync(outDir, { recursive: true });
    runs.push(await runRevision(url, revision, outDir ? { outDir } : {}));
  }
  const verdict = judge(runs, expected[target]);
  process.stdout.write(`${formatSummary(display, target, runs, verdict)}\n`);
  return isClean(verdict);
}

if (values.url) {
  let proxy: HeaderProxy | null = null;
  try {
    if (Object.keys(headers).length > 0) proxy = await startHeaderProxy({ target: values.url, headers });
    process.exitCode = (await runAgainst(proxy?.url ?? values.url, values.target ?? 'none', values.url)) ? 0 : 1;
  } finally {
    await proxy?.close();
  }
} else {
  // The gateway: the fixture behind two nodes' /mcp/{server}, each request to the other node (sealed
  // sessions), with a virtual key; then the fixture alone, which shows which failures are its own.
  const gateway = await startServerRouteTarget();
  let clean: boolean;
  try {
    clean = await runAgainst(gateway.url, values.target ?? 'mcp-server', `two nodes' ${new URL(gateway.nodes[0]?.url ?? gateway.url).origin}/mcp/conf (virtual key)`);
  } finally {
    await gateway.close();
  }
  let fixture: ConformanceFixture | null = null;
  try {
    fixture = await startConformanceFixture();
    clean = (await runAgainst(fixture.url, 'fixture', `the fixture alone (${fixture.url})`)) && clean;
  } finally {
    await fixture?.close();
  }
  process.exitCode = clean ? 0 : 1;
}
