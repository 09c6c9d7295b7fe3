/**
 * How `runner.ts` judges a conformance run against expected failures: unexpected failures, expected ones
 * (whole scenario or one check), stale entries, scenarios that recorded nothing, and warnings (reported,
 * never failures). Synthetic runs: the real suite runs in `fixture.test.ts` and `mcp-server.test.ts`.
 */
import { describe, expect, it } from 'vitest';
import { ExpectedFailuresSchema, isClean, judge, type Check, type RevisionRun } from './runner.js';

const check = (id: string, status: Check['status']): Check => ({ id, status, ...(status === 'FAILURE' ? { errorMessage: `${id} broke` } : {}) });

function run(results: Record<string, Check[]>, extra: string[] = []): RevisionRun {
  return {
    revision: '2026-07-28',
    scenarios: [...Object.keys(results), ...extra],
    results: Object.entries(results).map(([scenario, checks]) => ({ scenario, checks })),
    output: '',
  };
}

describe('judge', () => {
  it('a failure not listed is unexpected; passing scenarios are counted', () => {
    const verdict = judge([run({ a: [check('a', 'SUCCESS')], b: [check('b1', 'SUCCESS'), check('b2', 'FAILURE')] })], undefined);
    expect(verdict.unexpected).toEqual([{ revision: '2026-07-28', key: 'b:b2', detail: 'b2: b2 broke' }]);
    expect(verdict.passedScenarios).toBe(1);
    expect(isClean(verdict)).toBe(false);
  });

  it('a whole-scenario entry excuses every failing check of it, with its reason', () => {
    const verdict = judge([run({ b: [check('b1', 'FAILURE'), check('b2', 'FAILURE')] })], { '2026-07-28': { b: 'not implemented here, on purpose' } });
    expect(verdict.unexpected).toEqual([]);
    expect(verdict.expected.map((e) => [e.key, e.reason])).toEqual([['b', 'not implemented here, on purpose']]);
    expect(isClean(verdict)).toBe(true);
  });

  it('a per-check entry excuses that check only', () => {
    const verdict = judge([run({ b: [check('b1', 'FAILURE'), check('b2', 'FAILURE')] })], { '2026-07-28': { 'b:b1': 'this check cannot pass here' } });
    expect(verdict.expected.map((e) => e.key)).toEqual(['b:b1']);
    expect(verdict.unexpected.map((e) => e.key)).toEqual(['b:b2']);
  });

  it('an entry that passes now, or names nothing that ran, is stale', () => {
    const verdict = judge([run({ a: [check('a', 'SUCCESS')] })], {
      '2026-07-28': { a: 'used to fail but passes now', 'a:gone': 'a check that no longer fails', zzz: 'a scenario that did not run' },
    });
    expect(verdict.stale.map((s) => s.key).sort()).toEqual(['a', 'a:gone', 'zzz']);
    expect(isClean(verdict)).toBe(false);
  });

  it('a scenario that recorded no checks is a failure unless listed whole', () => {
    expect(judge([run({}, ['crashed'])], undefined).unexpected.map((f) => f.key)).toEqual(['crashed']);
    const listed = judge([run({}, ['crashed'])], { '2026-07-28': { crashed: 'known to take the CLI down' } });
    expect(listed.unexpected).toEqual([]);
    expect(listed.expected.map((e) => e.detail)).toEqual(['no checks recorded']);
  });

  it('warnings are reported but do not fail a scenario', () => {
    const verdict = judge([run({ a: [check('a', 'SUCCESS'), check('should', 'WARNING')] })], undefined);
    expect(verdict.warnings.map((w) => w.key)).toEqual(['a:should']);
    expect(isClean(verdict)).toBe(true);
  });

  it('expected failures of another revision do not apply', () => {
    const verdict = judge([run({ b: [check('b', 'FAILURE')] })], { '2025-11-25': { b: 'only fails on the older wire' } });
    expect(verdict.unexpected.map((f) => f.key)).toEqual(['b:b']);
  });
});

describe('the expected-failures file format', () => {
  it('needs a reason for every entry and a known revision', () => {
    expect(ExpectedFailuresSchema.safeParse({ t: { '2026-07-28': { a: 'a real reason here' } } }).success).toBe(true);
    expect(ExpectedFailuresSchema.safeParse({ t: { '2026-07-28': { a: '' } } }).success).toBe(false);
    expect(ExpectedFailuresSchema.safeParse({ t: { '1999-01-01': { a: 'a real reason here' } } }).success).toBe(false);
    expect(ExpectedFailuresSchema.safeParse({ t: { '2026-07-28': { 'Not A Scenario': 'a real reason here' } } }).success).toBe(false);
  });
});
