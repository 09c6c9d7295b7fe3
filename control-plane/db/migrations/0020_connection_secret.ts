/**
 * A connection URL that carries a credential (`?api_key=…`, `/t/<token>/mcp`) is stored redacted in
 * `connection_string` (what reads show) and whole, sealed, in `connection_secret` (repos/url-secrets.ts, formerly connection-url.ts).
 * Rows written before this are sealed at startup by `sealConnectionSecrets` (it needs the master key,
 * which migrations do not have). Frozen in time: `Kysely<any>`, no app types.
 */
import type { Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- migrations must not depend on app types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('mcp_servers').addColumn('connection_secret', 'text').execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- see above
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('mcp_servers').dropColumn('connection_secret').execute();
}
