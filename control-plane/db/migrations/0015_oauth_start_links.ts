/**
 * One-time start links for the admin's shared-credential OAuth flow (issue 6): `startServerOAuth` returns
 * `<public URL>/oauth/start/<token>` instead of the authorization server's URL (which carries the state).
 * The flow row keeps the token's hash, the prepared authorization URL sealed with the secret box, and when
 * the link was spent; opening it binds the flow to that browser (browser_binding, 0011_oauth_flow_binding).
 * Columns on oauth_flows (not memory): any control-plane replica may serve the admin's browser.
 * Frozen in time: `Kysely<any>`, no app types.
 */
import type { Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- migrations must not depend on app types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('oauth_flows').addColumn('start_link_hash', 'text').execute();
  await db.schema.alterTable('oauth_flows').addColumn('start_url', 'text').execute();
  await db.schema.alterTable('oauth_flows').addColumn('start_link_used_at', 'text').execute();
  await db.schema.createIndex('oauth_flows_start_link_hash').unique().on('oauth_flows').column('start_link_hash').execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- see above
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('oauth_flows_start_link_hash').execute();
  await db.schema.alterTable('oauth_flows').dropColumn('start_link_used_at').execute();
  await db.schema.alterTable('oauth_flows').dropColumn('start_url').execute();
  await db.schema.alterTable('oauth_flows').dropColumn('start_link_hash').execute();
}
