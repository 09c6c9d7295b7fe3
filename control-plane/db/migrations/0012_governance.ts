/**
 * Governance (issue 7): access profiles (templates keys are allocated from), limits on keys and users
 * (budgets as JSON `[{maxUsd, period}]`, a rate limit `{requestsPerMinute, tokensPerMinute}`, and what a
 * node does while the shared counters are unreachable), LLM providers (in snapshots: change-tracked), and
 * the spend nodes report (one row per request id, so a report retried after a lost answer counts once).
 * Costs are integer nano-USD: sums are exact on both dialects. Frozen in time: `Kysely<any>`, no app types.
 */
import type { Kysely } from 'kysely';
import { trackTableChanges } from './0004_change_tracking.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- migrations must not depend on app types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('access_profiles')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull().unique())
    .addColumn('description', 'text')
    .addColumn('servers', 'text', (c) => c.notNull().defaultTo('[]'))
    .addColumn('budgets', 'text', (c) => c.notNull().defaultTo('[]'))
    .addColumn('rate_limit', 'text')
    .addColumn('limits_fallback', 'text', (c) => c.notNull().defaultTo('FAIL_CLOSED'))
    .addColumn('key_lifetime_days', 'integer')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();

  await db.schema.alterTable('virtual_keys').addColumn('budgets', 'text', (c) => c.notNull().defaultTo('[]')).execute();
  await db.schema.alterTable('virtual_keys').addColumn('rate_limit', 'text').execute();
  await db.schema.alterTable('virtual_keys').addColumn('limits_fallback', 'text', (c) => c.notNull().defaultTo('FAIL_CLOSED')).execute();
  await db.schema.alterTable('virtual_keys').addColumn('access_profile_id', 'text').execute();
  await db.schema.createIndex('virtual_keys_access_profile_id').on('virtual_keys').column('access_profile_id').execute();
  await db.schema.alterTable('users').addColumn('budgets', 'text', (c) => c.notNull().defaultTo('[]')).execute();

  await db.schema
    .createTable('providers')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull().unique())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('base_url', 'text', (c) => c.notNull())
    .addColumn('api_key', 'text', (c) => c.notNull())
    .addColumn('prices', 'text', (c) => c.notNull().defaultTo('[]'))
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();
  await trackTableChanges(db, 'providers');

  await db.schema
    .createTable('spend_events')
    .addColumn('request_id', 'text', (c) => c.primaryKey())
    .addColumn('key_id', 'text', (c) => c.notNull())
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('node_id', 'text', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('model', 'text')
    .addColumn('input_tokens', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('output_tokens', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('cache_creation_tokens', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('cache_read_tokens', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('cost_nanos', 'bigint', (c) => c.notNull())
    .addColumn('at', 'text', (c) => c.notNull())
    .addColumn('recorded_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('spend_events_key_at').on('spend_events').columns(['key_id', 'at']).execute();
  await db.schema.createIndex('spend_events_user_at').on('spend_events').columns(['user_id', 'at']).execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- see above
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('spend_events').execute();
  await db.schema.dropTable('providers').execute();
  await db.schema.dropTable('access_profiles').execute();
}
