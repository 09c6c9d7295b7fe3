/**
 * A bound on how deeply a parsed JSON value nests, checked at the parse stage of a route: a message whose
 * params nest thousands of levels deep is refused there with a clear error, instead of overflowing the stack
 * of whatever walks it later (a schema validator, `JSON.stringify` on the way upstream, a guardrail scan) and
 * failing in a way that could reach other callers. Iterative (an explicit stack), so the check itself
 * cannot overflow; it stops at the first path deeper than the bound.
 */

/** Deep enough for any real tool's arguments; far below what recursive walkers survive. */
export const MAX_JSON_DEPTH = 64;

/** Whether `value` nests deeper than `max` levels (a scalar is depth 0, `{}` or `[]` depth 1). */
export function exceedsDepth(value: unknown, max: number = MAX_JSON_DEPTH): boolean {
  if (typeof value !== 'object' || value === null) return false;
  const stack: { value: object; depth: number }[] = [{ value, depth: 1 }];
  while (stack.length > 0) {
    const top = stack.pop() as { value: object; depth: number };
    if (top.depth > max) return true;
    const children: unknown[] = Array.isArray(top.value) ? top.value : Object.values(top.value);
    for (const child of children) {
      if (typeof child === 'object' && child !== null) stack.push({ value: child, depth: top.depth + 1 });
    }
  }
  return false;
}
