/**
 * `gatehouse audit tail|export|verify|settings`: the audit trail. `tail` prints the newest events and then
 * follows (polling `auditEvents` after the last cursor) until interrupted; `export` streams every matching
 * event as JSON Lines from `GET /audit/export` (for a data lake); `verify` walks the hash chains; `settings`
 * shows or sets content logging and the secrets guardrail per key or server.
 */
import type { AuditEvent, AuditEventFilter } from '../../client.js';
import { clean, table } from '../../format.js';
import { EXIT_FAILED, EXIT_OK, finish, printJson, UsageError, type Command, type Context, type OptionSpec } from '../command.js';

const FILTER_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  key: { type: 'string', placeholder: 'KEY_ID' },
  user: { type: 'string', placeholder: 'USER_ID' },
  // Repeatable elsewhere (keys --server SERVER:TOOLS), so declared the same way here; one value is taken.
  server: { type: 'string', multiple: true, placeholder: 'NAME' },
  tool: { type: 'string', placeholder: 'NAME' },
  outcome: { type: 'string', placeholder: 'OUTCOME' },
};
const FILTER_SYNOPSIS = '[--key KEY_ID] [--user USER_ID] [--server NAME] [--tool NAME] [--outcome OUTCOME]';

function isoOption(ctx: Context, name: string): string | undefined {
  const value = ctx.string(name);
  if (value === undefined) return undefined;
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) throw new UsageError(`--${name} must be a date or date-time (ISO-8601), e.g. 2026-12-01T00:00:00Z`);
  return new Date(ms).toISOString();
}

function oneServer(ctx: Context): string | undefined {
  const servers = ctx.strings('server');
  if (servers.length > 1) throw new UsageError('give --server once');
  return servers[0];
}

function filterOf(ctx: Context): AuditEventFilter {
  const filter: AuditEventFilter = {};
  for (const name of Object.keys(FILTER_OPTIONS)) {
    const value = name === 'server' ? oneServer(ctx) : ctx.string(name);
    if (value !== undefined) (filter as Record<string, string>)[name] = value;
  }
  const from = isoOption(ctx, 'from');
  const to = isoOption(ctx, 'to');
  if (from) filter.from = from;
  if (to) filter.to = to;
  return filter;
}

/** One line per event: time, outcome, who, what, how long; the reason of a refusal; findings (kinds only). */
function line(e: AuditEvent): string {
  const who = e.keyId ?? (e.keyHashPrefix ? `key#${e.keyHashPrefix}` : '-');
  const what = [e.method, e.server && e.tool ? `${e.server}-${e.tool}` : e.server].filter(Boolean).join(' ');
  const extra = [e.denyReason ? `reason=${e.denyReason}` : '', e.guardrail.length > 0 ? `secrets=${e.guardrail.map((g) => g.kind).join(',')}` : '', e.costUsd ? `cost=$${e.costUsd}` : '']
    .filter(Boolean)
    .join(' ');
  return clean(`${e.time} ${e.outcome.padEnd(10)} ${who} ${what} ${Math.round(e.latencyMs)}ms node=${e.node}${extra ? ` ${extra}` : ''}`) + '\n';
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
  });
}

