/**
 * Reading a configuration document's plain JSON values with every problem reported at its JSON path
 * (`mcp_servers[0].headers.Authorization`): objects whose fields may be spelled in the article's
 * snake_case or Gatehouse's camelCase (not both at once), unknown fields named with a likely fix, and typed
 * getters. It knows nothing about servers or keys (document.ts does); it only reads and reports.
 */
import type { InputErrorCode, IssueList } from '../repos/errors.js';

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `base` + one step: `a.b`, `a[0]`, or `a["X-Tenant-ID"]` for keys that are not plain identifiers. */
export function childPath(base: string, key: string | number): string {
  if (typeof key === 'number') return `${base}[${key}]`;
  if (IDENTIFIER.test(key)) return base === '' ? key : `${base}.${key}`;
  return `${base}[${JSON.stringify(key)}]`;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** One field an object may have: its canonical (camelCase) name and the spellings accepted for it. */
export interface FieldSpec {
  name: string;
  /** Other accepted keys, e.g. the article's `connection_type` for `connectionType`. */
  aliases?: readonly string[];
  /** Recognised only to be refused with this message (e.g. a field this version does not support yet). */
  unsupported?: string;
  /** The code of that refusal; default NOT_SUPPORTED. */
  refusedCode?: InputErrorCode;
}

/** `connection_type` → `connectiontype`: how a likely typo or case slip is matched to a known field. */
function fold(key: string): string {
  return key.toLowerCase().replace(/[_-]/g, '');
}

/**
 * Optimal string alignment distance (edits, with adjacent swaps counting one), for "did you mean" on
 * field names only: a dozen lines, so not worth a dependency.
 */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

/** The accepted spelling closest to `key` (same letters ignoring case and separators, or up to 2 edits). */
function nearest(key: string, specs: readonly FieldSpec[]): string | undefined {
  let best: { name: string; distance: number; raw: number } | undefined;
  for (const spelling of specs.flatMap((s) => [s.name, ...(s.aliases ?? [])])) {
    const distance = editDistance(fold(spelling), fold(key));
    // Ties go to the spelling in the document's own style (snake_case or camelCase).
    const raw = editDistance(spelling, key);
    if (distance <= 2 && (best === undefined || distance < best.distance || (distance === best.distance && raw < best.raw))) {
      best = { name: spelling, distance, raw };
    }
  }
  return best?.name;
}

function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

/** A value found in the document, with the path and the key it was found under. */
export interface Located<T> {
  value: T;
  path: string;
  key: string;
}

export class ObjectReader {
  private readonly found = new Map<string, Located<unknown>>();

  constructor(
    readonly source: Record<string, unknown>,
    readonly path: string,
    readonly issues: IssueList,
    specs: readonly FieldSpec[],
  ) {
    for (const [key, value] of Object.entries(source)) {
      const keyPath = childPath(path, key);
      const spec = specs.find((s) => s.name === key || s.aliases?.includes(key));
      if (!spec) {
        const near = nearest(key, specs);
        const known = specs.filter((s) => !s.unsupported).map((s) => s.aliases?.[0] ?? s.name);
        issues.add(
          'UNKNOWN_FIELD',
          keyPath,
          near !== undefined ? `unknown field "${key}": did you mean "${near}"?` : `unknown field "${key}" (known here: ${known.join(', ')})`,
        );
        continue;
      }
      if (spec.unsupported) {
        issues.add(spec.refusedCode ?? 'NOT_SUPPORTED', keyPath, spec.unsupported);
        continue;
      }
      const earlier = this.found.get(spec.name);
      if (earlier) {
        issues.add('DUPLICATE', keyPath, `"${key}" and "${earlier.key}" are the same field; give it once`);
        continue;
      }
      this.found.set(spec.name, { value, path: keyPath, key });
    }
  }

  /** The path a field has (or would have, under its canonical name) in this object. */
  pathOf(name: string): string {
    return this.found.get(name)?.path ?? childPath(this.path, name);
  }

  /** The key the document used for a field, for mapping later problems back to its spelling. */
  keyOf(name: string): string | undefined {
    return this.found.get(name)?.key;
  }

  has(name: string): boolean {
    const v = this.found.get(name);
    return v !== undefined && v.value !== null;
  }

  /** The raw value (null counts as absent). */
  raw(name: string): Located<unknown> | undefined {
    const v = this.found.get(name);
    return v === undefined || v.value === null ? undefined : v;
  }

  private fail(code: InputErrorCode, path: string, message: string): undefined {
    this.issues.add(code, path, message);
    return undefined;
  }

  required(name: string): void {
    if (!this.has(name)) this.issues.add('REQUIRED', this.pathOf(name), `${this.spelling(name)} is required`);
  }

  /** The name as this document spells the object's other fields (snake_case if it uses any). */
  private spelling(name: string): string {
    return this.found.get(name)?.key ?? name;
  }

  string(name: string): string | undefined {
    const v = this.raw(name);
    if (!v) return undefined;
    if (typeof v.value !== 'string') return this.fail('INVALID_VALUE', v.path, `must be a string, not ${describeType(v.value)}`);
    return v.value;
  }

  boolean(name: string): boolean | undefined {
    const v = this.raw(name);
    if (!v) return undefined;
    if (typeof v.value !== 'boolean') return this.fail('INVALID_VALUE', v.path, `must be true or false, not ${describeType(v.value)}`);
    return v.value;
  }

  integer(name: string): number | undefined {
    const v = this.raw(name);
    if (!v) return undefined;
    if (typeof v.value !== 'number' || !Number.isInteger(v.value)) return this.fail('INVALID_VALUE', v.path, `must be a whole number, not ${describeType(v.value)}`);
    return v.value;
  }

  number(name: string): number | undefined {
    const v = this.raw(name);
    if (!v) return undefined;
    if (typeof v.value !== 'number' || !Number.isFinite(v.value)) return this.fail('INVALID_VALUE', v.path, `must be a number, not ${describeType(v.value)}`);
    return v.value;
  }

  stringList(name: string): string[] | undefined {
    const v = this.raw(name);
    if (!v) return undefined;
    if (!Array.isArray(v.value)) return this.fail('INVALID_VALUE', v.path, `must be a list of strings, not ${describeType(v.value)}`);
    const out: string[] = [];
    v.value.forEach((item, i) => {
      if (typeof item === 'string') out.push(item);
      else this.issues.add('INVALID_VALUE', childPath(v.path, i), `must be a string, not ${describeType(item)}`);
    });
    return out;
  }

  /** One of `values`, matched ignoring case (the article writes `http`, the API `HTTP`). */
  enumValue<T extends string>(name: string, values: readonly T[]): T | undefined {
    const s = this.string(name);
    if (s === undefined) return undefined;
    const match = values.find((v) => v.toLowerCase() === s.trim().toLowerCase());
    if (match === undefined) {
      return this.fail('INVALID_VALUE', this.pathOf(name), `"${s}" is not one of ${values.map((v) => v.toLowerCase()).join(', ')}`);
    }
    return match;
  }

  list(name: string): Located<unknown[]> | undefined {
    const v = this.raw(name);
    if (!v) return undefined;
    if (!Array.isArray(v.value)) return this.fail('INVALID_VALUE', v.path, `must be a list, not ${describeType(v.value)}`);
    return { ...v, value: v.value };
  }

  object(name: string, specs: readonly FieldSpec[]): ObjectReader | undefined {
    const v = this.raw(name);
    if (!v) return undefined;
    if (!isRecord(v.value)) return this.fail('INVALID_VALUE', v.path, `must be an object, not ${describeType(v.value)}`);
    return new ObjectReader(v.value, v.path, this.issues, specs);
  }
}

/** Each item of a list that must hold objects, as a reader; other items are reported. */
export function objectItems(list: Located<unknown[]>, issues: IssueList, specs: readonly FieldSpec[]): ObjectReader[] {
  const out: ObjectReader[] = [];
  list.value.forEach((item, i) => {
    const path = childPath(list.path, i);
    if (isRecord(item)) out.push(new ObjectReader(item, path, issues, specs));
    else issues.add('INVALID_VALUE', path, `must be an object, not ${describeType(item)}`);
  });
  return out;
}

export { describeType };
