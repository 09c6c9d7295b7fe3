/**
 * The guardrail's detection rules, loaded once from data: `rules/gitleaks.toml` (rules of the maintained
 * gitleaks rule list, unchanged, MIT: `rules/LICENSE.gitleaks`) and `rules/gatehouse.toml` (Gatehouse's
 * own `gk_`/`gha_`/`ghn_`/`ghe_` tokens, same format). gitleaks writes Go RE2; this module translates the
 * few RE2-only constructs to JavaScript (inline `(?i)` and `(?i:…)`/`(?-i:…)` become a whole-pattern `i`
 * flag, which can only widen a match, `(?P<n>` → `(?<n>`, `\z` → `$`, `(?s:.)` → `[\s\S]`) and skips a
 * rule it cannot compile or that has no regex (path-only rules), counting it in `skipped`.
 *
 * It does not scan (scanner.ts does) or decide policy (policy.ts does).
 */
import { readFileSync } from 'node:fs';
import { parse } from 'smol-toml';

export interface Allowlist {
  /** What `regexes` are tested against: the secret (default) or the whole match. */
  target: 'secret' | 'match';
  regexes: RegExp[];
  stopwords: string[];
}

export interface SecretRule {
  id: string;
  regex: RegExp;
  /** Lower-case literals; the rule runs only on text containing one (none: always runs). */
  keywords: string[];
  /** Minimum Shannon entropy (bits per char) of the secret, or 0. */
  entropy: number;
  allowlists: Allowlist[];
}

export interface RuleSet {
  rules: SecretRule[];
  global: Allowlist;
  /** Rule ids not usable here, and why. */
  skipped: { id: string; reason: string }[];
}

/** Go RE2 → JavaScript source and whether it needs the `i` flag; null when it is beyond this translation. */
export function translateGoRegex(source: string): { source: string; ignoreCase: boolean } | null {
  let ignoreCase = false;
  let out = source
    .replace(/\(\?P</g, '(?<')
    .replace(/\(\?s:\.\)/g, '[\\s\\S]')
    .replace(/\\z/g, '$');
  if (out.includes('(?i)')) {
    ignoreCase = true;
    out = out.replace(/\(\?i\)/g, '');
  }
  if (out.includes('(?i:')) {
    ignoreCase = true;
    out = out.replace(/\(\?i:/g, '(?:');
  }
  out = out.replace(/\(\?-i:/g, '(?:');
  // Any other inline flag group is RE2-only.
  if (/\(\?[a-zA-Z-]+[):]/.test(out)) return null;
  return { source: out, ignoreCase };
}

function compile(source: string, flags: string): RegExp | null {
  const translated = translateGoRegex(source);
  if (!translated) return null;
  try {
    return new RegExp(translated.source, flags + (translated.ignoreCase ? 'i' : ''));
  } catch {
    return null;
  }
}

interface TomlAllowlist {
  regexTarget?: string;
  regexes?: string[];
  stopwords?: string[];
}

interface TomlRule {
  id?: string;
  regex?: string;
  keywords?: string[];
  entropy?: number;
  allowlists?: TomlAllowlist[];
}

function allowlist(raw: TomlAllowlist | undefined): Allowlist {
  return {
    target: raw?.regexTarget === 'match' || raw?.regexTarget === 'line' ? 'match' : 'secret',
    regexes: (raw?.regexes ?? []).map((r) => compile(r, '')).filter((r): r is RegExp => r !== null),
    stopwords: (raw?.stopwords ?? []).map((s) => s.toLowerCase()),
  };
}

/** Parses rule files in the gitleaks format into one rule set (later files add rules; the first global allowlist wins). */
export function loadRules(texts: readonly string[]): RuleSet {
  const rules: SecretRule[] = [];
  const skipped: RuleSet['skipped'] = [];
  let global: Allowlist | null = null;
  for (const text of texts) {
    const doc = parse(text) as { allowlist?: TomlAllowlist; rules?: TomlRule[] };
    global ??= doc.allowlist ? allowlist(doc.allowlist) : null;
    for (const raw of doc.rules ?? []) {
      const id = raw.id ?? '(unnamed)';
      if (!raw.regex) {
        skipped.push({ id, reason: 'no regex (path rule)' });
        continue;
      }
      // g: every occurrence; d: group indices, to redact just the secret inside a match.
      const regex = compile(raw.regex, 'gd');
      if (!regex) {
        skipped.push({ id, reason: 'regex not translatable to JavaScript' });
        continue;
      }
      rules.push({
        id,
        regex,
        keywords: (raw.keywords ?? []).map((k) => k.toLowerCase()),
        entropy: raw.entropy ?? 0,
        allowlists: (raw.allowlists ?? []).map(allowlist),
      });
    }
  }
  return { rules, global: global ?? allowlist(undefined), skipped };
}

let defaults: RuleSet | null = null;

/** The bundled rules (gitleaks selection + Gatehouse's own), parsed on first use. */
export function defaultRules(): RuleSet {
  defaults ??= loadRules(
    ['gitleaks.toml', 'gatehouse.toml'].map((file) => readFileSync(new URL(`./rules/${file}`, import.meta.url), 'utf8')),
  );
  return defaults;
}
