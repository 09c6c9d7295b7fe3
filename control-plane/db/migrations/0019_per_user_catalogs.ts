/**
 * Forgets the tool catalogs stored for per-user servers (PER_USER_OAUTH, PER_USER_HEADERS). Earlier
 * releases stored what one user's credential listed (saving per-user header values, or a node's report) as
 * the server's `tools`, shown to every admin: that user's catalog, not the server's. Such servers have no
 * catalog of their own from now on (`repos/mcp-servers.ts`), so nothing stored for them is kept at rest.
 * Frozen in time: `Kysely<any>`, no app types.
 */
import type { Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- migrations must not depend on app types
export async function up(db: Kysely<any>): Promise<void> {
  await db.updateTable('mcp_servers').set({ tools: null }).where('auth_type', 'in', ['PER_USER_OAUTH', 'PER_USER_HEADERS']).execute();
}

// Nothing to restore: the catalogs were never the servers' own.
export async function down(): Promise<void> {}
