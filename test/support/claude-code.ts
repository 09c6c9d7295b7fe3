/**
 * Drive the REAL Claude Code CLI (`@anthropic-ai/claude-code`, node_modules/.bin/claude) offline.
 *
 * Every run gets an isolated HOME (mkdtemp) and a scrubbed environment: nothing ANTHROPIC_* / CLAUDE* /
 * proxy-related is inherited from the parent, so a developer's own login, settings or MCP servers never leak
 * into a test, and no request can reach the real API (ANTHROPIC_BASE_URL always points somewhere local).
 *
 * CLI quirks found with 2.1.197 (they matter for end-to-end tests against the gateway):
 *
 * - The binary is a Bun-compiled native executable (ELF, ~245 MB), not a Node script: spawn it directly.
 *   `claude --version` ≈ 0.3 s, `claude mcp add` ≈ 0.9 s, `claude mcp list` ≈ 1 s (it health-checks every
 *   server), `claude -p` with one MCP tool round trip ≈ 1.5–2 s.
 * - Scope: `claude mcp add` defaults to `--scope local`, stored in ~/.claude.json under
 *   `projects["<cwd at add time>"].mcpServers` — so `mcp list` / `-p` only see it when run from that same cwd.
 *   `--scope user` stores it in the top-level `mcpServers` of ~/.claude.json, visible from any cwd. With an
 *   isolated HOME per test, user scope is the robust choice and is the default here; every command still runs
 *   in one fixed cwd (`<home>/project`, a fresh empty directory: no CLAUDE.md, .mcp.json or .claude/settings of
 *   this repo get picked up), so local scope works too.
 * - `--header` is variadic (`-H, --header <header...>`); repeating `--header "K: V"` per header is safest.
 *   Header values are stored in plaintext in ~/.claude.json and printed by `claude mcp get NAME` (`mcp add`
 *   prints them `[REDACTED]`). Server names: letters, digits, `-`, `_` only.
 * - `claude mcp list` output (stdout, exit 0 even when servers fail):
 *     `Checking MCP server health…\n\n<name>: <url> (HTTP) - ✔ Connected\n`
 *   a failing server (refused, or 401 without OAuth metadata) is `<name>: <url> (HTTP) - ✘ Failed to connect`.
 *   Note the glyphs are U+2714 ✔ / U+2718 ✘ (not ✓ / ✗).
 * - Onboarding / trust: `claude -p` (non-interactive) needs NO onboarding or workspace-trust acceptance; it
 *   just runs. For interactive use we still pre-write ~/.claude.json with `hasCompletedOnboarding: true`,
 *   `projects[<cwd realpath>].hasTrustDialogAccepted: true` and, for an API key, `customApiKeyResponses.approved`
 *   (last 20 characters of the key). `mcp add` merges into that file and keeps those fields.
 * - Auth to the Messages API: ANTHROPIC_API_KEY → `x-api-key` header; ANTHROPIC_AUTH_TOKEN → `Authorization:
 *   Bearer …` (what the gateway's `/anthropic` route expects for a virtual key). Requests go to
 *   `POST ${ANTHROPIC_BASE_URL}/v1/messages?beta=true` with `stream: true` (the base URL's path prefix is kept,
 *   e.g. `/anthropic/v1/messages`). At startup the CLI also sends an unauthenticated `HEAD ${ANTHROPIC_BASE_URL}`
 *   (a preconnect; its status is ignored). With CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 and `-p`, no other
 *   API calls are made (no title generation, no quota probe, no count_tokens).
 * - MCP tools are named `mcp__<server>__<tool>` and sent inline in the request's `tools` array: tool search
 *   (deferred MCP tools) is off by default when ANTHROPIC_BASE_URL is not a first-party Anthropic host; we set
 *   ENABLE_TOOL_SEARCH=false anyway so that never changes under a test.
 * - In `-p` mode a tool not named in `--allowedTools` is denied (the model receives an error tool_result and the
 *   result event lists it in `permission_denials`).
 * - `--output-format stream-json` requires `--verbose` with `-p`. Its first line is a `system/init` event with
 *   `tools` (incl. `mcp__…` names) and `mcp_servers: [{name, status: 'connected'|'failed'|…}]`; the last is the
 *   `result` event (`subtype`, `is_error`, `result` text, `num_turns`, `permission_denials`).
 * - stdin must not be left open: we spawn with stdin = /dev/null ('ignore').
 */
