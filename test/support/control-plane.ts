/**
 * A real control plane for tests, in-process, on an ephemeral port, its own temp data dir, and SQLite
 * (or the PostgreSQL URL given). Exposes a GraphQL helper authenticated with the bootstrap admin token
 * and every log line it wrote.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { createControlPlane, type ControlPlane, type ControlPlaneOptions } from '../../control-plane/app.js';
import { createLogger } from '../../control-plane/log.js';
import { LogCapture } from './log-capture.js';

export interface TestControlPlane {
  cp: ControlPlane;
  url: string;
  adminToken: string;
  dataDir: string;
  logs: LogCapture;
  /** Every GraphQL response body this helper received, for searching for leaked secrets. */
  responses: string[];
  gql<T = Record<string, unknown>>(query: string, variables?: Record<string, unknown>): Promise<T>;
  /** The control plane's /metrics text, scraped with the admin token (the route needs a credential). */
  metrics(): Promise<string>;
  close(): Promise<void>;
}

export async function startTestControlPlane(
  options: { databaseUrl?: string; databaseSchema?: string; dataDir?: string; env?: NodeJS.ProcessEnv; adminToken?: string; port?: number; sharedNodeToken?: boolean; oauth?: ControlPlaneOptions['oauth']; /** Default true: test authorization servers are http. */ allowInsecureOAuth?: boolean } = {},
): Promise<TestControlPlane> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'gatehouse-cp-'));
  const adminToken = options.adminToken ?? `gha_test${randomBytes(16).toString('hex')}`;
  const logs = new LogCapture();
  const cp = await createControlPlane({
    port: options.port ?? 0,
    dataDir,
    databaseUrl: options.databaseUrl ?? join(dataDir, 'gatehouse.db'),
    databaseSchema: options.databaseSchema,
    env: { GATEHOUSE_ADMIN_TOKEN: adminToken, ...options.env },
    // Most tests start nodes on the shared token; enrollment tests turn it off.
    sharedNodeToken: options.sharedNodeToken ?? true,
    // Test authorization servers listen on http://127.0.0.1.
    allowInsecureOAuth: options.allowInsecureOAuth ?? true,
    ...(options.oauth ? { oauth: options.oauth } : {}),
    logger: createLogger('test-control-plane', { destination: logs, level: 'debug' }),
  });
  const responses: string[] = [];
  const gql = async <T,>(query: string, variables?: Record<string, unknown>): Promise<T> => {
    const res = await fetch(`${cp.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${adminToken}` },
      body: JSON.stringify({ query, variables }),
    });
    const text = await res.text();
    responses.push(text);
    const body = JSON.parse(text) as { data?: T; errors?: unknown[] };
    if (body.errors?.length) throw new Error(`GraphQL errors: ${JSON.stringify(body.errors)}`);
    return body.data as T;
  };
  return {
    cp,
    url: cp.url,
    adminToken,
    dataDir,
    logs,
    responses,
    gql,
    async metrics() {
      const res = await fetch(`${cp.url}/metrics`, { headers: { authorization: `Bearer ${adminToken}` } });
      if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
      return res.text();
    },
    async close() {
      await cp.close();
      if (!options.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
