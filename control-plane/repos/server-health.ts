/**
 * Upstream health of MCP servers as nodes report it (NodeReport.upstreams, issue 5 item 4): the latest
 * observation per server, whichever node made it, with its scrubbed reason. Not a config change (no
 * version bump, not in snapshots). It does not decide what `McpServer.status` shows (graphql/schema does,
 * combining this with the server's own credential status).
 */
import type { UpstreamHealth, UpstreamStatus } from '../../data-plane/snapshot/stream-protocol.js';
import { UPSTREAM_STATUSES } from '../../data-plane/snapshot/stream-protocol.js';
import type { Db } from './transaction.js';

export interface ServerHealth {
  serverId: string;
  status: UpstreamStatus;
  reason: string | null;
  observedAt: string;
  nodeId: string;
}

/**
 * A node re-confirms every status in every report; the stored time is moved on only when it is this much
 * older, so a fleet of nodes reporting an unchanged status costs no write per report. `statusObservedAt`
 * may therefore lag by up to this long; a change of status or reason is written at once.
 */
export const CONFIRM_EVERY_MS = 30_000;

function toStatus(value: string): UpstreamStatus {
  // Stored by this module only; an unknown value (a newer replica's) reads as unreachable, not as a crash.
  return (UPSTREAM_STATUSES as readonly string[]).includes(value) ? (value as UpstreamStatus) : 'unreachable';
}

/**
 * Stores one node's observations. Several nodes: the latest observation wins (a node that saw the
 * upstream fail after another saw it work is the newer truth, and vice versa), compared in the database
 * so concurrent reports through different replicas cannot write an older one over a newer one. A node's
 * time is capped at the control plane's clock, so a node whose clock runs ahead cannot win for ever.
 * Servers the control plane does not know (deleted, renamed) are ignored.
 */
export async function recordUpstreamHealth(db: Db, nodeId: string, upstreams: readonly UpstreamHealth[], now: number = Date.now()): Promise<void> {
  if (upstreams.length === 0) return;
  const names = [...new Set(upstreams.map((u) => u.server))];
  const servers = await db
    .selectFrom('mcp_servers')
    .leftJoin('mcp_server_health', 'mcp_server_health.server_id', 'mcp_servers.id')
    .select(['mcp_servers.id', 'mcp_servers.name', 'mcp_server_health.status', 'mcp_server_health.reason', 'mcp_server_health.observed_at', 'mcp_server_health.node_id'])
    .where('mcp_servers.name', 'in', names)
    .execute();
  const byName = new Map(servers.map((s) => [s.name, s]));
  for (const upstream of upstreams) {
    const stored = byName.get(upstream.server);
    if (!stored) continue;
    const observedMs = Math.min(Date.parse(upstream.at), now);
    const observedAt = new Date(observedMs).toISOString();
    if (stored.observed_at !== null) {
      const storedMs = Date.parse(stored.observed_at);
      if (observedMs < storedMs) continue;
      const same = stored.status === upstream.status && stored.reason === upstream.reason;
      if (same && observedMs - storedMs < CONFIRM_EVERY_MS) continue;
    }
    const values = { status: upstream.status, reason: upstream.reason, observed_at: observedAt, node_id: nodeId };
    await db
      .insertInto('mcp_server_health')
      .values({ server_id: stored.id, ...values })
      .onConflict((oc) => oc.column('server_id').doUpdateSet(values).where('mcp_server_health.observed_at', '<=', observedAt))
      .execute();
  }
}

export async function getServerHealth(db: Db, serverIds: readonly string[]): Promise<ServerHealth[]> {
  if (serverIds.length === 0) return [];
  const rows = await db.selectFrom('mcp_server_health').selectAll().where('server_id', 'in', [...serverIds]).execute();
  return rows.map((r) => ({ serverId: r.server_id, status: toStatus(r.status), reason: r.reason, observedAt: r.observed_at, nodeId: r.node_id }));
}

/** Every server's health by name (for `/metrics`); servers never observed are absent. */
export async function listServerHealth(db: Db): Promise<Array<{ server: string; status: UpstreamStatus }>> {
  const rows = await db
    .selectFrom('mcp_server_health')
    .innerJoin('mcp_servers', 'mcp_servers.id', 'mcp_server_health.server_id')
    .select(['mcp_servers.name', 'mcp_server_health.status'])
    .execute();
  return rows.map((r) => ({ server: r.name, status: toStatus(r.status) }));
}
