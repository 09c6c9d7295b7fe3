/**
 * MCP tool pricing (issue 7): `mcp_servers.tool_pricing`, JSON `{tool: USD per call}`, a per-call cost that
 * nodes charge to the same budgets as LLM usage. Part of the server's configuration (snapshots carry it).
 * Frozen in time: `Kysely<any>`, no app types.
 */
import type { Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- migrations must not depend on app types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('mcp_servers').addColumn('tool_pricing', 'text', (c) => c.notNull().defaultTo('{}')).execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- see above
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('mcp_servers').dropColumn('tool_pricing').execute();
}
