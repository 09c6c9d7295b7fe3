/** `gatehouse users list|create|update|delete`: the people who own virtual keys. */
import type { Context } from '../command.js';
import { clean, table, when } from '../../format.js';
import { EXIT_OK, finish, printJson, quoted, UsageError, type Command } from '../command.js';

/**
 * A user given as an ID or, for convenience, an email (looked up; emails are stored lower-cased). Throws a
 * usage error when no user has that email.
 */
export async function resolveUserId(ctx: Context, value: string): Promise<string> {
  if (!value.includes('@')) return value;
  const email = value.trim().toLowerCase();
  const user = (await ctx.client.allUsers()).find((u) => u.email === email);
  if (!user) throw new NotFound(`no user with email ${quoted(email)}`);
  return user.id;
}

/** Something named on the command line does not exist: exit 1, not a usage error. */
export class NotFound extends Error {}

export const userCommands: readonly Command[] = [
  {
    group: 'users',
    action: 'list',
    args: [],
    synopsis: '',
    summary: 'List users',
    async run(ctx) {
      const users = await ctx.client.allUsers();
      if (ctx.json) return printJson(ctx, users);
      ctx.out(
        table(users, [
          { header: 'ID', value: (u) => u.id },
          { header: 'EMAIL', value: (u) => u.email },
          { header: 'NAME', value: (u) => u.name ?? '-' },
          { header: 'CREATED', value: (u) => when(u.createdAt) },
        ]),
      );
      return EXIT_OK;
    },
  },
  {
    group: 'users',
    action: 'create',
    args: [],
    options: { email: { type: 'string', placeholder: 'EMAIL' }, name: { type: 'string', placeholder: 'NAME' } },
    required: ['email'],
    synopsis: '--email EMAIL [--name NAME]',
    summary: 'Create a user',
    async run(ctx) {
      const payload = await ctx.client.createUser({ email: ctx.string('email') ?? '', name: ctx.string('name') ?? null });
      return finish(ctx, payload, () => {
        if (payload.user) ctx.out(`created user ${clean(payload.user.email)} (id ${payload.user.id})\n`);
      });
    },
  },
  {
    group: 'users',
    action: 'update',
    args: ['ID|EMAIL'],
    options: { email: { type: 'string', placeholder: 'EMAIL' }, name: { type: 'string', placeholder: 'NAME' } },
    synopsis: 'ID|EMAIL [--email NEW_EMAIL] [--name NAME]',
    summary: 'Change a user\'s email or name (--name "" clears it)',
    async run(ctx) {
      const email = ctx.string('email');
      const name = ctx.string('name');
      if (email === undefined && name === undefined) throw new UsageError('give --email or --name (or both)');
      const id = await resolveUserId(ctx, ctx.args[0] ?? '');
      const payload = await ctx.client.updateUser({ id, ...(email !== undefined ? { email } : {}), ...(name !== undefined ? { name } : {}) });
      return finish(ctx, payload, () => {
        if (payload.user) ctx.out(`updated user ${clean(payload.user.email)} (id ${payload.user.id})\n`);
      });
    },
  },
  {
    group: 'users',
    action: 'delete',
    args: ['ID|EMAIL'],
    synopsis: 'ID|EMAIL',
    summary: 'Delete a user and every virtual key they own',
    async run(ctx) {
      const id = await resolveUserId(ctx, ctx.args[0] ?? '');
      const payload = await ctx.client.deleteUser({ id });
      return finish(ctx, payload, () => {
        if (payload.user) ctx.out(`deleted user ${clean(payload.user.email)} (id ${payload.user.id}) and their keys\n`);
      });
    },
  },
];