import { spawnOwned } from './processes.js';
import { mkdtemp, mkdir, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Absolute path of the Claude Code binary installed as a devDependency. */
export const CLAUDE_BIN = join(REPO_ROOT, 'node_modules', '.bin', 'claude');

/** Environment variables passed through from the parent (everything else is dropped). */
const INHERITED_ENV = ['PATH', 'LANG', 'LC_ALL', 'LC_CTYPE', 'TZ', 'TERM', 'SHELL', 'USER', 'LOGNAME', 'NODE_EXTRA_CA_CERTS', 'SSL_CERT_FILE'];

export interface ClaudeHomeOptions {
  /** ANTHROPIC_BASE_URL, e.g. the stand-in's url or `http://node:8080/anthropic`. Default: a dead local port. */
  anthropicBaseUrl?: string;
  /** Sent as `x-api-key`. If neither this nor authToken is given, a dummy API key is used. */
  apiKey?: string;
  /** Sent as `Authorization: Bearer …` (ANTHROPIC_AUTH_TOKEN), e.g. a virtual key. */
  authToken?: string;
  /** Extra environment for every CLI run. */
  env?: Record<string, string>;
}

export interface ClaudeHome {
  /** The isolated HOME directory (holds .claude.json and .claude/). */
  home: string;
  /** The cwd every command runs in (`<home>/project`, realpath). */
  cwd: string;
  /** The full environment every command runs with. */
  env: Record<string, string>;
  /** Remove the home directory. */
  cleanup(): Promise<void>;
}

export interface ClaudeRun {
  args: string[];
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  durationMs: number;
}

export interface RunOptions {
  /** Hard timeout; the process group is SIGKILLed when it passes. Default 45 s. */
  timeoutMs?: number;
  /** Extra environment for this run only. */
  env?: Record<string, string>;
}

/** Create an isolated HOME + cwd with onboarding/trust already accepted. */
export async function createClaudeHome(options: ClaudeHomeOptions = {}): Promise<ClaudeHome> {
  const home = await realpath(await mkdtemp(join(tmpdir(), 'gatehouse-claude-home-')));
  const cwd = join(home, 'project');
  await mkdir(cwd);

  const env: Record<string, string> = {};
  for (const name of INHERITED_ENV) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  Object.assign(env, {
    HOME: home,
    TMPDIR: tmpdir(),
    NO_PROXY: '127.0.0.1,localhost',
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    DISABLE_AUTOUPDATER: '1',
    DISABLE_TELEMETRY: '1',
    DISABLE_ERROR_REPORTING: '1',
    ENABLE_TOOL_SEARCH: 'false',
    // Port 9 (discard) on loopback: refused, so a misconfigured test can never reach a real endpoint.
    ANTHROPIC_BASE_URL: options.anthropicBaseUrl ?? 'http://127.0.0.1:9',
  });
  const apiKey = options.authToken === undefined ? (options.apiKey ?? 'sk-ant-api03-gatehouse-test-key-000000000000') : options.apiKey;
  if (apiKey !== undefined) env.ANTHROPIC_API_KEY = apiKey;
  if (options.authToken !== undefined) env.ANTHROPIC_AUTH_TOKEN = options.authToken;
  if (options.env) Object.assign(env, options.env);

  const config = {
    hasCompletedOnboarding: true,
    projects: {
      [cwd]: { hasTrustDialogAccepted: true, hasCompletedProjectOnboarding: true, projectOnboardingSeenCount: 1 },
    },
    ...(apiKey !== undefined ? { customApiKeyResponses: { approved: [apiKey.slice(-20)], rejected: [] } } : {}),
  };
  await writeFile(join(home, '.claude.json'), JSON.stringify(config, null, 2));

  return { home, cwd, env, cleanup: () => rm(home, { recursive: true, force: true }) };
}

/** Run `claude ARGS` in the home's cwd and env, with a hard timeout. Never throws for a non-zero exit. */
export function runClaude(home: ClaudeHome, args: string[], options: RunOptions = {}): Promise<ClaudeRun> {
  const timeoutMs = options.timeoutMs ?? 45_000;
  const started = Date.now();
  return new Promise((resolvePromise, reject) => {
    // Own process group (processes.ts), so the timeout kills anything it spawned, and so does the worker's exit.
    const child = spawnOwned(CLAUDE_BIN, args, { cwd: home.cwd, env: { ...home.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] }).proc;
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (c: Buffer) => out.push(c));
    child.stderr?.on('data', (c: Buffer) => err.push(c));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      if (child.pid !== undefined) {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          child.kill('SIGKILL');
        }
      }
    }, timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (exitCode, signal) => {
      clearTimeout(timer);
      resolvePromise({
        args,
        exitCode,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        timedOut,
        durationMs: Date.now() - started,
      });
    });
  });
}

