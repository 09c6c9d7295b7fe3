/**
 * Indexes for the API's keyset-paginated lists, ordered by (created_at, id): without them every page of
 * 100,000 keys sorts the whole table. Frozen in time like every migration: `Kysely<any>`, no app types.
 */
import type { Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- migrations must not depend on app types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.createIndex('virtual_keys_created_at_id').on('virtual_keys').columns(['created_at', 'id']).execute();
  await db.schema.createIndex('virtual_keys_user_created_at_id').on('virtual_keys').columns(['user_id', 'created_at', 'id']).execute();
  await db.schema.createIndex('users_created_at_id').on('users').columns(['created_at', 'id']).execute();
  await db.schema.createIndex('mcp_servers_created_at_id').on('mcp_servers').columns(['created_at', 'id']).execute();
  await db.schema.createIndex('admin_tokens_created_at_id').on('admin_tokens').columns(['created_at', 'id']).execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- see above
export async function down(db: Kysely<any>): Promise<void> {
  for (const index of [
    'admin_tokens_created_at_id',
    'mcp_servers_created_at_id',
    'users_created_at_id',
    'virtual_keys_user_created_at_id',
    'virtual_keys_created_at_id',
  ]) {
    await db.schema.dropIndex(index).execute();
  }
}
