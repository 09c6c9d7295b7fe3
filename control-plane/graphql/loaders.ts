/**
 * Per-request batch loaders, so a page of 20 keys asks for their 20 owners in one query instead of 20.
 * Caches live for one request only: a mutation's payload never reads a stale entity from another request.
 */
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { getMcpServersByNames, type McpServer } from '../repos/mcp-servers.js';
import { getUsersByIds, type User } from '../repos/users.js';

export class BatchLoader<K, V> {
  private readonly cache = new Map<K, Promise<V | null>>();
  private pending: Array<{ key: K; resolve: (v: V | null) => void; reject: (e: unknown) => void }> = [];

  constructor(private readonly batch: (keys: K[]) => Promise<Map<K, V>>) {}

  load(key: K): Promise<V | null> {
    const cached = this.cache.get(key);
    if (cached) return cached;
    const promise = new Promise<V | null>((resolve, reject) => {
      this.pending.push({ key, resolve, reject });
      // Dispatch after the resolvers of sibling list items have all queued their keys (graphql-js calls
      // them in the same tick); the same trick dataloader uses.
      if (this.pending.length === 1) void Promise.resolve().then(() => process.nextTick(() => void this.dispatch()));
    });
    this.cache.set(key, promise);
    return promise;
  }

  private async dispatch(): Promise<void> {
    const pending = this.pending;
    this.pending = [];
    try {
      const found = await this.batch([...new Set(pending.map((p) => p.key))]);
      for (const p of pending) p.resolve(found.get(p.key) ?? null);
    } catch (error) {
      for (const p of pending) p.reject(error);
    }
  }
}

export interface Loaders {
  userById: BatchLoader<string, User>;
  serverByName: BatchLoader<string, McpServer>;
}

export function createLoaders(db: Kysely<Database>): Loaders {
  return {
    userById: new BatchLoader(async (ids) => new Map((await getUsersByIds(db, ids)).map((u) => [u.id, u]))),
    serverByName: new BatchLoader(async (names) => new Map((await getMcpServersByNames(db, names)).map((s) => [s.name, s]))),
  };
}