function formatRun(run: ClaudeRun): string {
  return `claude ${run.args.join(' ')} → exit ${String(run.exitCode)}${run.signal ? ` (${run.signal})` : ''}${run.timedOut ? ' TIMED OUT' : ''}\nstdout:\n${run.stdout}\nstderr:\n${run.stderr}`;
}

function assertOk(run: ClaudeRun): ClaudeRun {
  if (run.exitCode !== 0 || run.timedOut) throw new Error(formatRun(run));
  return run;
}

export type McpScope = 'user' | 'local';

/**
 * `claude mcp add --scope user --transport http NAME URL --header "K: V" …` (throws on failure).
 * Scope defaults to `user` (visible from any cwd); `local` is keyed by the home's cwd.
 */
export async function claudeMcpAdd(
  home: ClaudeHome,
  name: string,
  url: string,
  headers: Record<string, string> = {},
  options: RunOptions & { scope?: McpScope; transport?: 'http' | 'sse' } = {},
): Promise<ClaudeRun> {
  const args = ['mcp', 'add', '--scope', options.scope ?? 'user', '--transport', options.transport ?? 'http', name, url];
  for (const [key, value] of Object.entries(headers)) args.push('--header', `${key}: ${value}`);
  return assertOk(await runClaude(home, args, options));
}

/** `claude mcp list` → stdout (throws on a non-zero exit or timeout). */
export async function claudeMcpList(home: ClaudeHome, options: RunOptions = {}): Promise<string> {
  return assertOk(await runClaude(home, ['mcp', 'list'], options)).stdout;
}

export interface McpListEntry {
  name: string;
  /** URL (http/sse) or command line (stdio). */
  target: string;
  /** `HTTP`, `SSE`, … as printed; undefined for stdio. */
  transport: string | undefined;
  /** Status text after the glyph, e.g. `Connected`, `Failed to connect`, `Needs authentication`. */
  status: string;
  connected: boolean;
}

/** Parse `claude mcp list` lines of the form `NAME: TARGET (HTTP) - ✔ Connected`. */
export function parseMcpList(stdout: string): McpListEntry[] {
  const entries: McpListEntry[] = [];
  for (const line of stdout.split('\n')) {
    const m = /^([A-Za-z0-9_-]+): (.+?)(?: \(([A-Z]+)\))? - \S+ (.+)$/.exec(line.trim());
    if (!m) continue;
    const [, name = '', target = '', transport, status = ''] = m;
    entries.push({ name, target, transport, status, connected: status === 'Connected' });
  }
  return entries;
}

