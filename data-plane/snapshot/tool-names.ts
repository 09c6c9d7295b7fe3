/**
 * The tool-name rule both planes apply (the control plane imports only `data-plane/snapshot/*`): what the
 * control plane stores and shows (a server's `toolsToExecute`, a key grant's tools, the catalogs nodes
 * report, the tool and method names of audit events) and what the node serves and forwards (the tools an
 * upstream lists, the tools a caller may call through to it).
 * MCP 2025-11-25 says a tool name SHOULD be 1-128 characters of [A-Za-z0-9_.-]; upstreams do not all keep
 * to it (spaces, `/`, letters beyond ASCII), and nodes serve what they list, so only what cannot be a name
 * anyone means is refused: not a string, empty, longer than 128, or holding a control or format character.
 * Those characters (C0/C1 controls, DEL, bidi overrides, zero-width and line separators, lone surrogates)
 * would otherwise reach GraphQL answers, warnings and log lines, where they rewrite a terminal (ANSI escape
 * sequences), reorder what an operator reads (U+202E) or make two names look the same. Pure: no I/O.
 */

/** The spec's bound (2025-11-25 `server/tools#tool-names`: 1-128 characters). */
export const MAX_TOOL_NAME_LENGTH = 128;

/** Controls (Cc), format characters (Cf: bidi overrides, zero-width), line/paragraph separators, lone surrogates. */
const UNSHOWABLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u;
const UNSHOWABLE_ALL = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/gu;
/** The same, but keeping tab and newline: a description is prose, and may have paragraphs. */
const UNSHOWABLE_IN_PROSE = /[^\P{Cc}\t\n]|[\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/gu;

export type ToolNameProblem = 'not_a_string' | 'empty' | 'too_long' | 'unshowable_characters';

/** Why `name` (already trimmed by the caller when it trims) cannot be stored as a tool name, or null. */
export function toolNameProblem(name: unknown): ToolNameProblem | null {
  if (typeof name !== 'string') return 'not_a_string';
  if (name.length === 0) return 'empty';
  if (name.length > MAX_TOOL_NAME_LENGTH) return 'too_long';
  if (UNSHOWABLE.test(name)) return 'unshowable_characters';
  return null;
}

/** A description as it may be stored and shown: each unshowable character but tab and newline as U+FFFD. */
export function showableDescription(text: string): string {
  return text.replace(UNSHOWABLE_IN_PROSE, '\uFFFD');
}

/** Whether `text` holds a character `toolNameProblem` refuses (a control or format character, a lone surrogate). */
export function hasUnshowable(text: string): boolean {
  return UNSHOWABLE.test(text);
}

/** `text` with each unshowable character as a `\u{…}` escape (hex code point): shows what was sent, does nothing. */
export function escapedUnshowable(text: string): string {
  return UNSHOWABLE.test(text) ? text.replace(UNSHOWABLE_ALL, (c) => `\\u{${(c.codePointAt(0) ?? 0).toString(16)}}`) : text;
}

/**
 * A refused name as a log line may carry it: unshowable characters as `\u{…}` escapes, at most 64
 * characters of it (the name is the upstream's, not a secret, and says which tool to look for there).
 */
export function scrubbedName(name: unknown): string {
  if (typeof name !== 'string') return `(${typeof name})`;
  const cut = [...name].slice(0, 64).join('');
  const escaped = escapedUnshowable(cut);
  return name.length > cut.length ? `${escaped}… (${name.length} characters)` : escaped;
}

/**
 * An upstream's tool list as it may be served: tools whose name is no tool name left out (with the name
 * scrubbed and why, for a log line), a description with unshowable characters (but tab and newline) as a
 * copy with U+FFFD. Tools that need nothing are the same objects, and a list that needs nothing is `tools`
 * itself, so a caller can tell by identity that nothing changed.
 */
export function servableTools<T extends { name?: unknown; description?: unknown }>(tools: readonly T[]): { tools: readonly T[]; dropped: Array<{ name: string; problem: ToolNameProblem }> } {
  let out: T[] | null = null;
  const dropped: Array<{ name: string; problem: ToolNameProblem }> = [];
  for (let i = 0; i < tools.length; i++) {
    const tool = tools[i] as T;
    const problem = toolNameProblem(tool.name);
    let kept: T | null = tool;
    if (problem !== null) {
      dropped.push({ name: scrubbedName(tool.name), problem });
      kept = null;
    } else if (typeof tool.description === 'string') {
      const description = showableDescription(tool.description);
      if (description !== tool.description) kept = { ...tool, description };
    }
    if (kept !== tool && out === null) out = tools.slice(0, i);
    if (out !== null && kept !== null) out.push(kept);
  }
  return { tools: out ?? tools, dropped };
}
