/**
 * A data-plane node: the HTTP server for `/mcp` and friends, its runtime holder and upstream pool, and
 * the link that keeps it fed with verified snapshots. `startNode` is used by `main.ts`, `bin/start.ts`
 * and tests; it reads no global state except what its options name.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { JWK } from 'jose';
import { applyDelta, buildRuntime, RuntimeHolder } from '../config/runtime.js';
import { createDataPlaneServer } from '../http/server.js';
import { createLogger, type Logger } from '../log.js';
import { generateNodeKeyPair, nodeKeyPairFromPrivate, type NodeKeyPair } from '../snapshot/seal.js';
import { UpstreamPool } from '../upstream/pool.js';
import { ControlPlaneLink } from './control-plane-link.js';

export interface NodeOptions {
  controlPlaneUrl: string;
  nodeToken: string;
  port: number;
  host?: string;
  nodeId?: string;
  /** Keeps the node key, trust store and last good snapshot; null keeps nothing on disk. */
  stateDir: string | null;
  trustedJwks?: unknown[] | null;
  /** Where `env.NAME` references are resolved (the node's own environment by default). */
  env?: Record<string, string | undefined>;
  logger?: Logger;
  reportIntervalMs?: number;
  /** Browser origins allowed on `/mcp`; requests with any other `Origin` header are refused. */
  allowedOrigins?: readonly string[];
}

/** `GATEHOUSE_ALLOWED_ORIGINS`: comma-separated browser origins allowed on `/mcp`. */
export function allowedOriginsFromEnv(env: Record<string, string | undefined>): string[] {
  return (env.GATEHOUSE_ALLOWED_ORIGINS ?? '').split(',').map((o) => o.trim()).filter(Boolean);
}

export interface DataPlaneNode {
  url: string;
  nodeId: string;
  server: Server;
  link: ControlPlaneLink;
  holder: RuntimeHolder;
  close(): Promise<void>;
}

/**
 * The node's X25519 key: from GATEHOUSE_NODE_KEY (a private JWK, e.g. from a secret store), else from
 * the state dir. Keeping it out of the state dir is what makes a copied snapshot file useless.
 */
async function loadNodeKey(env: Record<string, string | undefined>, stateDir: string | null): Promise<NodeKeyPair> {
  if (env.GATEHOUSE_NODE_KEY) return nodeKeyPairFromPrivate(JSON.parse(env.GATEHOUSE_NODE_KEY) as JWK);
  const path = stateDir ? join(stateDir, 'node-key.json') : null;
  if (path && existsSync(path)) return nodeKeyPairFromPrivate(JSON.parse(readFileSync(path, 'utf8')) as JWK);
  const pair = await generateNodeKeyPair();
  if (path) writeFileSync(path, JSON.stringify(pair.privateJwk), { mode: 0o600 });
  return pair;
}

function loadNodeId(explicit: string | undefined, stateDir: string | null): string {
  if (explicit) return explicit;
  const path = stateDir ? join(stateDir, 'node-id') : null;
  if (path && existsSync(path)) return readFileSync(path, 'utf8').trim();
  const id = `${hostname().replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 60)}-${randomBytes(4).toString('hex')}`;
  if (path) writeFileSync(path, id + '\n');
  return id;
}

export async function startNode(options: NodeOptions): Promise<DataPlaneNode> {
  const env = options.env ?? process.env;
  const logger = options.logger ?? createLogger('gatehouse-node');
  if (options.stateDir) mkdirSync(options.stateDir, { recursive: true });
  const nodeId = loadNodeId(options.nodeId, options.stateDir);
  const nodeKey = await loadNodeKey(env, options.stateDir);

  const holder = new RuntimeHolder();
  const pool = new UpstreamPool({ holder, logger });
  const link = new ControlPlaneLink({
    controlPlaneUrl: options.controlPlaneUrl,
    nodeToken: options.nodeToken,
    nodeId,
    nodePublicJwk: nodeKey.publicJwk,
    nodePrivateJwk: nodeKey.privateJwk,
    stateDir: options.stateDir,
    trustedJwks: options.trustedJwks ?? null,
    logger,
    reportIntervalMs: options.reportIntervalMs,
    catalogs: () => pool.catalogs(),
    applyDelta: (delta) => {
      const base = holder.current;
      // verifyDelta already checked the delta's base is the applied version, so a runtime exists.
      if (!base) throw new Error('a delta arrived before any snapshot');
      const { runtime, warnings } = applyDelta(base, delta);
      for (const warning of warnings) logger.warn({ version: delta.version }, warning);
      holder.set(runtime);
    },
    apply: (payload, dataKey) => {
      const { runtime, missingEnv } = buildRuntime(payload, dataKey, env);
      holder.set(runtime);
      return { missingEnv };
    },
  });
  await link.loadFromDisk();

  const server = createDataPlaneServer({ holder, pool, logger, allowedOrigins: options.allowedOrigins ?? [] });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '127.0.0.1', () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}`;
  logger.info({ url, nodeId, controlPlane: options.controlPlaneUrl }, 'data-plane node listening');
  link.start();

  return {
    url,
    nodeId,
    server,
    link,
    holder,
    async close() {
      await link.stop();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await pool.close();
    },
  };
}
