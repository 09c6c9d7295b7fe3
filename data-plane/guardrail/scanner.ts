/**
 * Finds credentials in text and in JSON values (tool arguments, tool results, LLM bodies) and redacts
 * them: every rule whose keyword occurs runs its regex (one pass over the text finds which keywords do),
 * a match counts when its secret passes the rule's entropy floor and no allowlist; and a string under a
 * key-like field name (`password`, `apiKey`, `access_token`, …) that is long and random enough counts as
 * `high-entropy-secret` even when no rule knows its shape.
 *
 * Cost is bounded: long strings are scanned in 64 KiB windows (overlapping by 4 KiB, so a secret on a
 * boundary is still seen whole) and at most `maxScanBytes` per value; what lies beyond is reported as a
 * `scan-limit` finding instead of being scanned. A finding names the kind and the JSON path, never the value.
 *
 * It does not decide what to do with a finding (policy.ts does).
 */
import type { GuardrailFinding } from '../snapshot/audit-protocol.js';
import { defaultRules, type Allowlist, type RuleSet, type SecretRule } from './rules.js';

export interface Span {
  start: number;
  end: number;
  kind: string;
}

export interface ScanOptions {
  /** Bytes scanned per value walked (default 4 MiB). */
  maxScanBytes?: number;
}

const WINDOW = 64 * 1024;
/** The clean path's answer, shared (frozen: nobody may add to it). */
const NO_SPANS: readonly Span[] = Object.freeze([]);
const OVERLAP = 4 * 1024;
export const SCAN_LIMIT_KIND = 'scan-limit';
export const HIGH_ENTROPY_KIND = 'high-entropy-secret';

/** Shannon entropy in bits per character (what gitleaks' `entropy` floors compare against). */
export function shannonEntropy(value: string): number {
  if (value.length === 0) return 0;
  const counts = new Map<string, number>();
  for (const ch of value) counts.set(ch, (counts.get(ch) ?? 0) + 1);
  let entropy = 0;
  for (const n of counts.values()) {
    const p = n / value.length;
    entropy -= p * Math.log2(p);
  }
  return entropy;
}

function allowed(list: Allowlist, secret: string, match: string): boolean {
  const target = list.target === 'match' ? match : secret;
  if (list.regexes.some((r) => r.test(target))) return true;
  const lower = secret.toLowerCase();
  return list.stopwords.some((w) => lower.includes(w));
}

export class SecretScanner {
  private readonly keywordRegex: RegExp | null;
  private readonly byKeyword = new Map<string, SecretRule[]>();
  private readonly always: SecretRule[] = [];

