/**
 * The control plane's Prometheus metrics (`GET /metrics`, prom-client), one registry per instance: the
 * published config version and how many node streams are open. Node health lives in the `nodes` query.
 */
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { SnapshotPublisher } from '../snapshot/publisher.js';

export function createControlPlaneMetrics(publisher: SnapshotPublisher): Registry {
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
  return registry;
}
