/**
 * Runs the official MCP conformance suite (`@modelcontextprotocol/conformance` 0.2.x, a devDependency) in
 * server mode against one URL, once per spec revision's requirement set (2025-11-25 at the stateful wire,
 * 2026-07-28 at the stateless wire: the suite runs each scenario at its revision's wire), reads every
 * scenario's checks, and judges them against an expected-failures file (`expected-failures.json`:
 * target → revision → `scenario` or `scenario:check-id` → reason).
 *
 * A scenario fails when one of its checks is a FAILURE (as the suite scores requirement sets; WARNINGs are
 * SHOULDs and are reported, not failed). The verdict is clean when nothing failed that is not expected and
 * every expected failure still fails (a stale entry must be removed). It starts nothing itself: `cli.ts`
 * (`npm run conformance`) and the tests start the target and, if needed, a header-adding proxy.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { z } from 'zod';

export const REVISIONS = ['2025-11-25', '2026-07-28'] as const;
export type Revision = (typeof REVISIONS)[number];

export const CheckSchema = z.looseObject({
  id: z.string(),
  name: z.string().optional(),
  status: z.enum(['SUCCESS', 'FAILURE', 'WARNING', 'INFO', 'SKIPPED']),
  errorMessage: z.string().optional(),
});
export type Check = z.infer<typeof CheckSchema>;

export interface ScenarioResult {
  scenario: string;
  checks: Check[];
}

export interface RevisionRun {
  revision: Revision;
  /** Every server scenario the requirement set runs (scored and not scored). */
  scenarios: string[];
  results: ScenarioResult[];
  /** The CLI's own output, for diagnosing a run that produced no results. */
  output: string;
}

/** target → revision → key (`scenario` or `scenario:check-id`) → reason. */
export const ExpectedFailuresSchema = z.record(
  z.string(),
  z.partialRecord(z.enum(REVISIONS), z.record(z.string().regex(/^[a-z0-9-]+(:\S+)?$/), z.string().min(10))),
);
export type ExpectedFailures = z.infer<typeof ExpectedFailuresSchema>;

export const EXPECTED_FAILURES_FILE = new URL('./expected-failures.json', import.meta.url);

export function loadExpectedFailures(path: string | URL = EXPECTED_FAILURES_FILE): ExpectedFailures {
  return ExpectedFailuresSchema.parse(JSON.parse(readFileSync(path, 'utf8')));
}

/** Path of the suite's CLI (throws with a hint when the devDependency is missing). */
export function suiteCli(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('@modelcontextprotocol/conformance/package.json')), 'dist', 'index.js');
}

export function suiteVersion(): string {
  const pkg = JSON.parse(readFileSync(join(dirname(suiteCli()), '..', 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

function runCli(args: string[], timeoutMs: number): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [suiteCli(), ...args], { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      resolve({ code, output: `${stdout}\n${stderr}` });
    });
  });
}

/** The server scenarios a requirement set runs, from `conformance list --requirements <revision>`. */
export async function requiredScenarios(revision: Revision): Promise<string[]> {
  const { code, output } = await runCli(['list', '--requirements', revision], 30_000);
  if (code !== 0) throw new Error(`conformance list --requirements ${revision} failed:\n${output}`);
  const scored = /Server scenarios[^\n]*:\n((?:\s+- \S+\n)+)/.exec(output)?.[1] ?? '';
  const names = [...scored.matchAll(/- (\S+)/g)].map((m) => m[1] ?? '');
  const notScored = [...output.matchAll(/^\s+- (\S+) \[server\]$/gm)].map((m) => m[1] ?? '');
  return [...names, ...notScored];
}

const RESULT_DIR = /^server-(.+)-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z$/;

/** One requirement-set run of the suite against `url`. */
export async function runRevision(url: string, revision: Revision, options: { timeoutMs?: number; outDir?: string } = {}): Promise<RevisionRun> {
  const scenarios = await requiredScenarios(revision);
  const outDir = options.outDir ?? mkdtempSync(join(tmpdir(), `gatehouse-conformance-${revision}-`));
  try {
    // The exit code is the suite's own verdict on scored scenarios; the checks are judged here instead.
    const { output } = await runCli(['server', '--url', url, '--requirements', revision, '-o', outDir], options.timeoutMs ?? 240_000);
    const results: ScenarioResult[] = [];
    for (const dir of readdirSync(outDir)) {
      const scenario = RESULT_DIR.exec(dir)?.[1];
      if (!scenario) continue;
      // A scenario that took the CLI down leaves its directory without checks: judged as "no checks".
      const file = join(outDir, dir, 'checks.json');
      const checks = existsSync(file) ? z.array(CheckSchema).parse(JSON.parse(readFileSync(file, 'utf8'))) : [];
      results.push({ scenario, checks });
    }
    results.sort((a, b) => scenarios.indexOf(a.scenario) - scenarios.indexOf(b.scenario));
    return { revision, scenarios, results, output };
  } finally {
    if (!options.outDir) rmSync(outDir, { recursive: true, force: true });
  }
}