  constructor(private readonly ruleSet: RuleSet = defaultRules()) {
    for (const rule of ruleSet.rules) {
      if (rule.keywords.length === 0) this.always.push(rule);
      for (const k of rule.keywords) {
        const list = this.byKeyword.get(k) ?? [];
        list.push(rule);
        this.byKeyword.set(k, list);
      }
    }
    const keywords = [...this.byKeyword.keys()].sort((a, b) => b.length - a.length);
    this.keywordRegex = keywords.length ? new RegExp(keywords.map((k) => k.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'), 'gi') : null;
  }

  /** Secret spans in one piece of text (no windowing: callers pass at most a window). */
  private scanWindow(text: string): readonly Span[] {
    // `exec` loops on the shared regexes rather than `matchAll`, which clones the regex on every call: the
    // clean path (no keyword in the text, nearly every string) is then one regex pass and no allocation.
    const keywords = this.keywordRegex;
    let hit: RegExpExecArray | null = null;
    if (keywords) {
      keywords.lastIndex = 0;
      hit = keywords.exec(text);
    }
    if (hit === null && this.always.length === 0) return NO_SPANS;
    const candidates = new Set<SecretRule>(this.always);
    while (keywords && hit !== null) {
      for (const rule of this.byKeyword.get(hit[0].toLowerCase()) ?? []) candidates.add(rule);
      hit = keywords.exec(text);
    }
    const spans: Span[] = [];
    for (const rule of candidates) {
      const regex = rule.regex;
      regex.lastIndex = 0;
      for (let m = regex.exec(text); m !== null; m = regex.exec(text)) {
        if (m[0].length === 0) regex.lastIndex += 1;
        // The secret is the first group that matched, else the whole match (gitleaks' convention).
        let index = 0;
        for (let g = 1; g < m.length; g++) {
          if (m[g] !== undefined) {
            index = g;
            break;
          }
        }
        const secret = m[index] ?? m[0];
        const at = m.indices?.[index] ?? [m.index, m.index + m[0].length];
        if (secret.length === 0) continue;
        if (rule.entropy > 0 && shannonEntropy(secret) < rule.entropy) continue;
        if (allowed(this.ruleSet.global, secret, m[0]) || rule.allowlists.some((l) => allowed(l, secret, m[0]))) continue;
        spans.push({ start: at[0], end: at[1], kind: rule.id });
      }
    }
    return spans;
  }

  /** Secret spans in `text`, windowed; `budget.left` bytes may still be scanned (decremented). */
  scanText(text: string, budget: { left: number } = { left: Number.POSITIVE_INFINITY }): { spans: readonly Span[]; truncated: boolean } {
    const limit = Math.min(text.length, budget.left);
    let spans: readonly Span[];
    if (limit <= WINDOW) {
      spans = this.scanWindow(limit === text.length ? text : text.slice(0, limit));
    } else {
      const windowed: Span[] = [];
      spans = windowed;
      for (let start = 0; start < limit; start += WINDOW - OVERLAP) {
        const end = Math.min(limit, start + WINDOW);
        for (const s of this.scanWindow(text.slice(start, end))) windowed.push({ start: s.start + start, end: s.end + start, kind: s.kind });
        if (end === limit) break;
      }
    }
    budget.left -= limit;
    return { spans: mergeSpans(spans), truncated: limit < text.length };
  }
}

/** Sorted, non-overlapping spans (overlaps merge; the first kind names the merged span). */
function mergeSpans(input: readonly Span[]): readonly Span[] {
  if (input.length <= 1) return input;
  const spans = [...input].sort((a, b) => a.start - b.start || b.end - a.end);
  const out: Span[] = [];
  for (const s of spans) {
    const last = out[out.length - 1];
    if (last && s.start < last.end) last.end = Math.max(last.end, s.end);
    else out.push({ ...s });
  }
  return out;
}

export function redactText(text: string, spans: readonly Span[]): string {
  let out = '';
  let at = 0;
  for (const s of spans) {
    out += text.slice(at, s.start) + `[REDACTED:${s.kind}]`;
    at = s.end;
  }
  return out + text.slice(at);
}

/** Field names whose values are credentials whatever they look like (matched on the name's ending). */
const KEY_LIKE = /(?:password|passwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credentials?|authorization|auth[_-]?key|session[_-]?key|signing[_-]?key)$/i;

function highEntropyValue(field: string, value: string): Span | null {
  // Too short to hold a 16-character secret: no need to look at the field name.
  if (value.length < 16 || !KEY_LIKE.test(field)) return null;
  // `Bearer <token>` / `Basic <b64>`: the token is the secret.
  const scheme = /^(?:Bearer|Basic|Token)\s+/i.exec(value);
  const start = scheme ? scheme[0].length : 0;
  const secret = value.slice(start);
  if (secret.length < 16 || secret.length > 4096 || /\s/.test(secret)) return null;
  if (shannonEntropy(secret) < 3.5) return null;
  return { start, end: value.length, kind: HIGH_ENTROPY_KIND };
}

export interface ScanResult {
  /** The value with every secret replaced by `[REDACTED:<kind>]` (the same object when nothing was found). */
  value: unknown;
  findings: GuardrailFinding[];
}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

/** `where` and the keys down to a value, as a finding names it (`arguments.items[2].token`). */
function pathOf(where: string, keys: readonly (string | number)[]): string {
  let path = where;
  for (const key of keys) path = typeof key === 'number' ? `${path}[${key}]` : IDENTIFIER.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
  return path;
}

/** One walk's state: what it found, what it may still scan, the keys down to the value being walked. */
interface Walk {
  scanner: SecretScanner;
  where: string;
  findings: GuardrailFinding[];
  budget: { left: number };
  keys: (string | number)[];
  limited: boolean;
}

function walk(w: Walk, node: unknown, field: string | null, depth: number): unknown {
  if (typeof node === 'string') {
    if (w.budget.left <= 0) {
      w.limited = true;
      return node;
    }
    const { spans, truncated } = w.scanner.scanText(node, w.budget);
    if (truncated) w.limited = true;
    let all = spans;
    if (spans.length === 0 && field !== null) {
      const span = highEntropyValue(field, node);
      if (span) all = [span];
    }
    if (all.length === 0) return node;
    const path = pathOf(w.where, w.keys);
    for (const s of all) if (!w.findings.some((f) => f.kind === s.kind && f.where === path)) w.findings.push({ kind: s.kind, where: path });
    return redactText(node, all);
  }
  if (depth > 64 || node === null || typeof node !== 'object') return node;
  if (Array.isArray(node)) {
    let copy: unknown[] | null = null;
    for (let i = 0; i < node.length; i++) {
      const item: unknown = node[i];
      w.keys.push(i);
      const next = walk(w, item, field, depth + 1);
      w.keys.pop();
      if (next !== item) (copy ??= [...(node as unknown[])])[i] = next;
    }
    return copy ?? node;
  }
  const object = node as Record<string, unknown>;
  let copy: Record<string, unknown> | null = null;
  for (const key of Object.keys(object)) {
    const item = object[key];
    w.keys.push(key);
    const next = walk(w, item, key, depth + 1);
    w.keys.pop();
    if (next !== item) (copy ??= { ...object })[key] = next;
  }
  return copy ?? node;
}

/**
 * Walks a JSON value: every string is scanned (and checked as a key-like field's value); `where` starts
 * the paths of findings (e.g. `arguments`). Copies only the containers on the way to a change. The path
 * of a value is kept as a stack of keys and spelled out only for a finding, and the walk is a plain
 * function over one state object: the clean path allocates next to nothing per value.
 */
export function scanValue(scanner: SecretScanner, value: unknown, where: string, options: ScanOptions = {}): ScanResult {
  const w: Walk = { scanner, where, findings: [], budget: { left: options.maxScanBytes ?? 4 * 1024 * 1024 }, keys: [], limited: false };
  const out = walk(w, value, null, 0);
  if (w.limited) w.findings.push({ kind: SCAN_LIMIT_KIND, where });
  return { value: out, findings: w.findings };
}
