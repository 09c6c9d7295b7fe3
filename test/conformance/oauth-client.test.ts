/**
 * The MCP conformance suite's client auth scenarios (`conformance client --suite auth`) with Gatehouse as
 * the OAuth client of each scenario's server, through `oauth-client.ts`. Every scenario that applies to a
 * gateway passes; the ones that do not are in expected-failures.json (target `oauth-client`) with their
 * reason, and an entry that starts passing must be removed.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { build } from 'esbuild';
import { beforeAll, describe, expect, it } from 'vitest';
import { CheckSchema, formatSummary, isClean, judge, loadExpectedFailures, suiteCli, type RevisionRun, type ScenarioResult } from './runner.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/**
 * The adapter, bundled once (dependencies stay in node_modules) so that each scenario's process starts as
 * plain JavaScript: under tsx every start transformed and loaded the control plane's modules one by one,
 * ~10 s per scenario on a loaded 2-core box against ~5 s bundled, and the suite starts one per scenario.
 * Inside node_modules/.cache so that its bare imports resolve from the repository's node_modules.
 */
const ADAPTER_BUNDLE = join(ROOT, 'node_modules/.cache/gatehouse-conformance/oauth-client.mjs');
const ADAPTER = `${process.execPath} ${ADAPTER_BUNDLE}`;

beforeAll(async () => {
  await build({ absWorkingDir: ROOT, entryPoints: ['test/conformance/oauth-client.ts'], outfile: ADAPTER_BUNDLE, bundle: true, platform: 'node', format: 'esm', target: 'node22', packages: 'external', logLevel: 'warning' });
});
const RESULT_DIR = /^(.+)-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z$/;

/** Scenarios of the 2026-07-28 revision outside the `auth` suite: RFC 9207 `iss`, issuer and resource checks, AS migration. */
const SCENARIOS_2026 = [
  'iss-supported',
  'iss-not-advertised',
  'iss-supported-missing',
  'iss-wrong-issuer',
  'iss-unexpected',
  'iss-normalized',
  'metadata-issuer-mismatch',
  'resource-mismatch',
  'authorization-server-migration',
  'offline-access-scope',
  'offline-access-not-supported',
];

function runCli(selection: string[], outDir: string): Promise<string> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [suiteCli(), 'client', '--command', ADAPTER, ...selection, '--timeout', '150000', '-o', outDir],
      { cwd: ROOT, timeout: 240_000, maxBuffer: 64 * 1024 * 1024 },
      (_error, stdout, stderr) => resolve(`${stdout}\n${stderr}`),
    );
  });
}

describe('conformance client --suite auth, Gatehouse as the OAuth client', () => {
  it('every applicable scenario passes; the rest are expected failures with reasons', async () => {
    const outDir = mkdtempSync(join(tmpdir(), 'gatehouse-oauth-conformance-'));
    try {
      const output = await runCli(['--suite', 'auth'], outDir);
      const results = readResults(outDir);
      const run: RevisionRun = { revision: '2025-11-25', scenarios: results.map((r) => r.scenario), results, output };
      expect(results.length, output.slice(-4000)).toBeGreaterThanOrEqual(10);
      const verdict = judge([run], loadExpectedFailures()['oauth-client']);
      expect(isClean(verdict), formatSummary('(scenario servers)', 'oauth-client', [run], verdict)).toBe(true);
      // The core of discovery + registration + PKCE passed, not just "nothing unexpected".
      expect(verdict.passedScenarios).toBeGreaterThanOrEqual(10);
    } finally {
      rmSync(outDir, { recursive: true, force: true });
    }
  }, 300_000);

  it('2026-07-28: iss (RFC 9207), issuer and resource mismatches, re-registration when the AS changes', async () => {
    const outDir = mkdtempSync(join(tmpdir(), 'gatehouse-oauth-conformance-2026-'));
    try {
      const outputs = await Promise.all(SCENARIOS_2026.map((scenario) => runCli(['--scenario', `auth/${scenario}`, '--spec-version', '2026-07-28'], outDir)));
      const results = readResults(outDir);
      const run: RevisionRun = { revision: '2026-07-28', scenarios: SCENARIOS_2026, results, output: outputs.join('\n') };
      expect(results.map((r) => r.scenario).sort(), run.output.slice(-4000)).toEqual([...SCENARIOS_2026].sort());
      const verdict = judge([run], loadExpectedFailures()['oauth-client']);
      expect(isClean(verdict), formatSummary('(scenario servers)', 'oauth-client', [run], verdict)).toBe(true);
    } finally {
      rmSync(outDir, { recursive: true, force: true });
    }
  }, 300_000);
});

function readResults(outDir: string): ScenarioResult[] {
  const results: ScenarioResult[] = [];
  const base = join(outDir, 'auth');
  for (const dir of existsSync(base) ? readdirSync(base) : []) {
    const scenario = RESULT_DIR.exec(dir)?.[1];
    const file = join(base, dir, 'checks.json');
    if (scenario) results.push({ scenario, checks: existsSync(file) ? z.array(CheckSchema).parse(JSON.parse(readFileSync(file, 'utf8'))) : [] });
  }
  return results;
}
