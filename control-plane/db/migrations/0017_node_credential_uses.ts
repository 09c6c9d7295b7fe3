/**
 * Node credentials already used (`node_credential_uses`): each per-node credential (a JWT, data-plane/
 * snapshot/node-credential.ts) is single-use. Its `jti` is kept until the credential could no longer verify
 * anyway (its `exp` plus the verifier's clock tolerance), so a credential captured in transit cannot be
 * replayed to the same route within its lifetime (for example to post forged audit events as that node).
 * A table rather than process memory: several control-plane replicas over one PostgreSQL must refuse a
 * credential replayed to another replica than the one it was used on.
 * Frozen in time: `Kysely<any>`, no app types.
 */
import type { Kysely } from 'kysely';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- migrations must not depend on app types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('node_credential_uses')
    .addColumn('node_id', 'text', (c) => c.notNull())
    .addColumn('jti', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('node_credential_uses_pk', ['node_id', 'jti'])
    .execute();
  await db.schema.createIndex('node_credential_uses_expiry').on('node_credential_uses').column('expires_at').execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- see above
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('node_credential_uses').execute();
}
