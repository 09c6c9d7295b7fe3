/**
 * The V8 settings a node runs with, applied at start-up before it serves (main.ts).
 *
 * Allocation-site pretenuring is off. V8 watches, per allocation site (an object literal, a `new`), how many
 * of the objects made there since the last scavenge are still alive at it; when most are, it takes the
 * site for one that makes long-lived objects and allocates its objects straight in the old generation from
 * then on. A node's request objects (the parsed body, the headers, the response, the record) live for a
 * few milliseconds, but at load one scavenge that finds most of a site's recent objects in flight is
 * enough to tenure it, and the decision is seldom taken back. Measured at load with the audit trail on
 * (2026-12-02, bench/dev/allocations.ts --survivors, --trace-gc): the request path's sites were tenured
 * within seconds, ~5.3 KB of every request then outlived the young generation (0.9 KB with pretenuring
 * off), the old generation grew ~27 MB/s, a mark-compact ran every ~2.5 s and scavenges took 3.5-6 ms
 * instead of ~1 ms; the node held ~220 MB instead of ~170 MB, and its CPU per request was ~8% higher
 * (median of 4 alternated rounds, bench/dev/cpu-per-request.ts --audit), its p99 ~20% higher. What the
 * node keeps for long (the snapshot, compiled rules, pools) is made at start-up or on a snapshot change,
 * and only pays one copy through the young generation for it.
 *
 * Why `v8.setFlagsFromString` rather than a command-line flag: the node is started as `node
 * dist/gatehouse-node.mjs` by operators (compose, systemd, `npm run node`), and NODE_OPTIONS refuses V8
 * flags of this kind. V8 reads this one at every scavenge, so setting it before the node serves is enough
 * (checked with --trace-gc: the old generation stays flat).
 */
import { setFlagsFromString } from 'node:v8';

export function tuneGarbageCollector(): void {
  setFlagsFromString('--no-allocation-site-pretenuring');
}
