/**
 * `exceedsDepth` (pipeline/json-depth.ts) against a reference: the plain definition of depth (a scalar 0, an
 * object or array one more than its deepest member), computed with an explicit stack, over parsed JSON of
 * every shape the parse stage meets: hostile depth, width, mixed arrays and objects, `__proto__` members,
 * and every bound around the value's own depth.
 */
import { describe, expect, it } from 'vitest';
import { MAX_JSON_DEPTH, exceedsDepth } from '../../../data-plane/pipeline/json-depth.js';

/** The depth of a JSON value, by definition, iteratively. */
function depthOf(value: unknown): number {
  if (typeof value !== 'object' || value === null) return 0;
  let deepest = 0;
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [v, d] = stack.pop() as [unknown, number];
    deepest = Math.max(deepest, d);
    for (const child of Array.isArray(v) ? v : Object.values(v as object)) if (typeof child === 'object' && child !== null) stack.push([child, d + 1]);
  }
  return deepest;
}

/** A deterministic pseudo-random JSON text (no Math.random: a failure must reproduce). */
function randomJson(seed: number, depth: number): string {
  let s = seed;
  const next = (): number => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const gen = (d: number): string => {
    const r = next();
    if (d === 0 || r < 0.25) return JSON.stringify(['x', 1, true, null, 'é\u0000', -0.5][Math.floor(next() * 6)]);
    const n = Math.floor(next() * 4);
    const parts = Array.from({ length: n }, () => gen(d - 1));
    if (r < 0.6) return `[${parts.join(',')}]`;
    return `{${parts.map((p, i) => `${JSON.stringify(i % 2 ? '__proto__' : `k${i}`)}:${p}`).join(',')}}`;
  };
  return gen(depth);
}

describe('exceedsDepth', () => {
  it('agrees with the definition of depth for every bound around it, over many shapes', () => {
    for (let seed = 1; seed <= 400; seed++) {
      const value: unknown = JSON.parse(randomJson(seed, 1 + (seed % 12)));
      const depth = depthOf(value);
      for (let max = 0; max <= depth + 1; max++) expect(exceedsDepth(value, max), `seed ${seed} max ${max}`).toBe(depth > max);
    }
  });

  it('hostile nesting: far deeper than the bound, in objects, arrays and both', () => {
    const deepArray: unknown = JSON.parse('['.repeat(100_000) + ']'.repeat(100_000));
    const deepObject: unknown = JSON.parse('{"a":'.repeat(50_000) + '1' + '}'.repeat(50_000));
    const wideThenDeep: unknown = JSON.parse(`[${'0,'.repeat(10_000)}${'['.repeat(MAX_JSON_DEPTH + 1)}${']'.repeat(MAX_JSON_DEPTH + 1)}]`);
    expect(exceedsDepth(deepArray)).toBe(true);
    expect(exceedsDepth(deepObject)).toBe(true);
    expect(exceedsDepth(wideThenDeep)).toBe(true);
    const atBound: unknown = JSON.parse('['.repeat(MAX_JSON_DEPTH) + ']'.repeat(MAX_JSON_DEPTH));
    expect(exceedsDepth(atBound)).toBe(false);
  });

  it('counts only own members, as JSON.parse makes them (a polluted prototype is not walked)', () => {
    const polluted = Object.prototype as Record<string, unknown>;
    polluted.__depthTestPollution = { a: { b: { c: {} } } };
    try {
      expect(exceedsDepth({ x: 1 }, 1)).toBe(false);
    } finally {
      delete polluted.__depthTestPollution;
    }
  });

  it('refuses a bound it would need a deep recursion for', () => {
    expect(() => exceedsDepth({}, 100_000)).toThrow(RangeError);
  });
});
