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
import { describe, expect, it } from 'vitest';
import { CheckSchema, formatSummary, isClean, judge, loadExpectedFailures, suiteCli, type RevisionRun, type ScenarioResult } from './runner.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const ADAPTER = `${process.execPath} ${join(ROOT, 'node_modules/tsx/dist/cli.mjs')} ${join(ROOT, 'test/conformance/oauth-client.ts')}`;
const RESULT_DIR = /^(.+)-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z$/;

function runSuite(outDir: string): Promise<string> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [suiteCli(), 'client', '--command', ADAPTER, '--suite', 'auth', '--timeout', '120000', '-o', outDir],
      { cwd: ROOT, timeout: 240_000, maxBuffer: 64 * 1024 * 1024 },
      (_error, stdout, stderr) => resolve(`${stdout}\n${stderr}`),
    );
  });
}

describe('conformance client --suite auth, Gatehouse as the OAuth client', () => {
  it('every applicable scenario passes; the rest are expected failures with reasons', async () => {
    const outDir = mkdtempSync(join(tmpdir(), 'gatehouse-oauth-conformance-'));
    try {
      const output = await runSuite(outDir);
      const results: ScenarioResult[] = [];
      const base = join(outDir, 'auth');
      for (const dir of existsSync(base) ? readdirSync(base) : []) {
        const scenario = RESULT_DIR.exec(dir)?.[1];
        const file = join(base, dir, 'checks.json');
        if (scenario) results.push({ scenario, checks: existsSync(file) ? z.array(CheckSchema).parse(JSON.parse(readFileSync(file, 'utf8'))) : [] });
      }
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
});
