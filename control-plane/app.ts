/**
 * Wires the control plane together: database + migrations, key material, GraphQL, the snapshot publisher,
 * and the HTTP server that serves them. Used by `main.ts`, `bin/start.ts` and tests; owns no logic itself.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Kysely } from 'kysely';
import { importSigningKey } from '../data-plane/snapshot/sign.js';
import type { PublicJwk } from '../data-plane/snapshot/schema.js';
import { NODE_ENROLL_PATH, NODE_JWKS_PATH, NODE_REPORT_PATH, NODE_SNAPSHOT_PATH, NODE_SPEND_PATH, NODE_STREAM_PATH } from '../data-plane/snapshot/stream-protocol.js';
import { handleSpendQuery, handleSpendReport } from './http/spend-routes.js';
import { NODE_AUDIT_PATH } from '../data-plane/snapshot/audit-protocol.js';
import { AUDIT_EXPORT_PATH, handleAuditExport, handleAuditIngest, type AuditRouteDeps } from './audit/routes.js';
import { AuditStore } from './audit/store.js';
import { SecretBox } from './crypto/secret-box.js';
import { hashToken } from './crypto/tokens.js';
import { migrateToLatest, openDatabase } from './db/database.js';
import type { Database } from './db/schema.js';
import { createGraphQL } from './graphql/yoga.js';
import {
  handleNodeEnroll,
  handleNodeJwks,
  handleNodeReport,
  handleNodeSnapshot,
  handleNodeStream,
  startNodeHeartbeat,
  type NodeRouteDeps,
} from './http/node-routes.js';
import { createControlPlaneMetrics, handleMetrics, metricsTokenHash, type MetricsRouteDeps } from './http/metrics.js';
import { ControlPlaneMessage } from './http/errors.js';
import { sendError } from './http/respond.js';
import { loadKeyMaterial } from './key-material.js';
import { createLogger, type Logger } from './log.js';
import { ensureBootstrapAdminToken } from './repos/admin-tokens.js';
import { sealConnectionSecrets } from './repos/mcp-servers.js';
import { sealOAuthResources, sealSettingsUrls } from './repos/oauth.js';
import { sealProviderBaseUrls } from './repos/providers.js';
import { ensureSessionSecret } from './repos/session-secrets.js';
import { CredentialBroker } from './connect/broker.js';
import { announceCredentialChange } from './repos/connect.js';
import { handleConnect, isConnectPath, type ConnectRouteDeps } from './connect/routes.js';
import { handleNodeCredentials } from './http/credential-route.js';
import { NODE_CREDENTIALS_PATH } from '../data-plane/snapshot/credential-protocol.js';
import { handleClientMetadata, handleOAuthCallback, handleOAuthStart, isOAuthStartPath, type OAuthRouteDeps } from './oauth/routes.js';
import { CLIENT_METADATA_PATH, OAUTH_CALLBACK_PATH, OAuthService, type OAuthServiceOptions } from './oauth/service.js';
import { listenForConfigChanges, notifyConfigChanged, type ConfigListener } from './snapshot/config-notify.js';
import { SnapshotPublisher } from './snapshot/publisher.js';

export interface ControlPlaneOptions {
  host?: string;
  /** 0 for an ephemeral port. */
  port: number;
  /** `postgres://…` or an SQLite path / `sqlite:` URL; defaults to `<dataDir>/gatehouse.db`. */
  databaseUrl?: string;
  /** PostgreSQL schema to use (search_path), e.g. one per tenant or per test; default `public`. */
  databaseSchema?: string;
  dataDir: string;
  env?: NodeJS.ProcessEnv;
  logger?: Logger;
  /**
   * Accept the shared node token (weaker than per-node enrollment: whoever holds it can act as any node).
   * Default: only when GATEHOUSE_NODE_TOKEN is set. `npm start` and tests turn it on for their embedded node.
   */
  sharedNodeToken?: boolean;
  /** The URL browsers and authorization servers reach this control plane at (callbacks, connect pages); default GATEHOUSE_PUBLIC_URL, else the listening URL. */
  publicUrl?: string;
  /** Named opt-in for http:// authorization servers (tests, loopback development); default GATEHOUSE_OAUTH_ALLOW_HTTP=1. */
  allowInsecureOAuth?: boolean;
  /** OAuth tuning for tests (refresh margin, retry delays). */
  oauth?: Pick<OAuthServiceOptions, 'refreshMarginMs' | 'retryDelaysMs' | 'timeoutMs'>;
}

