/**
 * Admin-token storage on every test dialect: the first-start bootstrap token (generated or from the
 * environment, never resurrected once revoked) and verification of presented tokens.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { hashToken } from '../../../control-plane/crypto/tokens.js';
import {
  authenticateAdminToken,
  createAdminToken,
  ensureBootstrapAdminToken,
  revokeAdminToken,
} from '../../../control-plane/repos/admin-tokens.js';
import { InputError } from '../../../control-plane/repos/errors.js';
import { openTestDatabase, testDialects, type TestDatabase } from '../../support/db.js';

const ENV_TOKEN = 'gha_fromTheEnvironment_0123456789abcdefghij';

describe.each(testDialects)('admin tokens on %s', (dialect) => {
  let t: TestDatabase;
  beforeEach(async () => {
    t = await openTestDatabase(dialect);
  });
  afterEach(async () => {
    await t?.close();
  });

  it('generates a bootstrap ADMIN token once, when none exists', async () => {
    const first = await ensureBootstrapAdminToken(t.db, undefined);
    expect(first.created).toBe(true);
    expect(first.token).toMatch(/^gha_/);
    expect(await authenticateAdminToken(t.db, first.token ?? '')).toMatchObject({ name: 'bootstrap', role: 'ADMIN' });
    expect(await ensureBootstrapAdminToken(t.db, undefined)).toEqual({ created: false });
    const rows = await t.db.selectFrom('admin_tokens').selectAll().execute();
    expect(rows).toHaveLength(1);
    expect(rows[0]?.token_hash).toBe(hashToken(first.token ?? ''));
  });

  it('adds the environment token (hash only), even when other tokens exist, and only once', async () => {
    await ensureBootstrapAdminToken(t.db, undefined);
    // The generated bootstrap token is replaced by the environment's (README: "set it to choose it yourself instead").
    expect(await ensureBootstrapAdminToken(t.db, ENV_TOKEN)).toEqual({ created: true, revokedBootstrapTokens: 1 });
    expect(await ensureBootstrapAdminToken(t.db, ENV_TOKEN)).toEqual({ created: false });
    const rows = await t.db.selectFrom('admin_tokens').selectAll().execute();
    expect(rows).toHaveLength(2);
    expect(JSON.stringify(rows)).not.toContain(ENV_TOKEN);
    expect(await authenticateAdminToken(t.db, ENV_TOKEN)).toMatchObject({ role: 'ADMIN' });
  });

  it('does not undo a revocation of the environment token on restart', async () => {
    await ensureBootstrapAdminToken(t.db, ENV_TOKEN);
    await createAdminToken(t.db, { name: 'second admin', role: 'ADMIN' });
    const envRow = await t.db.selectFrom('admin_tokens').select('id').where('token_hash', '=', hashToken(ENV_TOKEN)).executeTakeFirstOrThrow();
    await revokeAdminToken(t.db, envRow.id);
    expect(await ensureBootstrapAdminToken(t.db, ENV_TOKEN)).toEqual({ created: false });
    expect(await authenticateAdminToken(t.db, ENV_TOKEN)).toBeNull();
  });

  it('a new environment value rotates: earlier bootstrap tokens are revoked, created tokens stay, an old value never returns', async () => {
    const generated = await ensureBootstrapAdminToken(t.db, undefined);
    const automation = await createAdminToken(t.db, { name: 'automation', role: 'ADMIN' });
    const rotated = 'gha_rotatedInTheEnvironment_9876543210zyxwv';
    expect(await ensureBootstrapAdminToken(t.db, ENV_TOKEN)).toEqual({ created: true, revokedBootstrapTokens: 1 });
    expect(await authenticateAdminToken(t.db, generated.token ?? '')).toBeNull();
    expect(await ensureBootstrapAdminToken(t.db, rotated)).toEqual({ created: true, revokedBootstrapTokens: 1 });
    expect(await authenticateAdminToken(t.db, ENV_TOKEN)).toBeNull();
    expect(await authenticateAdminToken(t.db, rotated)).toMatchObject({ name: 'bootstrap', role: 'ADMIN' });
    expect(await authenticateAdminToken(t.db, automation.token)).toMatchObject({ name: 'automation' });
    // A replica still configured with the old value (a rolling deploy) changes nothing.
    expect(await ensureBootstrapAdminToken(t.db, ENV_TOKEN)).toEqual({ created: false });
    expect(await authenticateAdminToken(t.db, ENV_TOKEN)).toBeNull();
    expect(await authenticateAdminToken(t.db, rotated)).not.toBeNull();
  });

  it('refuses a short environment token', async () => {
    await expect(ensureBootstrapAdminToken(t.db, 'short')).rejects.toThrow(/at least 16/);
  });

  it('verifies tokens: unknown and revoked fail, last-used is recorded', async () => {
    const { token } = await ensureBootstrapAdminToken(t.db, undefined);
    const viewer = await createAdminToken(t.db, { name: 'ro', role: 'VIEWER' });
    expect(await authenticateAdminToken(t.db, 'gha_unknown')).toBeNull();
    expect(await authenticateAdminToken(t.db, '')).toBeNull();
    expect(await authenticateAdminToken(t.db, viewer.token)).toMatchObject({ role: 'VIEWER', name: 'ro' });
    const row = await t.db.selectFrom('admin_tokens').select('last_used_at').where('id', '=', viewer.adminToken.id).executeTakeFirstOrThrow();
    expect(row.last_used_at).not.toBeNull();
    await revokeAdminToken(t.db, viewer.adminToken.id);
    expect(await authenticateAdminToken(t.db, viewer.token)).toBeNull();
    expect(await authenticateAdminToken(t.db, token ?? '')).not.toBeNull();
  });

  it('refuses to revoke the last active ADMIN token', async () => {
    await ensureBootstrapAdminToken(t.db, undefined);
    const only = await t.db.selectFrom('admin_tokens').select('id').executeTakeFirstOrThrow();
    const error = await revokeAdminToken(t.db, only.id).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).code).toBe('LAST_ADMIN_TOKEN');
  });
});
