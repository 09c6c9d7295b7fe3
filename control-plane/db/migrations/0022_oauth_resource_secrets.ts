/**
 * The rule 0021_url_secrets applied to the settings' `resource` (repos/url-secrets.ts), for the copies of
 * the resource indicator each pending flow and each stored credential keeps (`oauth_flows.resource`,
 * `oauth_credentials.resource`): a credential-bearing one (`https://mcp.example.com/mcp?api_key=…`, as a
 * server's protected-resource metadata or an admin's setting may name it) is stored redacted in the
 * column and whole, sealed, in `resource_secret` beside it. Before, the whole indicator sat in the clear
 * there, while the same URL in the settings and in the connection URL was sealed. Rows written before are
 * sealed at startup (`sealOAuthResources`: it needs the master key, which migrations do not have).
 * Frozen in time: `Kysely<any>`, no app types.
 */
import type { Kysely } from 'kysely';

const TABLES = ['oauth_flows', 'oauth_credentials'] as const;

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- migrations must not depend on app types
export async function up(db: Kysely<any>): Promise<void> {
  for (const table of TABLES) await db.schema.alterTable(table).addColumn('resource_secret', 'text').execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- see above
export async function down(db: Kysely<any>): Promise<void> {
  for (const table of TABLES) await db.schema.alterTable(table).dropColumn('resource_secret').execute();
}
