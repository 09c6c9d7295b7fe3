/**
 * A bound on how deeply a parsed JSON value nests, checked at the parse stage of a route: a message whose
 * params nest thousands of levels deep is refused there with a clear error, instead of overflowing the stack
 * of whatever walks it later (a schema validator, `JSON.stringify` on the way upstream, a guardrail scan) and
 * failing in a way that could reach other callers. It descends at most `max` levels (bounded below), so
 * the check itself cannot overflow; it stops at the first path deeper than the bound.
 */

/** Deep enough for any real tool's arguments; far below what recursive walkers survive. */
export const MAX_JSON_DEPTH = 64;

/** The deepest bound `exceedsDepth` checks (it recurses once per level, far below any stack limit). */
const MAX_SUPPORTED_DEPTH = 1_000;

/** Whether `value` nests deeper than `max` levels (a scalar is depth 0, `{}` or `[]` depth 1). */
export function exceedsDepth(value: unknown, max: number = MAX_JSON_DEPTH): boolean {
  if (typeof value !== 'object' || value === null) return false;
  if (max > MAX_SUPPORTED_DEPTH) throw new RangeError(`exceedsDepth: max ${max} is above ${MAX_SUPPORTED_DEPTH}`);
  // Recursion bounded by `max` (it stops descending past it), so it cannot overflow the stack whatever the
  // input; unlike a work list it allocates nothing per value, and every tools/call's params pass through here.
  return deeper(value, max);
}

/** Whether `value` (an object or array) nests deeper than `budget` levels. */
function deeper(value: object, budget: number): boolean {
  if (budget === 0) return true;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const child: unknown = value[i];
      if (typeof child === 'object' && child !== null && deeper(child, budget - 1)) return true;
    }
    return false;
  }
  // Own enumerable members only, as `Object.values` sees them (JSON.parse makes nothing else).
  for (const key in value) {
    if (!Object.hasOwn(value, key)) continue;
    const child: unknown = (value as Record<string, unknown>)[key];
    if (typeof child === 'object' && child !== null && deeper(child, budget - 1)) return true;
  }
  return false;
}
