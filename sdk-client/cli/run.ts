/**
 * The `gatehouse` CLI as a function: `runCli(argv, io)` parses the arguments (node:util parseArgs), finds
 * the command in registry.ts, resolves the control plane and token (credentials.ts), runs the command and
 * returns the exit status, writing only to the streams it is given, so tests drive it in-process.
 *
 * Exit status: 0 done; 1 the operation failed (user errors, not found, auth, network); 2 usage error.
 * Output: a table or key/value block by default, `--json` for JSON on stdout. Errors go to stderr.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { createGatehouseClient, type GatehouseClient } from '../client.js';
import { GatehouseError } from '../errors.js';
import { clean } from '../format.js';
import { commandName, EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError, type CliIO, type Command, type Context, type OptionSpec } from './command.js';
import { CredentialsError, DEFAULT_URL, resolveCredentials } from './credentials.js';
import { NotFound } from './commands/users.js';
import { COMMANDS } from './registry.js';

export type { CliIO } from './command.js';

const GLOBAL_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

/**
 * One parseArgs table for every command, so `--json` and `--help` may go anywhere on the line; each
 * command then accepts only its own. Two commands may share an option name only with the same meaning.
 */
function optionTable(commands: readonly Command[]): NonNullable<ParseArgsConfig['options']> {
  const table: NonNullable<ParseArgsConfig['options']> = {};
  for (const [name, spec] of [...Object.entries(GLOBAL_OPTIONS), ...commands.flatMap((c) => Object.entries(c.options ?? {}))]) {
    const existing = table[name];
    if (existing && (existing.type !== spec.type || existing.short !== spec.short || (existing.multiple ?? false) !== (spec.multiple ?? false))) {
      throw new Error(`CLI option --${name} is defined twice with different meanings`);
    }
    table[name] = { type: spec.type, ...(spec.short ? { short: spec.short } : {}), ...(spec.multiple ? { multiple: true } : {}) };
  }
  return table;
}

const OPTIONS = optionTable(COMMANDS);
const GENERAL_USAGE = 'usage: gatehouse <command> [options] (see gatehouse --help)';

function usageLine(command: Command): string {
  return `usage: gatehouse ${commandName(command)}${command.synopsis ? ` ${command.synopsis}` : ''} [--json]`;
}

export function helpText(): string {
  return [
    'usage: gatehouse <command> [options]',
    '',
    'Commands:',
    ...COMMANDS.flatMap((c) => [`  ${commandName(c)}${c.synopsis ? ` ${c.synopsis}` : ''}`, `      ${c.summary}`]),
    '',
    'Options:',
    '  --json       print JSON on stdout instead of a table',
    '  -h, --help   show this help (or one command\'s, after its name)',
    '',
    "Key grants: --server crm:search,fetch grants those tools of crm; --server 'kb:*' every tool kb allows.",
    '',
    'Environment (wins over `gatehouse login`):',
    `  GATEHOUSE_URL          the control plane (default ${DEFAULT_URL})`,
    '  GATEHOUSE_ADMIN_TOKEN  an admin token (gha_…; never a flag, so it stays out of process lists)',
    '  GATEHOUSE_CONFIG       the credentials file login writes (default ~/.config/gatehouse/credentials.json)',
    '',
    'Exit status: 0 done, 1 the operation failed, 2 usage error.',
    '',
  ].join('\n');
}

/** The command named by the leading positionals: `servers list`, or a lone verb like `apply`. */
function findCommand(positionals: readonly string[]): { command: Command; args: string[] } | { error: string } {
  const [first, second, ...rest] = positionals;
  const verb = COMMANDS.find((c) => c.group === null && c.action === first);
  if (verb) return { command: verb, args: positionals.slice(1) };
  const inGroup = COMMANDS.filter((c) => c.group === first);
  if (inGroup.length === 0) return { error: `unknown command ${JSON.stringify(clean(first ?? ''))}` };
  const command = inGroup.find((c) => c.action === second);
  if (command) return { command, args: rest };
  const known = inGroup.map((c) => c.action).join(', ');
  return {
    error: second === undefined ? `missing ${first} subcommand; one of: ${known}` : `unknown ${first} subcommand ${JSON.stringify(clean(second))}; one of: ${known}`,
  };
}

