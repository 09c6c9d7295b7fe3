/**
 * A node report that fits the control plane's bound (`MAX_NODE_REPORT_BYTES`): a node with many servers or
 * large catalogs would otherwise post a report the control plane refuses whole, losing its health and
 * status with it. What gives way, in order: tool catalogs (operators' convenience; the next report, or
 * another node, carries them), then upstream health entries, reachable ones before those that say
 * something is wrong. The rest of the report (version, missing env, rejection) is always kept.
 *
 * Pure: it measures JSON, it does no I/O and no logging (the link logs what was dropped, once).
 */
import type { NodeReport } from '../snapshot/stream-protocol.js';

export interface FittedReport {
  /** The JSON to post: at most `maxBytes` bytes whenever the report's fixed part fits. */
  readonly body: string;
  readonly droppedCatalogs: number;
  readonly droppedUpstreams: number;
}

type Upstream = NonNullable<NodeReport['upstreams']>[number];

export function fitReport(report: NodeReport, maxBytes: number): FittedReport {
  const whole = JSON.stringify(report);
  if (Buffer.byteLength(whole) <= maxBytes) return { body: whole, droppedCatalogs: 0, droppedUpstreams: 0 };
  const catalogs = report.catalogs ?? [];
  const upstreams = report.upstreams ?? [];
  // The fixed part, with both lists empty; each kept element then costs its JSON plus at most one comma.
  let budget = maxBytes - Buffer.byteLength(JSON.stringify({ ...report, catalogs: [], upstreams: [] }));
  // Health first, the problems before the all-clear; the report keeps its original order otherwise.
  const byConcern = upstreams.map((entry, index) => ({ entry, index })).sort((a, b) => rank(a.entry) - rank(b.entry) || a.index - b.index);
  const keptUpstreams = new Set<number>();
  for (const { entry, index } of byConcern) {
    const cost = Buffer.byteLength(JSON.stringify(entry)) + 1;
    if (cost > budget) continue;
    budget -= cost;
    keptUpstreams.add(index);
  }
  const keptCatalogs: NonNullable<NodeReport['catalogs']> = [];
  for (const catalog of catalogs) {
    const cost = Buffer.byteLength(JSON.stringify(catalog)) + 1;
    if (cost > budget) continue;
    budget -= cost;
    keptCatalogs.push(catalog);
  }
  const fitted: NodeReport = { ...report };
  if (report.catalogs !== undefined) fitted.catalogs = keptCatalogs;
  if (report.upstreams !== undefined) fitted.upstreams = upstreams.filter((_, index) => keptUpstreams.has(index));
  return { body: JSON.stringify(fitted), droppedCatalogs: catalogs.length - keptCatalogs.length, droppedUpstreams: upstreams.length - keptUpstreams.size };
}

/** Entries that say something is wrong are the last to give way. */
function rank(entry: Upstream): number {
  return entry.status === 'reachable' ? 1 : 0;
}
