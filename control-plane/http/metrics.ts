/**
 * The control plane's Prometheus metrics (`GET /metrics`, prom-client), one registry per instance: the
 * published config version, how many node streams are open, and each MCP server's upstream health as nodes
 * last reported it. Node health lives in the `nodes` query.
 *
 * The scrape needs a credential: the server names and their health (which servers refuse credentials,
 * which are down) and the process's figures are what an intruder maps before acting, and the control plane
 * is the one component that holds every secret. Any admin token (VIEWER is enough: it reads more through
 * GraphQL) or the dedicated `GATEHOUSE_METRICS_TOKEN`, which a Prometheus can hold without being able to
 * read or change anything else.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { parseBearer } from '../../data-plane/snapshot/rules.js';
import { constantTimeEqual, hashToken } from '../crypto/tokens.js';
import { authenticateAdminToken } from '../repos/admin-tokens.js';
import { sendError } from './respond.js';
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

export interface MetricsRouteDeps {
  db: Db;
  registry: Registry;
  /** Hash of GATEHOUSE_METRICS_TOKEN, or null when none is configured (admin tokens only). */
  metricsTokenHash: string | null;
}

/** The metrics token from the environment: hashed once, compared in constant time per scrape. */
export function metricsTokenHash(env: NodeJS.ProcessEnv): string | null {
  const token = env.GATEHOUSE_METRICS_TOKEN?.trim();
  return token ? hashToken(token) : null;
}

const METRICS_CREDENTIAL_REQUIRED = 'send Authorization: Bearer <admin token> or Bearer <GATEHOUSE_METRICS_TOKEN> to read /metrics';

export async function handleMetrics(req: IncomingMessage, res: ServerResponse, deps: MetricsRouteDeps): Promise<void> {
  const presented = parseBearer(req.headers.authorization);
  if (presented === null) return sendError(res, 'admin_token_required', METRICS_CREDENTIAL_REQUIRED);
  const byMetricsToken = deps.metricsTokenHash !== null && constantTimeEqual(hashToken(presented), deps.metricsTokenHash);
  if (!byMetricsToken && !(await authenticateAdminToken(deps.db, presented))) return sendError(res, 'admin_token_required', METRICS_CREDENTIAL_REQUIRED);
  const text = await deps.registry.metrics();
  res.writeHead(200, { 'content-type': deps.registry.contentType, 'cache-control': 'no-store' }).end(text);
}
