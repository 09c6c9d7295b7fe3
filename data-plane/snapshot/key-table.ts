/**
 * The compact form of a whole snapshot's keys (issue 11): one flat JSON array of 7 cells per key, with
 * grant lists stored once and referenced by index. 100,000 keys then parse as one array of primitives
 * instead of 100,000 objects with nested grant objects (less than half the bytes, a fraction of the
 * allocations), and `forEachKeyRow` validates each cell by type as it goes, allocating nothing per field.
 *
 * Row layout: `[id, name, hash, userId, grantsIndex, expiresAt | null, revoked (0|1)]`.
 * Part of the snapshot contract (both planes import it); no I/O.
 */
import { SnapshotError } from './errors.js';
import type { KeyEntry, KeyServerGrant } from './schema.js';

export const KEY_ROW_CELLS = 7;

export interface KeyTable {
  /** Distinct grant lists; rows point into this array. */
  grants: KeyServerGrant[][];
  rows: Array<string | number | null>;
}

/** Control-plane side: keys → table, each distinct grant list stored once. */
export function encodeKeyTable(keys: Iterable<KeyEntry>): KeyTable {
  const grants: KeyServerGrant[][] = [];
  const index = new Map<string, number>();
  const rows: Array<string | number | null> = [];
  for (const key of keys) {
    const text = JSON.stringify(key.servers);
    let at = index.get(text);
    if (at === undefined) {
      at = grants.length;
      grants.push(key.servers);
      index.set(text, at);
    }
    rows.push(key.id, key.name, key.hash, key.userId, at, key.expiresAt, key.revoked ? 1 : 0);
  }
  return { grants, rows };
}

export type KeyRowVisitor = (id: string, name: string, hash: string, userId: string, grantsIndex: number, expiresAt: string | null, revoked: boolean) => void;

function malformed(row: number, what: string): never {
  throw new SnapshotError('malformed', `snapshot key table row ${row}: ${what}`);
}

/** Validates and visits every row; throws `SnapshotError('malformed')` at the first bad cell. */
export function forEachKeyRow(table: KeyTable, visit: KeyRowVisitor): void {
  const { rows, grants } = table;
  if (!Array.isArray(rows) || rows.length % KEY_ROW_CELLS !== 0) malformed(0, 'rows is not a whole number of rows');
  for (let i = 0; i < rows.length; i += KEY_ROW_CELLS) {
    const id = rows[i];
    const name = rows[i + 1];
    const hash = rows[i + 2];
    const userId = rows[i + 3];
    const g = rows[i + 4];
    const expiresAt = rows[i + 5];
    const revoked = rows[i + 6];
    const row = i / KEY_ROW_CELLS;
    if (typeof id !== 'string' || typeof name !== 'string' || typeof hash !== 'string' || typeof userId !== 'string') malformed(row, 'id, name, hash and userId must be strings');
    if (typeof g !== 'number' || !Number.isInteger(g) || g < 0 || g >= grants.length) malformed(row, 'grants index out of range');
    if (expiresAt !== null && typeof expiresAt !== 'string') malformed(row, 'expiresAt must be a string or null');
    if (revoked !== 0 && revoked !== 1) malformed(row, 'revoked must be 0 or 1');
    visit(id, name, hash, userId, g, expiresAt, revoked === 1);
  }
}

/** Table → entries (tests, tools; the node builds its runtime from rows directly). */
export function decodeKeyTable(table: KeyTable): KeyEntry[] {
  const out: KeyEntry[] = [];
  forEachKeyRow(table, (id, name, hash, userId, g, expiresAt, revoked) => {
    out.push({ id, name, hash, userId, servers: table.grants[g] ?? [], expiresAt, revoked });
  });
  return out;
}
