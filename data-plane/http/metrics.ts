/**
 * The node's Prometheus metrics (`GET /metrics`, prom-client): one registry per server, so several nodes in
 * one process (tests, `npm start`) do not share counters. Labels are low-cardinality on purpose (route,
 * method, outcome, server): never a key, user or argument, which belong in the audit trail, not in metrics.
 * Fed as a record sink of the pipeline (`pipeline/record.ts`).
 */
import { Counter, Gauge, Registry, collectDefaultMetrics, type Metric } from 'prom-client';
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

const DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] as const;

/** Bound on request series kept (server names come from the configuration, but a bound costs nothing). */
const MAX_REQUEST_SERIES = 10_000;

/** One request-counter series, counted here and added to prom-client's counter when scraped. */
interface RequestSeries {
  readonly labels: { method: string; outcome: string; server: string };
  count: number;
}

/** One duration-histogram series: cumulative bucket counts, as Prometheus exposes them. */
interface DurationSeries {
  readonly method: string;
  readonly buckets: number[];
  sum: number;
  count: number;
}

/**
 * The record sink counts in plain numbers and prom-client sees them only when `/metrics` is scraped:
 * prom-client validates and hashes the label set on every `inc`/`observe`, even through `labels()`
 * children, which showed in the hot path's profile. The histogram is therefore a collector of our own
 * registered with the registry (prom-client reads any object with `get()` in its exposition shape).
 */
export function createNodeMetrics(holder: RuntimeHolder): NodeMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  /** method → outcome → server → series. */
  const requestSeries = new Map<string, Map<string, Map<string, RequestSeries>>>();
  let seriesCount = 0;
  new Counter({
    name: 'gatehouse_mcp_requests_total',
    help: 'MCP requests (JSON-RPC requests, and HTTP requests refused before any was read), by method and outcome',
    labelNames: ['method', 'outcome', 'server'] as const,
    registers: [registry],
    collect() {
      for (const byOutcome of requestSeries.values()) {
        for (const byServer of byOutcome.values()) {
          for (const series of byServer.values()) {
            if (series.count === 0) continue;
            this.inc(series.labels, series.count);
            series.count = 0;
          }
        }
      }
    },
  });
  const refusals = new Counter({
    name: 'gatehouse_refusals_total',
    help: 'Requests refused with a typed gateway error, by route and error type',
    labelNames: ['route', 'type'] as const,
    registers: [registry],
  });
  const durations = new Map<string, DurationSeries>();
  registry.registerMetric(durationCollector(durations) as unknown as Metric);
  new Gauge({
    name: 'gatehouse_snapshot_version',
    help: 'Version of the configuration snapshot this node serves (0 before the first)',
    registers: [registry],
    collect() {
      this.set(holder.current?.version ?? 0);
    },
  });
  return {
    registry,
    record(record: RequestRecord) {
      if (record.error !== null) refusals.inc({ route: record.route, type: record.error });
      if (record.route !== 'mcp' && record.route !== 'mcp_server') return;
      // A caller chooses the method name: only known ones become label values.
      const method = record.method === null ? '' : KNOWN_METHODS.has(record.method) ? record.method : 'other';
      const server = record.server ?? '';
      // Nested by label rather than one joined key: no string is built per request.
      let byOutcome = requestSeries.get(method);
      if (!byOutcome) requestSeries.set(method, (byOutcome = new Map()));
      let byServer = byOutcome.get(record.outcome);
      if (!byServer) byOutcome.set(record.outcome, (byServer = new Map()));
      let series = byServer.get(server);
      if (!series) {
        // Past the bound, further series are counted under server "other" (bounded, nothing lost).
        const overflow = seriesCount >= MAX_REQUEST_SERIES;
        const name = overflow ? 'other' : server;
        series = byServer.get(name);
        if (!series) {
          series = { labels: { method, outcome: record.outcome, server: name }, count: 0 };
          byServer.set(name, series);
          seriesCount++;
        }
      }
      series.count++;
      let duration = durations.get(method);
      if (!duration) {
        duration = { method, buckets: new Array<number>(DURATION_BUCKETS.length).fill(0), sum: 0, count: 0 };
        durations.set(method, duration); // methods are the known ones, "other" and "": a handful
      }
      const seconds = record.latencyMs / 1000;
      for (let i = DURATION_BUCKETS.length - 1; i >= 0 && seconds <= (DURATION_BUCKETS[i] as number); i--) (duration.buckets[i] as number)++;
      duration.sum += seconds;
      duration.count++;
    },
  };
}

/** `gatehouse_mcp_request_duration_seconds` in prom-client's exposition shape (what `Registry` reads from a metric). */
function durationCollector(series: ReadonlyMap<string, DurationSeries>) {
  const name = 'gatehouse_mcp_request_duration_seconds';
  const help = 'Time to answer an MCP request, upstream included';
  return {
    name,
    help,
    type: 'histogram',
    aggregator: 'sum',
    labelNames: ['method'],
    reset(): void {},
    get() {
      const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = [];
      for (const s of series.values()) {
        DURATION_BUCKETS.forEach((le, i) => values.push({ labels: { le, method: s.method }, value: s.buckets[i] as number, metricName: `${name}_bucket` }));
        values.push({ labels: { le: '+Inf', method: s.method }, value: s.count, metricName: `${name}_bucket` });
        values.push({ labels: { method: s.method }, value: s.sum, metricName: `${name}_sum` });
        values.push({ labels: { method: s.method }, value: s.count, metricName: `${name}_count` });
      }
      return Promise.resolve({ name, help, type: 'histogram', values, aggregator: 'sum' });
    },
  };
}
