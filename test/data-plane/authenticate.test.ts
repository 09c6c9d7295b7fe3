/** `authenticate` is pure: Runtime + header + clock in, key or code out. No HTTP needed. */
import { beforeAll, describe, expect, it } from 'vitest';
import { authenticate } from '../../data-plane/auth/authenticate.js';
import { buildRuntime, type Runtime } from '../../data-plane/config/runtime.js';
import { hashKey } from '../../data-plane/snapshot/key-hash.js';
import { buildSnapshot, type BuiltSnapshot } from './helpers.js';

let runtime: Runtime;
let snap: BuiltSnapshot;
const NOW = Date.parse('2030-06-01T00:00:00Z');

beforeAll(async () => {
  snap = await buildSnapshot({
    servers: [],
    keys: [
      { name: 'ok', servers: [] },
      { name: 'soon', servers: [], expiresAt: '2030-06-01T00:00:01Z' },
      { name: 'expired', servers: [], expiresAt: '2030-06-01T00:00:00Z' },
      { name: 'revoked', servers: [], revoked: true, expiresAt: '2000-01-01T00:00:00Z' },
      { name: 'garbled', servers: [], expiresAt: 'not-a-date' },
    ],
  });
  runtime = buildRuntime(snap.payload, snap.dataKey, {}).runtime;
});

const bearer = (name: string) => `Bearer ${snap.keyValues[name]}`;

describe('authenticate', () => {
  it('accepts a valid key and returns it with its user', () => {
    const result = authenticate(runtime, bearer('ok'), NOW);
    expect(result.ok).toBe(true);
    if (result.ok) {
      expect(result.key.name).toBe('ok');
      expect(result.user.id).toBe('user_1');
      expect(result.token).toBe(snap.keyValues.ok);
    }
    // Scheme is case-insensitive (RFC 6750 / RFC 7235).
    expect(authenticate(runtime, `bearer ${snap.keyValues.ok}`, NOW).ok).toBe(true);
  });

  it('virtual_key_required without a usable Bearer header', () => {
    for (const header of [undefined, '', 'Bearer', 'Bearer ', 'Basic abc', `Token ${snap.keyValues.ok}`]) {
      expect(authenticate(runtime, header, NOW)).toEqual({ ok: false, code: 'virtual_key_required' });
    }
  });

  it('invalid_key for an unknown or oversized key', () => {
    expect(authenticate(runtime, 'Bearer gk_unknown', NOW)).toMatchObject({ ok: false, code: 'invalid_key' });
    expect(authenticate(runtime, `Bearer ${'x'.repeat(10_000)}`, NOW)).toEqual({ ok: false, code: 'invalid_key' });
  });

  it('key_revoked before key_expired; expiry is inclusive of the instant', () => {
    expect(authenticate(runtime, bearer('revoked'), NOW)).toMatchObject({ ok: false, code: 'key_revoked' });
    expect(authenticate(runtime, bearer('expired'), NOW)).toMatchObject({ ok: false, code: 'key_expired' });
    expect(authenticate(runtime, bearer('soon'), NOW).ok).toBe(true);
    expect(authenticate(runtime, bearer('soon'), NOW + 1_000)).toMatchObject({ ok: false, code: 'key_expired' });
  });

  it('treats an unparseable expiry as expired (fail closed)', () => {
    expect(authenticate(runtime, bearer('garbled'), NOW)).toMatchObject({ ok: false, code: 'key_expired' });
  });

  it('a refusal names the presented key by its hash (for the audit trail), never by value', () => {
    const unknown = authenticate(runtime, 'Bearer gk_unknown_key_value', NOW);
    expect(unknown).toEqual({ ok: false, code: 'invalid_key', keyHash: hashKey('gk_unknown_key_value') });
    expect(JSON.stringify(unknown)).not.toContain('gk_unknown_key_value');
    const revoked = authenticate(runtime, bearer('revoked'), NOW);
    expect(revoked).toMatchObject({ code: 'key_revoked', keyHash: hashKey(snap.keyValues.revoked!) });
    expect(revoked.ok ? null : revoked.keyId).toEqual(expect.any(String));
  });
});
