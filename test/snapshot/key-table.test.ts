/**
 * The compact key table of whole snapshots: round-trips entries, stores each grant list once, refuses a
 * malformed cell with a SnapshotError (so the node keeps its last good snapshot), and builds a runtime in
 * which keys with the same grants share one tools map.
 */
import { describe, expect, it } from 'vitest';
import { buildRuntime } from '../../data-plane/config/runtime.js';
import { SnapshotError } from '../../data-plane/snapshot/errors.js';
import { hashKey } from '../../data-plane/snapshot/key-hash.js';
import { decodeKeyTable, encodeKeyTable } from '../../data-plane/snapshot/key-table.js';
import type { KeyEntry } from '../../data-plane/snapshot/schema.js';
import { buildSnapshot } from '../data-plane/helpers.js';

const entry = (i: number, tools: string[]): KeyEntry => ({
  id: `k${i}`,
  name: `key ${i}`,
  hash: hashKey(`gk_${i}`),
  userId: 'user_1',
  servers: [{ server: 'crm', tools }],
  expiresAt: i === 2 ? '2030-01-01T00:00:00.000Z' : null,
  revoked: i === 1,
});

describe('key table', () => {
  it('round-trips and stores each grant list once', () => {
    const keys = [entry(0, ['*']), entry(1, ['a']), entry(2, ['*']), entry(3, ['a'])];
    const table = encodeKeyTable(keys);
    expect(table.grants).toHaveLength(2);
    expect(table.rows).toHaveLength(28);
    expect(decodeKeyTable(table)).toEqual(keys);
  });

  it('refuses a malformed cell, naming the row', () => {
    const table = encodeKeyTable([entry(0, ['*']), entry(1, ['*'])]);
    const bad = (patch: (rows: Array<string | number | null>) => void) => {
      const rows = [...table.rows];
      patch(rows);
      return () => decodeKeyTable({ grants: table.grants, rows });
    };
    expect(bad((r) => (r[9] = 5))).toThrow(/row 1: id, name, hash and userId/);
    expect(bad((r) => (r[11] = 7))).toThrow(/row 1: grants index/);
    expect(bad((r) => (r[13] = 2))).toThrow(SnapshotError);
    expect(bad((r) => r.pop())).toThrow(/whole number of rows/);
  });

  // Its speed is measured by `npm run bench:scale` (100k keys applied on a real node), not by a timed test.
  it('builds a runtime from the table: 100,000 keys, sharing tools maps', async () => {
    const base = await buildSnapshot({ servers: [{ name: 'crm', url: 'http://x/mcp', toolsToExecute: ['a', 'b'] }], keys: [] });
    const keys = Array.from({ length: 100_000 }, (_, i) => entry(i, i % 2 === 0 ? ['*'] : ['a']));
    const payload = { ...base.payload, keys: [], keyTable: encodeKeyTable(keys) };
    const { runtime } = buildRuntime(payload, base.dataKey, {});
    expect(runtime.keysByHash.size).toBe(100_000);
    const k0 = runtime.keysByHash.get(hashKey('gk_0'))!;
    const k2 = runtime.keysByHash.get(hashKey('gk_2'))!;
    expect(k0.tools).toBe(k2.tools);
    expect(k0.tools.get('crm')).toEqual(new Set(['a', 'b']));
    expect(runtime.keysByHash.get(hashKey('gk_1'))).toMatchObject({ revoked: true, tools: new Map([['crm', new Set(['a'])]]) });
    expect(k2.expiresAtMs).toBe(Date.parse('2030-01-01T00:00:00.000Z'));
  });
});