export const auditCommands: readonly Command[] = [
  {
    group: 'audit',
    action: 'tail',
    args: [],
    options: { ...FILTER_OPTIONS, lines: { type: 'string', short: 'n', placeholder: 'N' }, interval: { type: 'string', placeholder: 'MS' } },
    synopsis: `${FILTER_SYNOPSIS} [-n N] [--interval MS]`,
    summary: 'Print the newest audit events (default 10), then follow new ones until interrupted',
    async run(ctx) {
      const lines = Number(ctx.string('lines') ?? 10);
      const interval = Number(ctx.string('interval') ?? 1000);
      if (!Number.isInteger(lines) || lines < 0 || lines > 100) throw new UsageError('-n must be a whole number from 0 to 100');
      if (!Number.isInteger(interval) || interval < 100) throw new UsageError('--interval must be at least 100 (milliseconds)');
      const filter = filterOf(ctx);
      const print = (e: AuditEvent): void => ctx.out(ctx.json ? `${JSON.stringify(e)}\n` : line(e));
      // The newest N first (a backward page), then everything after the newest cursor, forever.
      const newest = await ctx.client.auditEvents({ last: Math.max(lines, 1), filter });
      let cursor = newest.edges.at(-1)?.cursor ?? null;
      if (lines > 0) for (const edge of newest.edges) print(edge.node);
      const signal = ctx.io.signal;
      while (!signal?.aborted) {
        const page = await ctx.client.auditEvents({ first: 100, after: cursor, filter });
        for (const edge of page.edges) {
          print(edge.node);
          cursor = edge.cursor;
        }
        if (!page.pageInfo.hasNextPage) await sleep(interval, signal);
      }
      return EXIT_OK;
    },
  },
  {
    group: 'audit',
    action: 'export',
    args: [],
    options: { ...FILTER_OPTIONS, from: { type: 'string', placeholder: 'TIME' }, to: { type: 'string', placeholder: 'TIME' } },
    synopsis: `[--from TIME] [--to TIME] ${FILTER_SYNOPSIS}`,
    summary: 'Write every matching audit event as JSON Lines on stdout (streamed, for a data lake)',
    async run(ctx) {
      let count = 0;
      for await (const jsonLine of ctx.client.exportAuditEvents(filterOf(ctx))) {
        ctx.out(`${jsonLine}\n`);
        count += 1;
      }
      ctx.err(`${count} audit events exported\n`);
      return EXIT_OK;
    },
  },
  {
    group: 'audit',
    action: 'verify',
    args: [],
    options: { from: { type: 'string', placeholder: 'TIME' }, to: { type: 'string', placeholder: 'TIME' } },
    synopsis: '[--from TIME] [--to TIME]',
    summary: 'Check the audit hash chains and signed checkpoints; exit 1 at the first broken link',
    async run(ctx) {
      const result = await ctx.client.verifyAuditChain({ from: isoOption(ctx, 'from') ?? null, to: isoOption(ctx, 'to') ?? null });
      if (ctx.json) printJson(ctx, result);
      else if (result.ok) ctx.out(`ok: ${result.checkedEvents} events in ${result.partitions} partition(s), ${result.checkedCheckpoints} signed checkpoints\n`);
      else {
        const b = result.firstBroken;
        ctx.out(`BROKEN at partition ${clean(b?.partition ?? '?')} seq ${b?.seq ?? '?'} (event ${clean(b?.eventId ?? '-')}): ${clean(b?.reason ?? '?')}\n`);
      }
      return result.ok ? EXIT_OK : EXIT_FAILED;
    },
  },
  {
    group: 'audit',
    action: 'settings',
    args: [],
    options: {
      key: { type: 'string', placeholder: 'KEY_ID' },
      server: { type: 'string', multiple: true, placeholder: 'NAME' },
      content: { type: 'string', placeholder: 'on|off' },
      guardrail: { type: 'string', placeholder: 'off|redact|block' },
    },
    synopsis: '[--key KEY_ID | --server NAME] [--content on|off] [--guardrail off|redact|block]',
    summary: 'Show audit settings, or set content logging / the secrets guardrail for one key or server',
    async run(ctx) {
      const key = ctx.string('key');
      const server = oneServer(ctx);
      const content = ctx.string('content');
      const guardrail = ctx.string('guardrail');
      if (key === undefined && server === undefined) {
        if (content !== undefined || guardrail !== undefined) throw new UsageError('name a --key or a --server to change');
        const settings = await ctx.client.auditSettings();
        if (ctx.json) return printJson(ctx, settings);
        ctx.out(table(settings, [
          { header: 'SCOPE', value: (s) => s.scope },
          { header: 'TARGET', value: (s) => s.target },
          { header: 'CONTENT', value: (s) => (s.contentLogging ? 'on' : 'off') },
          { header: 'GUARDRAIL', value: (s) => s.guardrail },
        ]));
        return EXIT_OK;
      }
      if (key !== undefined && server !== undefined) throw new UsageError('give --key or --server, not both');
      if (content !== undefined && content !== 'on' && content !== 'off') throw new UsageError('--content must be on or off');
      if (guardrail !== undefined && !['off', 'redact', 'block'].includes(guardrail)) throw new UsageError('--guardrail must be off, redact or block');
      const payload = await ctx.client.setAuditSettings({
        scope: key !== undefined ? 'KEY' : 'SERVER',
        target: key ?? server ?? '',
        contentLogging: content === undefined ? null : content === 'on',
        guardrail: guardrail === undefined ? null : (guardrail.toUpperCase() as 'OFF' | 'REDACT' | 'BLOCK'),
      });
      return finish(ctx, payload, () => {
        const s = payload.auditSettings;
        if (s) ctx.out(`${s.scope.toLowerCase()} ${clean(s.target)}: content ${s.contentLogging ? 'on' : 'off'}, guardrail ${s.guardrail.toLowerCase()}\n`);
      });
    },
  },
];
