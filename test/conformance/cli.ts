/**
 * `npm run conformance`: the MCP conformance suite's server requirement sets (2025-11-25 and 2026-07-28)
 * against a target, judged against `expected-failures.json`, with a summary. Exit code 0 when the run is as
 * expected (no unexpected failure, no stale entry).
 *
 *   npm run conformance                                   the conformance fixture upstream, started here
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

let fixture: ConformanceFixture | null = null;
let proxy: HeaderProxy | null = null;
try {
  const url = values.url ?? (fixture = await startConformanceFixture()).url;
  // Straight at the fixture, the fixture's own failures are expected; elsewhere say which list applies.
  const target = values.target ?? (values.url ? 'none' : 'fixture');
  const expected = loadExpectedFailures(values['expected-failures'] ? resolve(values['expected-failures']) : undefined);
  if (target !== 'none' && !(target in expected)) throw new Error(`no target "${target}" in the expected-failures file (have: ${Object.keys(expected).join(', ')})`);
  if (Object.keys(headers).length > 0) proxy = await startHeaderProxy({ target: url, headers });
  const suiteUrl = proxy?.url ?? url;
  const runs: RevisionRun[] = [];
  for (const revision of revisions) {
    process.stderr.write(`running the ${revision} requirement set against ${url}…\n`);
    const outDir = values.keep ? join(resolve(values.keep), revision) : undefined;
    if (outDir) mkdirSync(outDir, { recursive: true });
    runs.push(await runRevision(suiteUrl, revision, outDir ? { outDir } : {}));
  }
  const verdict = judge(runs, expected[target]);
  process.stdout.write(`${formatSummary(url, target, runs, verdict)}\n`);
  process.exitCode = isClean(verdict) ? 0 : 1;
} finally {
  await proxy?.close();
  await fixture?.close();
}
