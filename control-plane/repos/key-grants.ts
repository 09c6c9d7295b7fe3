/**
 * The `virtual_keys.servers` column: a JSON list of `{server, tools}` grants that name servers by name (the
 * snapshot's KeyServerGrant shape). Parsing, serialising, and keeping grants true when a server is renamed
 * or deleted (in keys and in access profiles). It does not validate grants against existing servers (virtual-keys.ts does).
 */
import { sql, type Transaction } from 'kysely';
import { z } from 'zod';
import { KeyServerGrantSchema, type KeyServerGrant } from '../../data-plane/snapshot/schema.js';
import type { Database } from '../db/schema.js';
import { nowIso } from './transaction.js';

const GrantsSchema = z.array(KeyServerGrantSchema);

export function parseGrants(json: string): KeyServerGrant[] {
  return GrantsSchema.parse(JSON.parse(json));
}

/** Compact JSON (no spaces), which `keysMentioning` relies on to narrow its scan. */
export function serializeGrants(grants: readonly KeyServerGrant[]): string {
  return JSON.stringify(grants.map((g) => ({ server: g.server, tools: g.tools })));
}

/**
 * Keys whose grants may name `server`. The LIKE only narrows the scan (its `_` wildcard and SQLite's
 * case-insensitivity can over-match); callers re-check the parsed grants.
 */
async function keysMentioning(trx: Transaction<Database>, server: string) {
  const pattern = `%${JSON.stringify({ server }).slice(1, -1)}%`;
  return trx
    .selectFrom('virtual_keys')
    .select(['id', 'servers'])
    .where(sql.ref('servers'), 'like', pattern)
    .execute();
}

/**
 * Rewrites grants after a server rename, so keys keep their access and no grant is left pointing at a
 * name a future server could take.
 */
export async function renameServerInGrants(trx: Transaction<Database>, oldName: string, newName: string): Promise<number> {
  let changed = 0;
  for (const row of await keysMentioning(trx, oldName)) {
    const grants = parseGrants(row.servers);
    if (!grants.some((g) => g.server === oldName)) continue;
    const next = grants.map((g) => (g.server === oldName ? { ...g, server: newName } : g));
    await trx.updateTable('virtual_keys').set({ servers: serializeGrants(next), updated_at: nowIso() }).where('id', '=', row.id).execute();
    changed++;
  }
  return changed;
}

/**
 * Drops grants for a deleted server: otherwise a server created later under the same name would be
 * reachable by every key that could reach the old one.
 */
export async function removeServerFromGrants(trx: Transaction<Database>, name: string): Promise<number> {
  let changed = 0;
  for (const row of await keysMentioning(trx, name)) {
    const grants = parseGrants(row.servers);
    const next = grants.filter((g) => g.server !== name);
    if (next.length === grants.length) continue;
    await trx.updateTable('virtual_keys').set({ servers: serializeGrants(next), updated_at: nowIso() }).where('id', '=', row.id).execute();
    changed++;
  }
  return changed;
}

/** Keeps profile grants true when a server is renamed or deleted (as key-grants.ts does for keys). */
export async function renameServerInProfiles(trx: Transaction<Database>, oldName: string, newName: string | null): Promise<void> {
  for (const row of await trx.selectFrom('access_profiles').select(['id', 'servers']).execute()) {
    const grants = parseGrants(row.servers);
    if (!grants.some((g) => g.server === oldName)) continue;
    const next = newName === null ? grants.filter((g) => g.server !== oldName) : grants.map((g) => (g.server === oldName ? { ...g, server: newName } : g));
    await trx.updateTable('access_profiles').set({ servers: serializeGrants(next), updated_at: nowIso() }).where('id', '=', row.id).execute();
  }
}
