/**
 * Upstream health as nodes observe it (issue 5 item 4): one row per MCP server, the latest observation any
 * node reported (status, scrubbed reason, when, which node). A table of its own rather than columns on
 * mcp_servers: reports arrive every few seconds from every node, and mcp_servers is change-tracked for
 * snapshots (0004_change_tracking), so writing health there would touch rows the publisher watches. Rows go
 * with their server (on delete cascade; SQLite has foreign_keys on).
 * Frozen in time: `Kysely<any>`, no app types.
 */
import type { Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- migrations must not depend on app types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('mcp_server_health')
    .addColumn('server_id', 'text', (c) => c.primaryKey().references('mcp_servers.id').onDelete('cascade'))
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('reason', 'text')
    .addColumn('observed_at', 'text', (c) => c.notNull())
    .addColumn('node_id', 'text', (c) => c.notNull())
    .execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- see above
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('mcp_server_health').execute();
}
