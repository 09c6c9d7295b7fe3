/**
 * The config version on every test dialect: each bump returns the next value, a rolled-back change leaves
 * no trace, and concurrent config changes get distinct, gap-free versions (the row lock serialises them).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bumpConfigVersion, currentConfigVersion } from '../../../control-plane/repos/config-state.js';
import { createUser } from '../../../control-plane/repos/users.js';
import { InputError } from '../../../control-plane/repos/errors.js';
import { openTestDatabase, testDialects, type TestDatabase } from '../../support/db.js';

describe.each(testDialects)('config version on %s', (dialect) => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await openTestDatabase(dialect);
  });
  afterAll(async () => {
    await t?.close();
  });

  it('starts at 1 and bumps by one inside a transaction', async () => {
    expect(await currentConfigVersion(t.db)).toBe(1);
    const next = await t.db.transaction().execute((trx) => bumpConfigVersion(trx));
    expect(next).toBe(2);
    expect(await currentConfigVersion(t.db)).toBe(2);
  });

  it('rolls back with the change that failed', async () => {
    const before = await currentConfigVersion(t.db);
    await expect(createUser(t.db, { email: 'not an email' })).rejects.toBeInstanceOf(InputError);
    await createUser(t.db, { email: 'once@example.com' });
    await expect(createUser(t.db, { email: 'once@example.com' })).rejects.toMatchObject({ code: 'EMAIL_TAKEN' });
    expect(await currentConfigVersion(t.db)).toBe(before + 1);
  });

  it('gives concurrent changes distinct consecutive versions', async () => {
    const before = await currentConfigVersion(t.db);
    const versions = await Promise.all(
      Array.from({ length: 8 }, () => t.db.transaction().execute((trx) => bumpConfigVersion(trx))),
    );
    expect([...versions].sort((a, b) => a - b)).toEqual(Array.from({ length: 8 }, (_, i) => before + 1 + i));
    expect(await currentConfigVersion(t.db)).toBe(before + 8);
  });
});
