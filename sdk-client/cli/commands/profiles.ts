/**
 * `gatehouse profiles list|create|update` (access profiles: templates of servers, tool filters, budgets, a
 * rate limit and a key lifetime) and `gatehouse provision` (a key for a person from a profile; the key alone
 * on stdout, like `keys create`). Editing a profile changes every key allocated from it.
 */
import type { AccessProfile } from '../../client.js';
import type { BudgetInput, BudgetPeriod, CreateAccessProfileInput, LimitsFallback, UpdateAccessProfileInput } from '../../generated/graphql.js';
import { GatehouseError } from '../../errors.js';
import { clean, details, table, when } from '../../format.js';
import { EXIT_OK, finish, printJson, quoted, UsageError, type Command, type Context } from '../command.js';
import { grantList, parseGrant } from './keys.js';

const PERIODS: Readonly<Record<string, BudgetPeriod>> = {
  minute: 'MINUTELY' as BudgetPeriod,
  hour: 'HOURLY' as BudgetPeriod,
  day: 'DAILY' as BudgetPeriod,
  week: 'WEEKLY' as BudgetPeriod,
  month: 'MONTHLY' as BudgetPeriod,
};

/** `5/day` → `{maxUsd: 5, period: DAILY}`. */
function parseBudget(spec: string): BudgetInput {
  const [amount, per] = spec.split('/');
  const maxUsd = Number(amount?.replace(/^\$/, ''));
  const period = PERIODS[(per ?? '').trim().toLowerCase()];
  if (!Number.isFinite(maxUsd) || maxUsd <= 0 || period === undefined) {
    throw new UsageError(`--budget ${quoted(spec)} must be USD/PERIOD, e.g. 5/day (periods: ${Object.keys(PERIODS).join(', ')})`);
  }
  return { maxUsd, period };
}

