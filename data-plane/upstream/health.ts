/**
 * Upstream health as this node sees it: per server, the status of the last observation (a tool call, a
 * catalog fetch, a probe), when it was last confirmed, and a short scrubbed reason. Reported to the control
 * plane with every node report (`NodeReport.upstreams`) and soon after a change of status (a transition),
 * and exported on the node's `/metrics`.
 *
 * Cheap on the hot path: an observation that confirms the current status is one map lookup and one field
 * write; only a transition allocates, and only a transition wakes the listener (the link's debounced report).
 *
 * Whose credential decides: only a call made with a server's shared credential (its configured headers or
 * shared OAuth token) can mark the server `credentials_refused`. A 401/403 answered to one user's own
 * credential (per-user headers, a user's OAuth token) says the upstream is up and that user must connect
 * again (shown on that user's connection status), so it counts as `reachable` here: one user's stale token
 * must not paint the server refused for everyone. Unreachable and timeout are about the upstream whoever asks.
 *
 * It does no I/O and decides nothing about calls.
 */
import { Gauge, type Registry } from 'prom-client';
import type { ResolvedServer } from '../config/runtime.js';
import { userIdentity, type CredentialIdentity } from '../pipeline/credentials.js';
import { MAX_REPORTED_UPSTREAMS, UPSTREAM_STATUSES, type UpstreamHealth as UpstreamHealthReport, type UpstreamStatus } from '../snapshot/stream-protocol.js';
import { scrubReason, type UpstreamFailure } from './failures.js';

interface Observation {
  status: UpstreamStatus;
  reason: string | null;
  /** The unscrubbed message `reason` came from, to notice a new reason without scrubbing again. */
  message: string | null;
  /** Epoch ms of the last observation that found this status. */
  at: number;
}

/** `user:` identities carry one user's own credential (see `pipeline/credentials.ts`). */
const USER_PREFIX = userIdentity('');

export class UpstreamHealthTracker {
  readonly #servers = new Map<string, Observation>();
  #listener: (() => void) | null = null;

  /** Called after every transition (not on confirmations); one listener: the node's report scheduler. */
  onTransition(listener: () => void): void {
    this.#listener = listener;
  }

  /** The upstream answered (a result, a tool error, a JSON-RPC error: all mean it is up and took the credential). */
  reachable(server: string): void {
    const current = this.#servers.get(server);
    if (current !== undefined && current.status === 'reachable') {
      current.at = Date.now();
      return;
    }
    this.#transition(server, 'reachable', null, null);
  }

  /**
   * A failed call, fetch or probe. Failures that say nothing about the upstream (the caller left, the
   * server was reconfigured mid-call, it is unavailable on this node) are not observations.
   */
  failed(server: ResolvedServer, identity: CredentialIdentity, failure: UpstreamFailure): void {
    switch (failure.kind) {
      case 'credentials_refused':
        if (identity.startsWith(USER_PREFIX)) return this.reachable(server.name);
        return this.#observe(server, 'credentials_refused', failure.message);
      case 'unreachable':
      case 'timeout':
        return this.#observe(server, failure.kind, failure.message);
      default:
        return;
    }
  }

  /** The current status of one server, or null before any observation. */
  status(server: string): UpstreamStatus | null {
    return this.#servers.get(server)?.status ?? null;
  }

  /** When `server` was last observed (epoch ms), or 0 before any observation. */
  observedAt(server: string): number {
    return this.#servers.get(server)?.at ?? 0;
  }

  /** Forgets servers no longer configured, so reports do not carry names the control plane has dropped. */
  retain(names: ReadonlySet<string>): void {
    for (const name of this.#servers.keys()) if (!names.has(name)) this.#servers.delete(name);
  }

  /** What a node report carries (bounded as the contract bounds it, so a huge fleet of servers cannot void the report). */
  report(): UpstreamHealthReport[] {
    const out: UpstreamHealthReport[] = [];
    for (const [server, o] of this.#servers) {
      if (out.length === MAX_REPORTED_UPSTREAMS) break;
      out.push({ server, status: o.status, reason: o.reason, at: new Date(o.at).toISOString() });
    }
    return out;
  }

  #observe(server: ResolvedServer, status: UpstreamStatus, message: string): void {
    const current = this.#servers.get(server.name);
    if (current !== undefined && current.status === status) {
      current.at = Date.now();
      // A new reason for the same status (refused → reset) rides the next periodic report.
      if (current.message !== message) {
        current.message = message;
        current.reason = scrubReason(message, server);
      }
      return;
    }
    // Failure messages are built secret-free already (`describeError`); scrubbing again is the second
    // line of defence before the text leaves the node.
    this.#transition(server.name, status, message, scrubReason(message, server));
  }

  #transition(server: string, status: UpstreamStatus, message: string | null, reason: string | null): void {
    this.#servers.set(server, { status, reason, message, at: Date.now() });
    this.#listener?.();
  }
}

/**
 * `gatehouse_upstream_status{server,status}` on the node's `/metrics`: 1 for each server's current status,
 * 0 for the others (so an alert on `status="unreachable"` sees it clear). Read from the tracker when scraped.
 */
export function registerUpstreamHealthMetrics(registry: Registry, health: UpstreamHealthTracker): void {
  new Gauge({
    name: 'gatehouse_upstream_status',
    help: 'Upstream health as this node last observed it: 1 for the current status of each server',
    labelNames: ['server', 'status'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const { server, status } of health.report()) {
        for (const s of UPSTREAM_STATUSES) this.set({ server, status: s }, s === status ? 1 : 0);
      }
    },
  });
}
