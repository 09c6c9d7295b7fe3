/**
 * Binds a per-user authorization flow to the browser that started it (issue 6): the hash of a cookie set
 * when the connect page sends the person to the authorization server. The callback refuses a flow whose
 * cookie is missing or different, so nobody can make someone else complete an authorization that links
 * the victim's upstream account to another Gatehouse user. Frozen in time: `Kysely<any>`, no app types.
 */
import type { Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- migrations must not depend on app types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('oauth_flows').addColumn('browser_binding', 'text').execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- see above
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('oauth_flows').dropColumn('browser_binding').execute();
}