export interface ControlPlane {
  url: string;
  server: Server;
  db: Kysely<Database>;
  publisher: SnapshotPublisher;
  audit: AuditStore;
  oauth: OAuthService;
  /** The secret box sealing stored secrets: for in-process tools and tests that must read a sealed row. */
  box: SecretBox;
  /** The shared node token's plaintext, for starting nodes in the same process (`npm start`, tests); null when not accepted. */
  nodeToken: string | null;
  trustedKeys: PublicJwk[];
  /** Set only when this start generated the first admin token: print it once, then it is gone. */
  generatedAdminToken: string | undefined;
  close(): Promise<void>;
}

export async function createControlPlane(options: ControlPlaneOptions): Promise<ControlPlane> {
  const env = options.env ?? process.env;
  const logger = options.logger ?? createLogger('gatehouse-control-plane');
  const sharedNodeToken = options.sharedNodeToken ?? Boolean(env.GATEHOUSE_NODE_TOKEN);
  const keys = await loadKeyMaterial(options.dataDir, env, logger, sharedNodeToken);
  const databaseUrl = options.databaseUrl ?? env.DATABASE_URL ?? join(options.dataDir, 'gatehouse.db');
  const databaseSchema = options.databaseSchema ?? env.DATABASE_SCHEMA;
  const { db, dialect, url } = openDatabase(databaseUrl, databaseSchema ? { searchPath: databaseSchema } : {});
  await migrateToLatest(db, dialect === 'postgres' ? databaseSchema : undefined);

  const box = new SecretBox(keys.masterKey);
  // Credential-bearing URLs stored before their rule (0020, 0021, 0022; repos/url-secrets.ts) are sealed now.
  const sealedUrls = {
    servers: await sealConnectionSecrets(db, box),
    providers: await sealProviderBaseUrls(db, box),
    oauthSettings: await sealSettingsUrls(db, box),
    oauthResources: await sealOAuthResources(db, box),
  };
  if (Object.values(sealedUrls).some((count) => count > 0)) logger.info(sealedUrls, 'sealed credential-bearing URLs stored before their rule');
  const signingKeys = await Promise.all(keys.signingKeys.map(importSigningKey));
  const activeKey = signingKeys.find((k) => k.kid === keys.activeKid);
  if (!activeKey) throw new Error('active signing key missing');
  const trustedKeys = signingKeys.map((k) => k.publicJwk);

  // Before the first snapshot, so every snapshot carries the secret nodes derive session keys from.
  await ensureSessionSecret(db, box);
  const publisher = new SnapshotPublisher({ db, box, signingKey: activeKey, trustedKeys, logger });
  await publisher.start();
  let listener: ConfigListener | null = null;
  if (dialect === 'postgres') listener = listenForConfigChanges(url, () => void publisher.changed(), logger);

  const bootstrap = await ensureBootstrapAdminToken(db, env.GATEHOUSE_ADMIN_TOKEN);
  if (bootstrap.revokedBootstrapTokens) {
    logger.warn({ revoked: bootstrap.revokedBootstrapTokens }, 'GATEHOUSE_ADMIN_TOKEN has a new value: the previous bootstrap admin token is revoked');
  }

  // Checkpoints are signed with the active snapshot key: nodes and auditors already trust it (trustedKeys).
  const audit = new AuditStore({ db, signingKey: activeKey, logger, ...(env.GATEHOUSE_AUDIT_PARTITION ? { partition: env.GATEHOUSE_AUDIT_PARTITION } : {}) });
  audit.start();
  const configChanged = (): void => {
    void publisher.changed();
    void notifyConfigChanged(db, dialect).catch((error: unknown) => logger.warn({ err: String(error) }, 'NOTIFY failed'));
  };
  let publicUrl = options.publicUrl ?? env.GATEHOUSE_PUBLIC_URL ?? '';
  const oauth = new OAuthService({
    db,
    dialect,
    box,
    publicUrl: () => publicUrl,
    allowInsecure: options.allowInsecureOAuth ?? env.GATEHOUSE_OAUTH_ALLOW_HTTP === '1',
    env,
    logger,
    ...options.oauth,
  });
  const oauthDeps: OAuthRouteDeps = { oauth, logger };
  const broker = new CredentialBroker({ db, box, oauth });
  const connectDeps: ConnectRouteDeps = {
    db,
    box,
    oauth,
    env,
    logger,
    onCredentialChanged: (_serverId, userId) => {
      void db
        .transaction()
        .execute((trx) => announceCredentialChange(trx, userId))
        .then(configChanged, (error: unknown) => logger.warn({ err: String(error) }, 'could not announce a credential change'));
    },
  };

  const yoga = createGraphQL({
    db,
    box,
    logger,
    audit: { trustedKeys },
    oauth,
    onConfigChanged: configChanged,
  });

  const metricsDeps: MetricsRouteDeps = { db, registry: createControlPlaneMetrics(publisher, db), metricsTokenHash: metricsTokenHash(env) };
  const nodeDeps: NodeRouteDeps = { db, publisher, sharedTokenHash: keys.nodeToken === null ? null : hashToken(keys.nodeToken), trustedKeys, logger };
  const stopHeartbeat = startNodeHeartbeat(nodeDeps);
  const auditDeps: AuditRouteDeps = { db, store: audit, sharedTokenHash: nodeDeps.sharedTokenHash, logger };
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const route = async (): Promise<void> => {
      if (path === '/graphql') return void yoga(req, res);
      if (path === NODE_STREAM_PATH && req.method === 'GET') return handleNodeStream(req, res, nodeDeps);
      if (path === NODE_REPORT_PATH && req.method === 'POST') return handleNodeReport(req, res, nodeDeps);
      if (path === NODE_JWKS_PATH && req.method === 'GET') return handleNodeJwks(req, res, nodeDeps);
      if (path === NODE_SNAPSHOT_PATH && req.method === 'GET') return handleNodeSnapshot(req, res, nodeDeps);
      if (path === NODE_ENROLL_PATH && req.method === 'POST') return handleNodeEnroll(req, res, nodeDeps);
      if (path === NODE_SPEND_PATH && req.method === 'POST') return handleSpendReport(req, res, nodeDeps);
      if (path === NODE_SPEND_PATH && req.method === 'GET') return handleSpendQuery(req, res, nodeDeps);
      if (path === NODE_AUDIT_PATH && req.method === 'POST') return handleAuditIngest(req, res, auditDeps);
      if (path === AUDIT_EXPORT_PATH && req.method === 'GET') return handleAuditExport(req, res, auditDeps);
      if (path === OAUTH_CALLBACK_PATH && req.method === 'GET') return handleOAuthCallback(req, res, oauthDeps);
      if (path !== undefined && isOAuthStartPath(path)) return handleOAuthStart(req, res, path, oauthDeps);
      if (path === NODE_CREDENTIALS_PATH && req.method === 'POST') return handleNodeCredentials(req, res, { node: nodeDeps, broker });
      if (path !== undefined && isConnectPath(path)) return handleConnect(req, res, path, connectDeps);
      if (path === CLIENT_METADATA_PATH && req.method === 'GET') return handleClientMetadata(req, res, oauthDeps);
      if (path === '/metrics' && req.method === 'GET') return handleMetrics(req, res, metricsDeps);
      if (path === '/healthz') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ status: 'ok', configVersion: publisher.version }));
        return;
      }
      sendError(res, 'not_found', ControlPlaneMessage.noRoute(req.method ?? 'GET', path ?? '/'));
    };
    route().catch((error: unknown) => {
      logger.error({ err: error instanceof Error ? error.message : String(error), path: path === undefined ? path : loggablePath(path) }, 'request failed');
      sendError(res, 'internal_error');
    });
  });
  // requestTimeout bounds receiving a request (headers and body), not the response, so node SSE streams
  // stay open for as long as the node is connected while slow request bodies are still cut off.
  server.requestTimeout = 60_000;
  server.headersTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '127.0.0.1', () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  if (publicUrl === '') publicUrl = `http://${host}:${address.port}`;
  logger.info({ url: `http://${host}:${address.port}`, dialect, configVersion: publisher.version }, 'control plane listening');

  return {
    url: `http://${host}:${address.port}`,
    server,
    db,
    publisher,
    audit,
    oauth,
    box,
    nodeToken: keys.nodeToken,
    trustedKeys,
    generatedAdminToken: bootstrap.created && !env.GATEHOUSE_ADMIN_TOKEN ? bootstrap.token : undefined,
    async close() {
      stopHeartbeat();
      publisher.stop();
      await audit.stop();
      await listener?.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await db.destroy();
    },
  };
}

/**
 * `path` as logs may show it: the one-time link routes carry their token in the path (`/connect/<token>`,
 * `/oauth/start/<token>`), and a failure before the link is spent must not leave a usable token in a log.
 */
export function loggablePath(path: string): string {
  return path.replace(/^(\/connect|\/oauth\/start)\/.+$/s, '$1/…');
}
