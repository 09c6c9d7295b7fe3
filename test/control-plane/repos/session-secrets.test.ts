/**
 * Session secrets on every test dialect: created once (two replicas racing create one), stored sealed
 * under the master key, rotated with the old secret kept as previous and the one before retired, and every
 * creation or rotation bumps the config version so nodes get a snapshot with the new secrets.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SecretBox } from '../../../control-plane/crypto/secret-box.js';
import { currentConfigVersion } from '../../../control-plane/repos/config-state.js';
import {
  ensureSessionSecret,
  getSessionSecretsInfo,
  openSessionSecretRow,
  readSessionSecretRows,
  rotateSessionSecret,
} from '../../../control-plane/repos/session-secrets.js';
import { openTestDatabase, testDialects, type TestDatabase } from '../../support/db.js';

describe.each(testDialects)('session secrets on %s', (dialect) => {
  let t: TestDatabase;
  const box = new SecretBox(randomBytes(32));

  beforeAll(async () => {
    t = await openTestDatabase(dialect);
  });
  afterAll(async () => {
    await t?.close();
  });

  it('are created once, even by replicas starting together, and creation is a config change', async () => {
    const before = await currentConfigVersion(t.db);
    const created = await Promise.all([ensureSessionSecret(t.db, box), ensureSessionSecret(t.db, box), ensureSessionSecret(t.db, box)]);
    expect(created.filter(Boolean)).toHaveLength(1);
    const rows = await readSessionSecretRows(t.db);
    expect(rows.map((r) => r.role)).toEqual(['current']);
    expect(await currentConfigVersion(t.db)).toBeGreaterThan(before);
    // Once there is one, starting again changes nothing.
    const version = await currentConfigVersion(t.db);
    expect(await ensureSessionSecret(t.db, box)).toBe(false);
    expect(await currentConfigVersion(t.db)).toBe(version);
  });

  it('are stored sealed under the master key and open to 32 random bytes', async () => {
    const [row] = await readSessionSecretRows(t.db);
    if (!row) throw new Error('no secret');
    expect(row.secret.startsWith('enc:v1:')).toBe(true);
    const opened = openSessionSecretRow(box, row);
    expect(Buffer.from(opened.secret, 'base64url')).toHaveLength(32);
    expect(row.secret).not.toContain(opened.secret);
    expect(() => openSessionSecretRow(new SecretBox(randomBytes(32)), row)).toThrow();
    // A ciphertext moved to another id does not open (the AAD names the id).
    expect(() => openSessionSecretRow(box, { ...row, id: 'other' })).toThrow();
  });

  it('rotate: the new secret is current, the old one previous, the one before is retired; each rotation is a config change', async () => {
    const first = await getSessionSecretsInfo(t.db);
    const v0 = await currentConfigVersion(t.db);
    const second = await rotateSessionSecret(t.db, box);
    expect(second.previous?.id).toBe(first.current?.id);
    expect(second.current?.id).not.toBe(first.current?.id);
    expect(await currentConfigVersion(t.db)).toBe(v0 + 1);
    const third = await rotateSessionSecret(t.db, box);
    expect(third.previous?.id).toBe(second.current?.id);
    const ids = (await readSessionSecretRows(t.db)).map((r) => r.id);
    expect(ids).not.toContain(first.current?.id);
    expect(ids).toHaveLength(2);
    expect(await currentConfigVersion(t.db)).toBe(v0 + 2);
  });

  it('rotations racing each other serialise and leave exactly one current and one previous', async () => {
    await Promise.all([rotateSessionSecret(t.db, box), rotateSessionSecret(t.db, box), rotateSessionSecret(t.db, box)]);
    expect((await readSessionSecretRows(t.db)).map((r) => r.role).sort()).toEqual(['current', 'previous']);
  });
});