function positiveInt(ctx: Context, name: string): number | undefined {
  const raw = ctx.string(name);
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--${name} must be a whole number of at least 1`);
  return n;
}

function fallbackOf(ctx: Context): LimitsFallback | undefined {
  const raw = ctx.string('fallback');
  if (raw === undefined) return undefined;
  const value = raw.trim().toUpperCase().replace(/-/g, '_');
  if (value !== 'FAIL_CLOSED' && value !== 'LOCAL_ALLOWANCE') throw new UsageError('--fallback must be fail-closed or local-allowance');
  return value as LimitsFallback;
}

/** The limit options both create and update take; only those given are set. */
function limitFields(ctx: Context): Partial<CreateAccessProfileInput> {
  const budgets = ctx.strings('budget').map(parseBudget);
  const rpm = positiveInt(ctx, 'rpm');
  const tpm = positiveInt(ctx, 'tpm');
  const lifetime = positiveInt(ctx, 'lifetime-days');
  const fallback = fallbackOf(ctx);
  const description = ctx.string('description');
  return {
    ...(budgets.length > 0 || ctx.flag('no-budgets') ? { budgets } : {}),
    ...(rpm !== undefined || tpm !== undefined ? { rateLimit: { requestsPerMinute: rpm ?? null, tokensPerMinute: tpm ?? null } } : {}),
    ...(lifetime !== undefined ? { keyLifetimeDays: lifetime } : {}),
    ...(fallback !== undefined ? { limitsFallback: fallback } : {}),
    ...(description !== undefined ? { description } : {}),
  };
}

const PROFILE_OPTIONS = {
  server: { type: 'string', multiple: true, placeholder: 'SERVER:TOOLS' },
  budget: { type: 'string', multiple: true, placeholder: 'USD/PERIOD' },
  'no-budgets': { type: 'boolean' },
  rpm: { type: 'string', placeholder: 'N' },
  tpm: { type: 'string', placeholder: 'N' },
  'lifetime-days': { type: 'string', placeholder: 'DAYS' },
  fallback: { type: 'string', placeholder: 'fail-closed|local-allowance' },
  description: { type: 'string', placeholder: 'TEXT' },
} as const;

function limitsText(p: AccessProfile): string {
  const budgets = p.budgets.map((b) => `$${b.maxUsd}/${b.period.toLowerCase()}`).join(' ');
  const rate = p.rateLimit ? [p.rateLimit.requestsPerMinute ? `${p.rateLimit.requestsPerMinute} rpm` : '', p.rateLimit.tokensPerMinute ? `${p.rateLimit.tokensPerMinute} tpm` : ''].filter(Boolean).join(' ') : '';
  return [budgets, rate].filter(Boolean).join(', ') || '-';
}

async function requireProfile(ctx: Context, idOrName: string): Promise<AccessProfile> {
  const profile = await ctx.client.accessProfile(idOrName);
  if (!profile) throw new GatehouseError('GRAPHQL', `no access profile ${quoted(idOrName)}`);
  return profile;
}

export const profileCommands: readonly Command[] = [
  {
    group: 'profiles',
    action: 'list',
    args: [],
    synopsis: '',
    summary: 'List access profiles',
    async run(ctx) {
      const profiles = await ctx.client.allAccessProfiles();
      if (ctx.json) return printJson(ctx, profiles);
      ctx.out(
        table(profiles, [
          { header: 'NAME', value: (p) => p.name },
          { header: 'SERVERS', value: (p) => grantList(p.servers) },
          { header: 'LIMITS', value: (p) => limitsText(p) },
          { header: 'LIFETIME', value: (p) => (p.keyLifetimeDays === null || p.keyLifetimeDays === undefined ? 'none' : `${p.keyLifetimeDays}d`) },
          { header: 'KEYS', value: (p) => String(p.keyCount) },
          { header: 'UPDATED', value: (p) => when(p.updatedAt) },
        ]),
      );
      return EXIT_OK;
    },
  },
  {
    group: 'profiles',
    action: 'create',
    args: ['NAME'],
    options: PROFILE_OPTIONS,
    synopsis: 'NAME --server SERVER:TOOLS… [--budget USD/PERIOD…] [--rpm N] [--tpm N] [--lifetime-days DAYS] [--fallback fail-closed|local-allowance]',
    summary: 'Create an access profile',
    async run(ctx) {
      const servers = ctx.strings('server').map(parseGrant);
      const payload = await ctx.client.createAccessProfile({ name: ctx.args[0] ?? '', servers, ...limitFields(ctx) });
      return finish(ctx, payload, () => {
        if (payload.accessProfile) ctx.out(`created access profile ${clean(payload.accessProfile.name)} (id ${payload.accessProfile.id})\n`);
      });
    },
  },
  {
    group: 'profiles',
    action: 'update',
    args: ['ID|NAME'],
    options: { ...PROFILE_OPTIONS, name: { type: 'string', placeholder: 'NEW_NAME' } },
    synopsis: 'ID|NAME [--name NEW_NAME] [--server SERVER:TOOLS…] [--budget USD/PERIOD… | --no-budgets] [--rpm N] [--tpm N] [--lifetime-days DAYS] [--fallback …]',
    summary: 'Change an access profile; every key allocated from it follows at the next snapshot',
    async run(ctx) {
      const profile = await requireProfile(ctx, ctx.args[0] ?? '');
      const servers = ctx.strings('server');
      const name = ctx.string('name');
      const input: UpdateAccessProfileInput = {
        id: profile.id,
        ...(name !== undefined ? { name } : {}),
        ...(servers.length > 0 ? { servers: servers.map(parseGrant) } : {}),
        ...limitFields(ctx),
      };
      if (Object.keys(input).length === 1) throw new UsageError('give at least one change (--server, --budget, --rpm, …)');
      const payload = await ctx.client.updateAccessProfile(input);
      return finish(ctx, payload, () => {
        if (payload.accessProfile) ctx.out(`updated access profile ${clean(payload.accessProfile.name)} (${payload.accessProfile.keyCount} keys follow it)\n`);
      });
    },
  },
  {
    group: null,
    action: 'provision',
    args: [],
    options: { email: { type: 'string', placeholder: 'EMAIL' }, profile: { type: 'string', placeholder: 'NAME' }, name: { type: 'string', placeholder: 'NAME' }, 'key-name': { type: 'string', placeholder: 'NAME' } },
    required: ['email', 'profile'],
    synopsis: '--email EMAIL --profile NAME [--name NAME] [--key-name NAME]',
    summary: 'Give a person a key from an access profile (creates the user if needed); prints the key once',
    async run(ctx) {
      const payload = await ctx.client.provisionUser({
        email: ctx.string('email') ?? '',
        profile: ctx.string('profile') ?? '',
        ...(ctx.string('name') !== undefined ? { name: ctx.string('name') } : {}),
        ...(ctx.string('key-name') !== undefined ? { keyName: ctx.string('key-name') } : {}),
      });
      return finish(ctx, payload, () => {
        const { key, virtualKey, user } = payload;
        if (!key || !virtualKey || !user) throw new GatehouseError('GRAPHQL', 'the control plane reported no error but returned no key');
        ctx.out(`${key}\n`);
        ctx.err(
          details([
            ['user', `${user.email}${payload.userCreated ? ' (created)' : ''}`],
            ['virtual key', `${virtualKey.name} (id ${virtualKey.id}) from profile ${payload.accessProfile?.name ?? '?'}`],
            ['servers', grantList(virtualKey.servers)],
            ['expires', virtualKey.expiresAt ?? 'never'],
          ]) + 'The key is shown only this once: store it now.\n',
        );
      });
    },
  },
];
