/**
 * Data-plane nodes as the control plane last heard from them: reports (applied version, missing env vars,
 * last rejected snapshot, health) and stream connection state. Not a config change. It does not verify
 * node identity (the node stream handler does) or decide what nodes receive.
 */
import { z } from 'zod';
import type { NodeReport } from '../../data-plane/snapshot/stream-protocol.js';
import type { NodeRow } from '../db/schema.js';
import { applyKeysetPage, encodeCursor, type PageRequest } from './pagination.js';
import { nowIso, type Db } from './transaction.js';

export interface DataPlaneNode {
  id: string;
  appliedVersion: number | null;
  missingEnv: Array<{ name: string; servers: string[] }>;
  lastRejection: { code: string; message: string; at: string } | null;
  health: string;
  connected: boolean;
  startedAt: string | null;
  lastSeenAt: string;
}

const MissingEnvSchema = z.array(z.object({ name: z.string(), servers: z.array(z.string()) }));
const RejectionSchema = z.object({ code: z.string(), message: z.string(), at: z.string() });

function toNode(row: NodeRow): DataPlaneNode {
  return {
    id: row.id,
    appliedVersion: row.applied_version === null ? null : Number(row.applied_version),
    missingEnv: MissingEnvSchema.parse(JSON.parse(row.missing_env)),
    lastRejection: row.last_rejection === null ? null : RejectionSchema.parse(JSON.parse(row.last_rejection)),
    health: row.health,
    connected: row.connected !== 0,
    startedAt: row.started_at,
    lastSeenAt: row.last_seen_at,
  };
}

export async function getNode(db: Db, id: string): Promise<DataPlaneNode | null> {
  const row = await db.selectFrom('nodes').selectAll().where('id', '=', id).executeTakeFirst();
  return row ? toNode(row) : null;
}

/** Ordered by node id: nodes have no creation time of their own. */
export async function listNodes(db: Db, page: PageRequest): Promise<DataPlaneNode[]> {
  const rows = await applyKeysetPage(db.selectFrom('nodes').selectAll(), ['id'], page).execute();
  return rows.map(toNode);
}

export function nodeCursor(node: DataPlaneNode): string {
  return encodeCursor([node.id]);
}

/** Upserts what a node reported (a validated `NodeReport`); the node counts as seen now. */
export async function recordNodeReport(db: Db, report: NodeReport, at: string = nowIso()): Promise<void> {
  const values = {
    applied_version: report.appliedVersion,
    missing_env: JSON.stringify(report.missingEnv),
    last_rejection: report.lastRejection === null ? null : JSON.stringify(report.lastRejection),
    health: report.health,
    started_at: report.startedAt,
    last_seen_at: at,
  };
  await db
    .insertInto('nodes')
    .values({ id: report.nodeId, connected: 0, ...values })
    .onConflict((oc) => oc.column('id').doUpdateSet(values))
    .execute();
}

/** Marks a node's stream as open or closed; a node first seen by its stream starts as UNKNOWN health. */
export async function setNodeConnected(db: Db, id: string, connected: boolean, at: string = nowIso()): Promise<void> {
  await db
    .insertInto('nodes')
    .values({ id, connected: connected ? 1 : 0, health: 'UNKNOWN', missing_env: '[]', last_seen_at: at })
    .onConflict((oc) => oc.column('id').doUpdateSet({ connected: connected ? 1 : 0, last_seen_at: at }))
    .execute();
}