const InitEvent = z.looseObject({
  type: z.literal('system'),
  subtype: z.literal('init'),
  tools: z.array(z.string()),
  mcp_servers: z.array(z.looseObject({ name: z.string(), status: z.string() })),
  model: z.string().optional(),
  apiKeySource: z.string().optional(),
});
export type ClaudeInitEvent = z.infer<typeof InitEvent>;

const ResultEvent = z.looseObject({
  type: z.literal('result'),
  subtype: z.string(),
  is_error: z.boolean(),
  result: z.string().optional(),
  num_turns: z.number().optional(),
  permission_denials: z.array(z.unknown()).optional(),
});
export type ClaudeResultEvent = z.infer<typeof ResultEvent>;

const ToolResultBlock = z.looseObject({
  type: z.literal('tool_result'),
  tool_use_id: z.string(),
  content: z.unknown().optional(),
  is_error: z.boolean().optional(),
});
const UserEvent = z.looseObject({
  type: z.literal('user'),
  message: z.looseObject({ content: z.union([z.string(), z.array(z.unknown())]) }),
});
export type ClaudeToolResult = z.infer<typeof ToolResultBlock>;

export interface ClaudePrintResult extends ClaudeRun {
  /** Every JSON line of `--output-format stream-json`. */
  events: unknown[];
  /** The `system/init` event: tools offered and MCP server statuses. */
  init: ClaudeInitEvent | undefined;
  /** The final `result` event. */
  result: ClaudeResultEvent | undefined;
  /** tool_result blocks Claude Code fed back to the model. */
  toolResults: ClaudeToolResult[];
}

export interface PrintOptions extends RunOptions {
  /** `--max-turns`, default 4 (one tool round trip needs 2). */
  maxTurns?: number;
  /** `--model`. */
  model?: string;
  /** Extra CLI arguments appended last. */
  extraArgs?: string[];
}

/**
 * `claude -p PROMPT --allowedTools T1,T2 --output-format stream-json --verbose --max-turns N`, killed after
 * `timeoutMs`. Never throws for a CLI failure: check `exitCode`, `timedOut`, `result`.
 */
export async function claudePrint(
  home: ClaudeHome,
  prompt: string,
  allowedTools: string[],
  options: PrintOptions = {},
): Promise<ClaudePrintResult> {
  const args = ['-p', prompt, '--output-format', 'stream-json', '--verbose', '--max-turns', String(options.maxTurns ?? 4)];
  if (allowedTools.length > 0) args.push('--allowedTools', allowedTools.join(','));
  if (options.model !== undefined) args.push('--model', options.model);
  if (options.extraArgs) args.push(...options.extraArgs);
  const run = await runClaude(home, args, options);

  const events: unknown[] = [];
  let init: ClaudeInitEvent | undefined;
  let result: ClaudeResultEvent | undefined;
  const toolResults: ClaudeToolResult[] = [];
  for (const line of run.stdout.split('\n')) {
    if (!line.startsWith('{')) continue;
    let event: unknown;
    try {
      event = JSON.parse(line);
    } catch {
      continue;
    }
    events.push(event);
    const asInit = InitEvent.safeParse(event);
    if (asInit.success) init = asInit.data;
    const asResult = ResultEvent.safeParse(event);
    if (asResult.success) result = asResult.data;
    const asUser = UserEvent.safeParse(event);
    if (asUser.success && Array.isArray(asUser.data.message.content)) {
      for (const block of asUser.data.message.content) {
        const tr = ToolResultBlock.safeParse(block);
        if (tr.success) toolResults.push(tr.data);
      }
    }
  }
  return { ...run, events, init, result, toolResults };
}

/** Human-readable dump of a run, for assertion messages. */
export function describeRun(run: ClaudeRun): string {
  return formatRun(run);
}