export async function runCli(argv: readonly string[], io: CliIO): Promise<number> {
  const out = (text: string) => void io.stdout.write(text);
  const err = (text: string) => void io.stderr.write(text);
  const usageFailure = (message: string, usage: string): number => {
    err(`error: ${message}\n${usage}\n`);
    return EXIT_USAGE;
  };

  let values: Record<string, string | boolean | Array<string | boolean> | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args: [...argv], options: OPTIONS, strict: true, allowPositionals: true }));
  } catch (error) {
    // parseArgs throws TypeErrors (ERR_PARSE_ARGS_*) for unknown options and missing values.
    return usageFailure(error instanceof Error ? error.message : String(error), GENERAL_USAGE);
  }

  if (positionals.length === 0 || positionals[0] === 'help') {
    if (values.help || positionals[0] === 'help') {
      out(helpText());
      return EXIT_OK;
    }
    err(helpText());
    return EXIT_USAGE;
  }
  const found = findCommand(positionals);
  if ('error' in found) return usageFailure(found.error, GENERAL_USAGE);
  const { command, args } = found;
  const usage = usageLine(command);
  if (values.help) {
    out(`${usage}\n${command.summary}\n`);
    return EXIT_OK;
  }

  const accepted = new Set([...Object.keys(GLOBAL_OPTIONS), ...Object.keys(command.options ?? {})]);
  for (const given of Object.keys(values)) {
    if (!accepted.has(given)) return usageFailure(`--${given} is not an option of ${commandName(command)}`, usage);
  }
  for (const option of command.required ?? []) {
    if (values[option] === undefined) return usageFailure(`--${option} is required`, usage);
  }
  if (args.length !== command.args.length) {
    const message =
      args.length < command.args.length ? `${command.args[args.length]} is required` : `unexpected argument ${JSON.stringify(clean(args[command.args.length] ?? ''))}`;
    return usageFailure(message, usage);
  }

  let client: GatehouseClient | null = null;
  let tokenSource: 'GATEHOUSE_ADMIN_TOKEN' | 'login' | null = null;
  try {
    if (!command.offline) {
      const resolved = await resolveCredentials(io);
      tokenSource = resolved.tokenSource;
      if (resolved.adminToken === null) {
        return usageFailure('GATEHOUSE_ADMIN_TOKEN is not set: export an admin token (gha_…) or run gatehouse login', usage);
      }
      try {
        client = createGatehouseClient({ url: resolved.url, adminToken: resolved.adminToken, ...(io.fetch ? { fetch: io.fetch } : {}) });
      } catch (error) {
        return usageFailure(`GATEHOUSE_URL: ${error instanceof Error ? error.message : String(error)}`, usage);
      }
    }
    const str = (name: string) => {
      const v = values[name];
      return typeof v === 'string' ? v : undefined;
    };
    const ctx: Context = {
      // Offline commands never touch it; a clear failure beats an undefined client if one ever did.
      get client(): GatehouseClient {
        if (client === null) throw new Error(`${commandName(command)} runs without a control plane connection`);
        return client;
      },
      args,
      json: values.json === true,
      io,
      out,
      err,
      string: str,
      strings: (name) => {
        const v = values[name];
        return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : typeof v === 'string' ? [v] : [];
      },
      flag: (name) => values[name] === true,
    };
    return await command.run(ctx);
  } catch (error) {
    if (error instanceof UsageError) return usageFailure(error.message, usage);
    if (error instanceof NotFound || error instanceof CredentialsError) {
      err(`error: ${clean(error.message)}\n`);
      return EXIT_FAILED;
    }
    if (error instanceof GatehouseError) {
      const hint =
        error.code === 'UNAUTHENTICATED'
          ? tokenSource === 'login'
            ? ' (the token saved by gatehouse login was refused: log in again)'
            : ' (check GATEHOUSE_ADMIN_TOKEN)'
          : error.code === 'FORBIDDEN'
            ? ' (this needs an ADMIN token)'
            : error.code === 'NETWORK'
              ? tokenSource === 'login'
                ? ' (check the URL given to gatehouse login, or set GATEHOUSE_URL)'
                : ' (check GATEHOUSE_URL)'
              : '';
      err(`error: ${clean(error.message)} (${error.code})${hint}\n`);
      return EXIT_FAILED;
    }
    // The SDK scrubs the token from its own errors; anything else (a file read, a bug) never saw it.
    err(`error: ${clean(error instanceof Error ? error.message : String(error))}\n`);
    return EXIT_FAILED;
  }
}
