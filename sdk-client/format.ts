/**
 * Plain-text rendering for the CLI: aligned tables, key/value blocks, and user-error lines. Pure string
 * functions; no colours and no knowledge of commands (cli-app.ts picks the columns).
 */
import type { UserError } from './client.js';

export interface Column<T> {
  header: string;
  value: (row: T) => string;
}

/**
 * Removes control characters (ANSI escapes, newlines, tabs) from a value printed for a person. Names and
 * other free text come from the server, and were written by whoever had an admin token: they must not be
 * able to rewrite the operator's terminal or break the table's layout.
 */
export function clean(value: string): string {
  return value.replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ');
}

export function table<T>(rows: readonly T[], columns: readonly Column<T>[]): string {
  const cells = rows.map((row) => columns.map((c) => clean(c.value(row))));
  const widths = columns.map((c, i) => Math.max(c.header.length, ...cells.map((r) => (r[i] ?? '').length)));
  const line = (values: readonly string[]) =>
    values
      .map((v, i) => (i === values.length - 1 ? v : v.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(columns.map((c) => c.header)), ...cells.map(line)].join('\n') + '\n';
}

/** `label   value` lines, labels aligned; for the detail view of one entity. */
export function details(entries: ReadonlyArray<readonly [string, string]>): string {
  const width = Math.max(...entries.map(([label]) => label.length));
  return entries.map(([label, value]) => `${label.padEnd(width)}  ${clean(value)}`.trimEnd()).join('\n') + '\n';
}

/** `field: message (CODE)`, one line per error; the field is left out when the server gave none. */
export function userErrorLines(errors: readonly UserError[]): string {
  return errors.map((e) => clean(`${e.field === null ? '' : `${e.field}: `}${e.message} (${e.code})`)).join('\n') + '\n';
}

/** An instant shortened for a table (`2030-01-31 12:00`), or `-` for none. */
export function when(iso: string | null): string {
  if (iso === null) return '-';
  const match = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})/.exec(iso);
  return match ? `${match[1]} ${match[2]}` : iso;
}

/** A tool list as the API writes it: `*` for every tool, `(none)` for none. */
export function toolList(tools: readonly string[]): string {
  return tools.length === 0 ? '(none)' : tools.join(',');
}
