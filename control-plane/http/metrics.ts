/**
 * The control plane's Prometheus metrics (`GET /metrics`, prom-client), one registry per instance: the
 * published config version, how many node streams are open, and each MCP server's upstream health as nodes
 * last reported it. Node health lives in the `nodes` query.
 */
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { UPSTREAM_STATUSES } from '../../data-plane/snapshot/stream-protocol.js';
import { listServerHealth } from '../repos/server-health.js';
import type { Db } from '../repos/transaction.js';
import type { SnapshotPublisher } from '../snapshot/publisher.js';

export function createControlPlaneMetrics(publisher: SnapshotPublisher, db?: Db): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  new Gauge({
    name: 'gatehouse_config_version',
    help: 'Version of the latest snapshot this control plane published',
    registers: [registry],
    collect() {
      this.set(publisher.version ?? 0);
    },
  });
  new Gauge({
    name: 'gatehouse_node_streams',
    help: 'Node snapshot streams open on this control plane',
    registers: [registry],
    collect() {
      this.set(publisher.subscriberCount);
    },
  });
  if (db) {
    new Gauge({
      name: 'gatehouse_mcp_server_status',
      help: 'Upstream health of each MCP server as nodes last observed it: 1 for its current status, 0 for the others (servers never observed are absent)',
      labelNames: ['server', 'status'] as const,
      registers: [registry],
      // Read from the database when scraped: every replica shows the same, whichever received the reports.
      async collect() {
        const health = await listServerHealth(db);
        this.reset();
        for (const { server, status } of health) {
          for (const s of UPSTREAM_STATUSES) this.set({ server, status: s }, s === status ? 1 : 0);
        }
      },
    });
  }
  return registry;
}
