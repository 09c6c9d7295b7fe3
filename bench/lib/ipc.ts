import type { PublishStats } from '../../control-plane/snapshot/publisher.js';

/**
 * Messages between `bench/run.ts` and the control-plane child (`bench/procs/control-plane.ts`), over
 * Node's IPC channel. Plain data only (they are structured-cloned). Every request carries an `id` that
 * its answer repeats, so answers can be matched even if requests overlap.
 */

/** Child → parent, once, when the control plane listens. */
export interface CpReady {
  type: 'ready';
  url: string;
  adminToken: string;
  /** The node token's plaintext, for starting the node process. */
  nodeToken: string | null;
}

/**
 * Bulk-load configuration straight into the database in ONE transaction (one config-version bump as far
 * as nodes can tell), then ask the publisher to compile and push, timing each step. GraphQL would create
 * one key per mutation and one snapshot per key, which is not what is being measured here.
 */
export interface SeedRequest {
  type: 'seed';
  id: number;
  /** Distinguishes names and emails between successive seeds. */
  label: string;
  users: number;
  /** Extra HTTP servers (`srv_<label>_<i>`, HEADERS auth with a sealed secret) pointing at `upstreamUrl`. */
  servers: number;
  keys: number;
  upstreamUrl: string;
  /** Every key is granted `[{server: grantServer, tools: ['*']}]` plus one tool on one extra server. */
  grantServer: string;
  /** How many of the new keys to return with their plaintext values (for revocation probes). */
  reveal: number;
}

export interface SeedResult {
  /** Ids and plaintext values of `reveal` of the inserted keys. */
  revealed: Array<{ id: string; key: string }>;
  /** Rows now in the database (all seeds so far plus what GraphQL created). */
  totals: { users: number; servers: number; keys: number };
  /** Building rows + inserting + commit. */
  insertMs: number;
  /** From commit to the publisher having compiled, signed, wrapped and written the snapshot to every node stream. */
  publishMs: number;
  /** Wall clock (epoch ms, sub-ms precision) when the snapshot was handed to the node streams. */
  publishedAt: number;
  /** Config version of the published snapshot. */
  version: number;
  /** Commit and publish on the monotonic clock (µs), to cut a CPU profile to the publish alone. */
  committedAtUs: number;
  publishedAtUs: number;
}

/** The publisher's last push (control-plane share of a change's latency, bytes, streams). */
export interface StatsRequest {
  type: 'stats';
  id: number;
}

export type PublishStatsResult = PublishStats;

export type CpRequest = SeedRequest | StatsRequest;

export type CpResponse =
  | { type: 'result'; id: number; ok: true; data: SeedResult | PublishStatsResult | null }
  | { type: 'result'; id: number; ok: false; error: string };

export type CpMessage = CpReady | CpResponse;

export function isCpMessage(value: unknown): value is CpMessage {
  return typeof value === 'object' && value !== null && 'type' in value && (value.type === 'ready' || value.type === 'result');
}

export function isCpRequest(value: unknown): value is CpRequest {
  return typeof value === 'object' && value !== null && 'type' in value && (value.type === 'seed' || value.type === 'stats');
}
