/**
 * The outbox's Prometheus metrics, registered on the node's registry: how many events wait to be shipped
 * (and how many bytes), how many were shipped, and how many were dropped (a full outbox, or events the
 * control plane refused). Values are read from the outbox when scraped; nothing is counted twice.
 */
import { Gauge, type Registry } from 'prom-client';
import type { AuditOutbox } from './outbox.js';

export function registerAuditMetrics(registry: Registry, outbox: AuditOutbox): void {
  const gauge = (name: string, help: string, pick: (s: ReturnType<AuditOutbox['snapshot']>) => number): void => {
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(pick(outbox.snapshot()));
      },
    });
  };
  gauge('gatehouse_audit_buffer_events', 'Audit events recorded on this node and not yet acknowledged by the control plane', (s) => s.depth);
  gauge('gatehouse_audit_buffer_bytes', 'Bytes of audit events waiting in the outbox', (s) => s.bytes);
  // Gauges rather than counters: the values come from the outbox (and restart at 0 with the process).
  gauge('gatehouse_audit_shipped_events', 'Audit events the control plane acknowledged since this node started', (s) => s.shipped);
  gauge('gatehouse_audit_dropped_events', 'Audit events dropped since this node started (outbox full, or refused as malformed)', (s) => s.dropped);
}
