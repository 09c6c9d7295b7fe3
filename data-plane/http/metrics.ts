/**
 * The node's Prometheus metrics (`GET /metrics`, prom-client): one registry per server, so several nodes in
 * one process (tests, `npm start`) do not share counters. Labels are low-cardinality on purpose (route,
 * method, outcome, server): never a key, user or argument, which belong in the audit trail, not in metrics.
 * Fed as a record sink of the pipeline (`pipeline/record.ts`).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { RuntimeHolder } from '../config/runtime.js';
import type { RequestRecord } from '../pipeline/context.js';
import type { RecordSink } from '../pipeline/record.js';

export interface NodeMetrics extends RecordSink {
  registry: Registry;
}

const KNOWN_METHODS: ReadonlySet<string> = new Set([
  'initialize',
  'ping',
  'tools/list',
  'tools/call',
  'resources/list',
  'resources/read',
  'resources/templates/list',
  'prompts/list',
  'prompts/get',
  'completion/complete',
  'logging/setLevel',
  'server/discover',
]);

export function createNodeMetrics(holder: RuntimeHolder): NodeMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const requests = new Counter({
    name: 'gatehouse_mcp_requests_total',
    help: 'MCP requests (JSON-RPC requests, and HTTP requests refused before any was read), by method and outcome',
    labelNames: ['method', 'outcome', 'server'] as const,
    registers: [registry],
  });
  const refusals = new Counter({
    name: 'gatehouse_refusals_total',
    help: 'Requests refused with a typed gateway error, by route and error type',
    labelNames: ['route', 'type'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'gatehouse_mcp_request_duration_seconds',
    help: 'Time to answer an MCP request, upstream included',
    labelNames: ['method'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  new Gauge({
    name: 'gatehouse_snapshot_version',
    help: 'Version of the configuration snapshot this node serves (0 before the first)',
    registers: [registry],
    collect() {
      this.set(holder.current?.version ?? 0);
    },
  });
  // Labelled children, looked up once per label combination: prom-client hashes a label object per call.
  const requestChildren = new Map<string, Counter.Internal>();
  const durationChildren = new Map<string, Histogram.Internal<'method'>>();
  return {
    registry,
    record(record: RequestRecord) {
      if (record.error !== null) refusals.inc({ route: record.route, type: record.error });
      if (record.route !== 'mcp' && record.route !== 'mcp_server') return;
      // A caller chooses the method name: only known ones become label values.
      const method = record.method === null ? '' : KNOWN_METHODS.has(record.method) ? record.method : 'other';
      const server = record.server ?? '';
      const key = `${method}\n${record.outcome}\n${server}`;
      let counter = requestChildren.get(key);
      if (!counter) {
        counter = requests.labels({ method, outcome: record.outcome, server });
        if (requestChildren.size < 10_000) requestChildren.set(key, counter);
      }
      counter.inc();
      let histogram = durationChildren.get(method);
      if (!histogram) {
        histogram = duration.labels({ method });
        if (durationChildren.size < 1_000) durationChildren.set(method, histogram);
      }
      histogram.observe(record.latencyMs / 1000);
    },
  };
}
