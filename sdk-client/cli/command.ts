/**
 * What a CLI command is (a noun and a verb, its options and positional arguments, and a `run` function)
 * and the context it runs with: the SDK client, its parsed options, and output helpers shared by every
 * command (JSON output, mutation payloads with user errors, usage errors). No command lives here; each noun
 * is one module under commands/, listed in registry.ts.
 */
import type { GatehouseClient } from '../client.js';
import type { UserError, UserWarning } from '../client.js';
import { clean, userErrorLines } from '../format.js';

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

export interface TextSink {
  write(chunk: string): unknown;
}

/** How a fetch is made; the SDK's FetchLike. */
export type { FetchLike } from '../client.js';

export interface CliIO {
  env: Readonly<Record<string, string | undefined>>;
  stdout: TextSink;
  stderr: TextSink;
  /** Replaces the global fetch (tests, proxies). */
  fetch?: import('../client.js').FetchLike;
  /** Read by `--file -` and by `login` for the token. */
  stdin?: AsyncIterable<string | Uint8Array> & { isTTY?: boolean };
  /** Relative paths resolve against this; default process.cwd(). */
  cwd?: string;
  /** The user's home directory (the login file's default place); default os.homedir(). */
  home?: string;
  /** Ends commands that follow (`audit tail`); the CLI's own entry point aborts it on SIGINT/SIGTERM. */
  signal?: AbortSignal;
}

/** An option as node:util parseArgs takes it, plus the help text for it. */
export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  multiple?: boolean;
  /** e.g. `FILE` in `--file FILE`. */
  placeholder?: string;
}

export type OptionValues = Readonly<Record<string, string | boolean | string[] | undefined>>;

/** A mistake in how the command was called: exit 2 with the command's usage line. */
export class UsageError extends Error {}

export interface Context {
  /** Absent for commands that need no control plane (`logout`). */
  client: GatehouseClient;
  args: readonly string[];
  json: boolean;
  io: CliIO;
  out(text: string): void;
  err(text: string): void;
  /** A string option's value, if given. */
  string(name: string): string | undefined;
  /** A repeatable string option's values ([] if not given). */
  strings(name: string): string[];
  flag(name: string): boolean;
}

export interface Command {
  /** The noun (`servers`), or null for a verb on its own (`apply`, `login`). */
  group: string | null;
  action: string;
  /** Positional argument names, in order; each is required. */
  args: readonly string[];
  options?: Readonly<Record<string, OptionSpec>>;
  required?: readonly string[];
  /** What follows the command's name in the usage line. */
  synopsis: string;
  summary: string;
  /** Runs without a control plane connection (no client is made). */
  offline?: boolean;
  run(ctx: Context): Promise<number>;
}

export function commandName(c: Command): string {
  return c.group === null ? c.action : `${c.group} ${c.action}`;
}

export function printJson(ctx: Context, value: unknown): number {
  ctx.out(`${JSON.stringify(value, null, 2)}\n`);
  return EXIT_OK;
}

/** `warning: field: message (CODE)` lines on stderr: the operation went through. */
export function printWarnings(ctx: Context, warnings: readonly UserWarning[]): void {
  for (const line of userErrorLines(warnings).trimEnd().split('\n')) if (line) ctx.err(`warning: ${line}\n`);
}

/**
 * A mutation's payload: with `--json` printed whole (errors included) for scripts; user errors also go to
 * stderr as `field: message (CODE)` lines and make the exit status 1; warnings go to stderr.
 */
export function finish(ctx: Context, payload: { errors: readonly UserError[]; warnings?: readonly UserWarning[] }, onSuccess: () => void): number {
  if (ctx.json) printJson(ctx, payload);
  if (payload.errors.length > 0) {
    ctx.err(userErrorLines(payload.errors));
    return EXIT_FAILED;
  }
  printWarnings(ctx, payload.warnings ?? []);
  if (!ctx.json) onSuccess();
  return EXIT_OK;
}

/** A person-facing quote of a value from the server or the command line. */
export function quoted(value: string): string {
  return JSON.stringify(clean(value));
}
