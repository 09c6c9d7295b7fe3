/**
 * Sealed MCP session ids (`data-plane/session/`): any node holding the snapshot's session secret opens an
 * id another node sealed; an id presented with another virtual key, a revoked or expired key, on another
 * route, tampered with, sealed under a retired secret, or older than the maximum age is refused with its
 * code; rotation keeps ids sealed under the previous secret usable; and opening costs well under 1 ms.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { deriveSessionKeyring, type SessionSecret } from '../../../data-plane/session/keyring.js';
import {
  DEFAULT_MAX_SESSION_AGE_MS,
  openSession,
  sealSession,
  SessionError,
  type OpenOptions,
  type SessionClaims,
} from '../../../data-plane/session/sealed-session.js';

const secret = (id: string): SessionSecret => ({ id, secret: randomBytes(32).toString('base64url') });
const NOW = Date.UTC(2026, 10, 30, 12);

function claims(extra: Partial<SessionClaims> = {}): SessionClaims {
  return {
    server: 'crm',
    upstream: { crm: 'upstream-session-7f3a' },
    keyId: 'key_alice',
    clientCapabilities: { elicitation: { form: {} }, sampling: {}, roots: { listChanged: true } },
    protocolVersion: '2025-11-25',
    issuedAt: NOW,
    ...extra,
  };
}

const alice = { id: 'key_alice', revoked: false, expiresAtMs: null };
const asAlice: OpenOptions = { key: alice, server: 'crm', now: NOW + 1_000 };

function refusal(fn: () => unknown): string {
  try {
    fn();
    return 'accepted';
  } catch (error) {
    return error instanceof SessionError ? error.code : `unexpected: ${String(error)}`;
  }
}

describe('sealed session ids', () => {
  const s1 = secret('s1');
  const nodeA = deriveSessionKeyring(s1, null);
  // Another node derives its keys from the same snapshot on its own.
  const nodeB = deriveSessionKeyring({ ...s1 }, null);

  it('open on any node that holds the secret, with every claim intact', () => {
    const id = sealSession(nodeA, claims());
    expect(openSession(nodeB, id, asAlice)).toEqual(claims());
  });

  it('are opaque visible-ASCII header values that never show the claims', () => {
    const id = sealSession(nodeA, claims());
    expect(id).toMatch(/^[\x21-\x7e]+$/);
    expect(id.startsWith('v1.s1.')).toBe(true);
    expect(id).not.toContain('upstream-session-7f3a');
    expect(Buffer.from(id.split('.')[2] ?? '', 'base64url').toString('latin1')).not.toContain('upstream-session-7f3a');
    // A fresh IV per seal: the same claims never give the same id.
    expect(sealSession(nodeA, claims())).not.toBe(id);
  });

  it('refuse an id presented with another virtual key', () => {
    const id = sealSession(nodeA, claims());
    expect(refusal(() => openSession(nodeB, id, { ...asAlice, key: { id: 'key_bob', revoked: false, expiresAtMs: null } }))).toBe('other_key');
  });

  it('refuse an id whose key has since been revoked or has expired', () => {
    const id = sealSession(nodeA, claims());
    expect(refusal(() => openSession(nodeB, id, { ...asAlice, key: { ...alice, revoked: true } }))).toBe('key_not_active');
    expect(refusal(() => openSession(nodeB, id, { ...asAlice, key: { ...alice, expiresAtMs: NOW } }))).toBe('key_not_active');
    expect(openSession(nodeB, id, { ...asAlice, key: { ...alice, expiresAtMs: NOW + 60_000 } }).keyId).toBe('key_alice');
  });

  it('refuse an id presented on another route', () => {
    const id = sealSession(nodeA, claims());
    expect(refusal(() => openSession(nodeB, id, { ...asAlice, server: 'billing' }))).toBe('other_server');
    expect(refusal(() => openSession(nodeB, id, { ...asAlice, server: null }))).toBe('other_server');
    const aggregated = sealSession(nodeA, claims({ server: null, upstream: { crm: 'a', billing: 'b' } }));
    expect(openSession(nodeB, aggregated, { ...asAlice, server: null }).upstream).toEqual({ crm: 'a', billing: 'b' });
  });

  it('refuse a tampered id, wherever the change is', () => {
    const id = sealSession(nodeA, claims());
    const [version, secretId, body = ''] = id.split('.');
    const raw = Buffer.from(body, 'base64url');
    for (const index of [0, 5, 12, raw.length - 20, raw.length - 1]) {
      const changed = Buffer.from(raw);
      changed[index] = (changed[index] ?? 0) ^ 0x01;
      expect(refusal(() => openSession(nodeB, `${version}.${secretId}.${changed.toString('base64url')}`, asAlice)), `byte ${index}`).toBe('tampered');
    }
    // Claims sealed for another key cannot be re-labelled: the secret id is authenticated too.
    const other = deriveSessionKeyring(secret('s2'), s1);
    expect(refusal(() => openSession(other, `v1.s2.${body}`, asAlice))).toBe('tampered');
  });

  it('refuse ids that are not sealed ids at all', () => {
    for (const bad of ['', 'abc', 'v1.s1', 'v2.s1.AAAA', 'v1.s1.!!!', 'v1.s1.AAAA', `v1.s1.${'A'.repeat(9000)}`, 'v1..AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA']) {
      expect(refusal(() => openSession(nodeB, bad, asAlice)), bad.slice(0, 30)).toBe('malformed');
    }
  });

  it('refuse an id older than the maximum age, or issued in the future', () => {
    const id = sealSession(nodeA, claims());
    expect(openSession(nodeB, id, { ...asAlice, now: NOW + DEFAULT_MAX_SESSION_AGE_MS }).keyId).toBe('key_alice');
    expect(refusal(() => openSession(nodeB, id, { ...asAlice, now: NOW + DEFAULT_MAX_SESSION_AGE_MS + 1 }))).toBe('expired');
    expect(refusal(() => openSession(nodeB, id, { ...asAlice, now: NOW + 10 * 60_000, maxAgeMs: 5 * 60_000 }))).toBe('expired');
    expect(refusal(() => openSession(nodeB, id, { ...asAlice, now: NOW - 5 * 60_000 }))).toBe('expired');
  });

  it('survive one rotation (the previous secret still opens) and end with the next', () => {
    const s2 = secret('s2');
    const s3 = secret('s3');
    const before = sealSession(nodeA, claims());
    const rotated = deriveSessionKeyring(s2, s1);
    expect(openSession(rotated, before, asAlice).upstream).toEqual({ crm: 'upstream-session-7f3a' });
    const after = sealSession(rotated, claims());
    expect(after.startsWith('v1.s2.')).toBe(true);
    const twice = deriveSessionKeyring(s3, s2);
    expect(openSession(twice, after, asAlice).keyId).toBe('key_alice');
    expect(refusal(() => openSession(twice, before, asAlice))).toBe('unknown_secret');
  });

  it('are bound to the secret id: the same bytes under another id make another key', () => {
    const sameBytes = deriveSessionKeyring({ id: 'renamed', secret: s1.secret }, null);
    const id = sealSession(sameBytes, claims());
    expect(refusal(() => openSession(nodeB, id.replace('v1.renamed.', 'v1.s1.'), asAlice))).toBe('tampered');
  });

  it('refuse a secret too short to be a key', () => {
    expect(() => deriveSessionKeyring({ id: 'short', secret: randomBytes(16).toString('base64url') }, null)).toThrow(/shorter than 32 bytes/);
  });

  it('cost well under a millisecond to seal and to open', () => {
    const rounds = 2_000;
    const ids: string[] = [];
    let start = process.hrtime.bigint();
    for (let i = 0; i < rounds; i++) ids.push(sealSession(nodeA, claims({ upstream: { crm: `upstream-${i}` } })));
    const sealMs = Number(process.hrtime.bigint() - start) / 1e6 / rounds;
    start = process.hrtime.bigint();
    for (const id of ids) openSession(nodeB, id, asAlice);
    const openMs = Number(process.hrtime.bigint() - start) / 1e6 / rounds;
    // Typically ~0.01 ms each; the bound is generous because the machine is shared and noisy.
    expect(sealMs).toBeLessThan(0.5);
    expect(openMs).toBeLessThan(0.5);
  });
});