export interface Failure {
  revision: Revision;
  /** `scenario` or `scenario:check-id`. */
  key: string;
  detail: string;
}

export interface Verdict {
  /** Failures not in the expected-failures file. */
  unexpected: Failure[];
  /** Expected failures that did fail, with their reason. */
  expected: (Failure & { reason: string })[];
  /** Entries that no longer fail (or name nothing that ran): remove them. */
  stale: { revision: Revision; key: string; reason: string }[];
  /** WARNING checks (SHOULD-level), reported only. */
  warnings: Failure[];
  passedScenarios: number;
  totalScenarios: number;
}

function describe(check: Check): string {
  return `${check.id}: ${check.errorMessage ?? check.status}`.slice(0, 400);
}

/** Judges runs against the expected failures of one target. */
export function judge(runs: readonly RevisionRun[], expectedByRevision: ExpectedFailures[string] | undefined): Verdict {
  const verdict: Verdict = { unexpected: [], expected: [], stale: [], warnings: [], passedScenarios: 0, totalScenarios: 0 };
  for (const run of runs) {
    const expected = new Map(Object.entries(expectedByRevision?.[run.revision] ?? {}));
    const used = new Set<string>();
    const ran = new Map(run.results.map((r) => [r.scenario, r]));
    for (const scenario of run.scenarios) {
      verdict.totalScenarios++;
      const result = ran.get(scenario);
      const failures = result ? result.checks.filter((c) => c.status === 'FAILURE') : [];
      const missing = result === undefined || result.checks.length === 0;
      for (const warning of result?.checks.filter((c) => c.status === 'WARNING') ?? []) {
        verdict.warnings.push({ revision: run.revision, key: `${scenario}:${warning.id}`, detail: describe(warning) });
      }
      const wholeReason = expected.get(scenario);
      if (wholeReason !== undefined) {
        used.add(scenario);
        if (missing || failures.length > 0) {
          verdict.expected.push({ revision: run.revision, key: scenario, detail: missing ? 'no checks recorded' : failures.map(describe).join('; '), reason: wholeReason });
        } else verdict.stale.push({ revision: run.revision, key: scenario, reason: wholeReason });
        continue;
      }
      if (missing) {
        verdict.unexpected.push({ revision: run.revision, key: scenario, detail: 'the scenario recorded no checks (did it crash?)' });
        continue;
      }
      let clean = true;
      for (const check of failures) {
        const key = `${scenario}:${check.id}`;
        const reason = expected.get(key);
        if (reason === undefined) {
          clean = false;
          verdict.unexpected.push({ revision: run.revision, key, detail: describe(check) });
        } else {
          used.add(key);
          verdict.expected.push({ revision: run.revision, key, detail: describe(check), reason });
        }
      }
      if (clean && failures.length === 0) verdict.passedScenarios++;
    }
    for (const [key, reason] of expected) {
      if (!used.has(key)) verdict.stale.push({ revision: run.revision, key, reason });
    }
  }
  return verdict;
}

export function isClean(verdict: Verdict): boolean {
  return verdict.unexpected.length === 0 && verdict.stale.length === 0;
}

/** A human summary: counts per revision, then every unexpected failure, stale entry, expected failure and warning. */
export function formatSummary(url: string, target: string, runs: readonly RevisionRun[], verdict: Verdict): string {
  const lines = [`MCP conformance ${suiteVersion()} against ${url} (expected failures: "${target}")`, ''];
  lines.push('revision     scenarios  passed  expected-failures  unexpected  warnings');
  for (const run of runs) {
    const single = judge([run], undefined);
    const mine = (list: { revision: Revision }[]): number => list.filter((f) => f.revision === run.revision).length;
    lines.push(
      `${run.revision}   ${String(run.scenarios.length).padStart(9)}  ${String(single.passedScenarios).padStart(6)}  ${String(mine(verdict.expected)).padStart(17)}  ${String(mine(verdict.unexpected)).padStart(10)}  ${String(mine(verdict.warnings)).padStart(8)}`,
    );
  }
  const section = (title: string, items: string[]): void => {
    if (items.length === 0) return;
    lines.push('', `${title} (${items.length}):`, ...items.map((i) => `  ${i}`));
  };
  section('UNEXPECTED FAILURES', verdict.unexpected.map((f) => `${f.revision} ${f.key} — ${f.detail}`));
  section('STALE expected failures (they pass now: remove them)', verdict.stale.map((s) => `${s.revision} ${s.key} — ${s.reason}`));
  section('Expected failures', verdict.expected.map((f) => `${f.revision} ${f.key} — ${f.reason}`));
  section('Warnings (SHOULD-level, not failures)', verdict.warnings.map((w) => `${w.revision} ${w.key} — ${w.detail}`));
  lines.push('', isClean(verdict) ? 'RESULT: as expected' : 'RESULT: FAILED');
  return lines.join('\n');
}
