/**
 * Per-node identity (issue 11): each node's enrolled public keys (Ed25519 to authenticate, X25519 to
 * receive data keys) and enrollment state on `nodes`; one-time enrollment tokens (hashes only); a
 * `seal_epoch` on config_state that moves when a node is revoked, so the publisher rotates the data key;
 * and `app_locks`, named rows a transaction locks first to serialise a check-then-write across replicas
 * (the bootstrap admin token, the last-admin-token guard). Frozen in time: `Kysely<any>`, no app types.
 */
import type { Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- migrations must not depend on app types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('nodes')
    .addColumn('enrollment', 'text', (c) => c.notNull().defaultTo('SHARED_TOKEN'))
    .execute();
  await db.schema.alterTable('nodes').addColumn('identity_jwk', 'text').execute();
  await db.schema.alterTable('nodes').addColumn('sealing_jwk', 'text').execute();
  await db.schema.alterTable('nodes').addColumn('enrolled_at', 'text').execute();
  await db.schema.alterTable('nodes').addColumn('approved_at', 'text').execute();
  await db.schema.alterTable('nodes').addColumn('revoked_at', 'text').execute();

  await db.schema
    .createTable('node_enrollment_tokens')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('token_hash', 'text', (c) => c.notNull().unique())
    .addColumn('node_id', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'text', (c) => c.notNull())
    .addColumn('used_at', 'text')
    .addColumn('used_by', 'text')
    .execute();

  await db.schema.alterTable('config_state').addColumn('seal_epoch', 'integer', (c) => c.notNull().defaultTo(0)).execute();

  await db.schema
    .createTable('app_locks')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('taken_at', 'text')
    .execute();
  await db.insertInto('app_locks').values([{ name: 'admin_tokens' }, { name: 'nodes' }]).execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- see above
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('app_locks').execute();
  await db.schema.alterTable('config_state').dropColumn('seal_epoch').execute();
  await db.schema.dropTable('node_enrollment_tokens').execute();
  for (const column of ['revoked_at', 'approved_at', 'enrolled_at', 'sealing_jwk', 'identity_jwk', 'enrollment']) {
    await db.schema.alterTable('nodes').dropColumn(column).execute();
  }
}
