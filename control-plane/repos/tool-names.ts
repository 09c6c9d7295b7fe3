/**
 * Tool names the control plane stores and shows: an admin's (a server's `toolsToExecute`, a key grant's
 * tools) and an upstream's (the catalogs nodes report, shown as `McpServer.tools` and named in warnings).
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

/**
 * A refused name as a log line may carry it: unshowable characters as `\u{…}` escapes, at most 64
 * characters of it (the name is the upstream's, not a secret, and says which tool to look for there).
 */
export function scrubbedName(name: unknown): string {
  if (typeof name !== 'string') return `(${typeof name})`;
  const cut = [...name].slice(0, 64).join('');
  const escaped = cut.replace(UNSHOWABLE_ALL, (c) => `\\u{${(c.codePointAt(0) ?? 0).toString(16)}}`);
  return name.length > cut.length ? `${escaped}… (${name.length} characters)` : escaped;
}
