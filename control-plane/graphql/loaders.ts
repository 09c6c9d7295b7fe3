/**
 * Per-request batch loaders (the `dataloader` package, which Pothos's dataloader plugin is built on), so a
 * page of 20 keys asks for their 20 owners in one query instead of 20. Caches live for one request only: a
 * mutation's payload never reads a stale entity from another request. Used directly rather than through
 * the Pothos plugin: two lookups do not justify turning the object types into loadable ones.
 */
import DataLoader from 'dataloader';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { getMcpServersByNames, type McpServer } from '../repos/mcp-servers.js';
import { getServerHealth, type ServerHealth } from '../repos/server-health.js';
import { getUsersByIds, type User } from '../repos/users.js';

export interface Loaders {
  userById: DataLoader<string, User | null>;
  serverByName: DataLoader<string, McpServer | null>;
  /** Upstream health by server id (a page of servers asks once). */
  healthByServerId: DataLoader<string, ServerHealth | null>;
}

/** A batch function that answers every key in order, null for the ones not found (dataloader's contract). */
function byKey<K, V>(fetch: (keys: readonly K[]) => Promise<V[]>, keyOf: (value: V) => K) {
  return async (keys: readonly K[]): Promise<Array<V | null>> => {
    const found = new Map((await fetch(keys)).map((v) => [keyOf(v), v]));
    return keys.map((k) => found.get(k) ?? null);
  };
}

export function createLoaders(db: Kysely<Database>): Loaders {
  return {
    userById: new DataLoader(byKey((ids) => getUsersByIds(db, ids), (u) => u.id)),
    serverByName: new DataLoader(byKey((names) => getMcpServersByNames(db, names), (s) => s.name)),
    healthByServerId: new DataLoader(byKey((ids) => getServerHealth(db, ids), (h) => h.serverId)),
  };
}
