/**
 * The audit store (issue 8): `audit_events`, append-only and hash-chained per partition (one partition per
 * control-plane process: each writes its own chain, so replicas never contend for a chain head);
 * `audit_checkpoints`, signed heads of those chains; `audit_settings`, per key and per server content
 * logging and guardrail policy, which nodes receive in snapshots (so it is change-tracked).
 *
 * `row_id` is the store's arrival order (paging, `audit tail`); `(partition, seq)` is the chain order.
 * Frozen in time like every migration: `Kysely<any>`, no app types.
 */
import type { Kysely } from 'kysely';
import { isPostgres, trackTableChanges } from './0004_change_tracking.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- migrations must not depend on app types
type AnyDb = Kysely<any>;

export async function up(db: AnyDb): Promise<void> {
  const pg = isPostgres(db);
  await db.schema
    .createTable('audit_events')
    .addColumn('row_id', pg ? 'bigserial' : 'integer', (c) => (pg ? c.primaryKey() : c.primaryKey().autoIncrement()))
    .addColumn('id', 'text', (c) => c.notNull().unique())
    .addColumn('partition', 'text', (c) => c.notNull())
    .addColumn('seq', 'bigint', (c) => c.notNull())
    .addColumn('time', 'text', (c) => c.notNull())
    .addColumn('received_at', 'text', (c) => c.notNull())
    .addColumn('node', 'text', (c) => c.notNull())
    .addColumn('key_id', 'text')
    .addColumn('user_id', 'text')
    .addColumn('server', 'text')
    .addColumn('tool', 'text')
    .addColumn('outcome', 'text', (c) => c.notNull())
    .addColumn('event', 'text', (c) => c.notNull())
    .addColumn('prev_hash', 'text', (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull())
    .addUniqueConstraint('audit_events_chain', ['partition', 'seq'])
    .execute();
  await db.schema.createIndex('audit_events_time').on('audit_events').columns(['time', 'row_id']).execute();
  await db.schema.createIndex('audit_events_key').on('audit_events').columns(['key_id', 'row_id']).execute();
  await db.schema.createIndex('audit_events_user').on('audit_events').columns(['user_id', 'row_id']).execute();
  await db.schema.createIndex('audit_events_server').on('audit_events').columns(['server', 'tool', 'row_id']).execute();
  await db.schema.createIndex('audit_events_received').on('audit_events').columns(['received_at']).execute();

  await db.schema
    .createTable('audit_checkpoints')
    .addColumn('partition', 'text', (c) => c.notNull())
    .addColumn('seq', 'bigint', (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('kid', 'text', (c) => c.notNull())
    .addColumn('jws', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('audit_checkpoints_pk', ['partition', 'seq'])
    .execute();

  await db.schema
    .createTable('audit_settings')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('scope', 'text', (c) => c.notNull())
    .addColumn('target', 'text', (c) => c.notNull())
    .addColumn('content_logging', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('guardrail', 'text', (c) => c.notNull().defaultTo('off'))
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addUniqueConstraint('audit_settings_target', ['scope', 'target'])
    .execute();
  await trackTableChanges(db, 'audit_settings');
}

export async function down(db: AnyDb): Promise<void> {
  await db.schema.dropTable('audit_settings').execute();
  await db.schema.dropTable('audit_checkpoints').execute();
  await db.schema.dropTable('audit_events').execute();
}
