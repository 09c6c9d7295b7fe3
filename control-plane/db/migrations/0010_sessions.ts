/**
 * Session secrets (issue 9): the secrets nodes derive the sealed MCP session key from. At most two rows,
 * keyed by role (`current` seals and opens, `previous` only opens), so "is there a current secret" is one
 * primary-key lookup and two replicas creating the first one cannot both succeed. The secret is stored
 * sealed (secret-box). Frozen in time like every migration: `Kysely<any>`, no app types.
 */
import type { Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- migrations must not depend on app types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('session_secrets')
    .addColumn('role', 'text', (c) => c.primaryKey())
    .addColumn('id', 'text', (c) => c.notNull().unique())
    .addColumn('secret', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- see above
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('session_secrets').execute();
}
