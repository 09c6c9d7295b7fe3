/**
 * The rule 0020_connection_secret applied to an MCP server's connection URL, for every other stored URL
 * (repos/url-secrets.ts): a provider's base URL and a server's OAuth settings URLs that carry a credential
 * (`?api-key=…`, `?sig=…`) are stored redacted in their column (what reads show) and whole, sealed, in the
 * `*_secret` column beside it. Rows written before are sealed at startup (`sealUrlSecrets`: it needs the
 * master key, which migrations do not have). Frozen in time: `Kysely<any>`, no app types.
 */
import type { Kysely } from 'kysely';

const OAUTH_COLUMNS = ['authorize_url_secret', 'token_url_secret', 'registration_url_secret', 'resource_secret'] as const;

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- migrations must not depend on app types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('providers').addColumn('base_url_secret', 'text').execute();
  // One statement per column: SQLite's ALTER TABLE adds one column at a time.
  for (const column of OAUTH_COLUMNS) await db.schema.alterTable('server_oauth_settings').addColumn(column, 'text').execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- see above
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('providers').dropColumn('base_url_secret').execute();
  for (const column of OAUTH_COLUMNS) await db.schema.alterTable('server_oauth_settings').dropColumn(column).execute();
}
