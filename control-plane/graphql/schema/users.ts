/**
 * User in GraphQL: the type, the `users`/`user` queries and create/update/delete mutations. A user's
 * keys (`User.virtualKeys`) are added in virtual-keys.ts, next to the key types they return.
 */
import { createUser, deleteUser, getUser, listUsers, updateUser, userCursor, type User } from '../../repos/users.js';
import { builder } from '../builder.js';
import { resolvePage } from '../connections.js';
import { runMutation } from '../mutation.js';
import { entityPayload } from './common.js';

export const UserRef = builder.objectRef<User>('User').implement({
  description: 'A person who owns virtual keys.',
  fields: (t) => ({
    id: t.exposeID('id'),
    email: t.exposeString('email'),
    name: t.exposeString('name', { nullable: true }),
    createdAt: t.field({ type: 'DateTime', resolve: (u) => u.createdAt }),
    updatedAt: t.field({ type: 'DateTime', resolve: (u) => u.updatedAt }),
  }),
});

const UserConnection = builder.connectionObject({ type: UserRef, name: 'UserConnection' }, { name: 'UserEdge' });

builder.queryFields((t) => ({
  users: t.connection(
    { type: UserRef, resolve: (_root, args, ctx) => resolvePage(args, (page) => listUsers(ctx.db, page), userCursor) },
    UserConnection,
  ),
  user: t.field({
    type: UserRef,
    nullable: true,
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, args, ctx) => getUser(ctx.db, args.id),
  }),
}));

const CreateUserInput = builder.inputType('CreateUserInput', {
  fields: (t) => ({
    email: t.string({ required: true, description: 'Unique; stored lower-cased' }),
    name: t.string(),
  }),
});

const UpdateUserInput = builder.inputType('UpdateUserInput', {
  fields: (t) => ({
    id: t.id({ required: true }),
    email: t.string(),
    name: t.string({ description: 'An empty string clears the name' }),
  }),
});

const DeleteUserInput = builder.inputType('DeleteUserInput', { fields: (t) => ({ id: t.id({ required: true }) }) });

const CreateUserPayload = entityPayload('CreateUserPayload', 'user', UserRef);
const UpdateUserPayload = entityPayload('UpdateUserPayload', 'user', UserRef);
const DeleteUserPayload = entityPayload('DeleteUserPayload', 'user', UserRef);

builder.mutationFields((t) => ({
  createUser: t.field({
    type: CreateUserPayload,
    args: { input: t.arg({ type: CreateUserInput, required: true }) },
    resolve: (_root, { input }, ctx) => runMutation(ctx, async (trx) => ({ value: await createUser(trx, input) })),
  }),
  updateUser: t.field({
    type: UpdateUserPayload,
    args: { input: t.arg({ type: UpdateUserInput, required: true }) },
    resolve: (_root, { input }, ctx) => runMutation(ctx, async (trx) => ({ value: await updateUser(trx, input) })),
  }),
  deleteUser: t.field({
    type: DeleteUserPayload,
    description: 'Deletes the user and every virtual key they own. Returns the user as they were.',
    args: { input: t.arg({ type: DeleteUserInput, required: true }) },
    resolve: (_root, { input }, ctx) => runMutation(ctx, async (trx) => ({ value: await deleteUser(trx, input.id) })),
  }),
}));
