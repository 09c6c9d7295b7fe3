/**
 * The node's Prometheus metrics (`GET /metrics`, prom-client): one registry per server, so several nodes in
 * one process (tests, `npm start`) do not share counters. Labels are low-cardinality on purpose (method,
 * outcome, server): never a key, user or argument, which belong in the audit trail, not in metrics.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { RuntimeHolder } from '../config/runtime.js';
import type { McpCallEvent } from '../mcp/handler.js';

export interface NodeMetrics {
  registry: Registry;
  /** Feed for the `/mcp` handler's per-call event hook. */
  record(event: McpCallEvent): void;
}

export function createNodeMetrics(holder: RuntimeHolder): NodeMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const requests = new Counter({
    name: 'gatehouse_mcp_requests_total',
    help: 'MCP requests that reached policy, by JSON-RPC method and outcome',
    labelNames: ['method', 'outcome', 'server'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'gatehouse_mcp_request_duration_seconds',
    help: 'Time to answer an MCP request that reached policy, upstream included',
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
  return {
    registry,
    record(event) {
      requests.inc({ method: event.method, outcome: event.outcome, server: event.server ?? '' });
      duration.observe({ method: event.method }, event.latencyMs / 1000);
    },
  };
}
