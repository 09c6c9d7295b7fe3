/**
 * The routes data-plane nodes call: the snapshot stream (SSE), status reports, and the public signing
 * keys (for a node's first start, when it has no trust store yet). All need the node token.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { JWK } from 'jose';
import type { Kysely } from 'kysely';
import { DELTA_EVENT, NODE_ID_HEADER, NODE_KEY_HEADER, NodeReportSchema, SNAPSHOT_EVENT } from '../../data-plane/snapshot/stream-protocol.js';
import type { PublicJwk } from '../../data-plane/snapshot/schema.js';
import { isPublicX25519Jwk } from '../../data-plane/snapshot/seal.js';
import { constantTimeEqual, hashToken } from '../crypto/tokens.js';
import type { Database } from '../db/schema.js';
import type { Logger } from '../log.js';
import { recordToolCatalogs } from '../repos/mcp-servers.js';
import { recordNodeReport, setNodeConnected } from '../repos/nodes.js';
import type { SnapshotPublisher } from '../snapshot/publisher.js';
import { readJsonBody, sendError } from './respond.js';

export interface NodeRouteDeps {
  db: Kysely<Database>;
  publisher: SnapshotPublisher;
  nodeTokenHash: string;
  trustedKeys: PublicJwk[];
  logger: Logger;
}

function authorized(req: IncomingMessage, deps: NodeRouteDeps): boolean {
  const header = req.headers.authorization ?? '';
  const token = header.startsWith('Bearer ') ? header.slice(7).trim() : '';
  return token !== '' && constantTimeEqual(hashToken(token), deps.nodeTokenHash);
}

const NODE_ID = /^[A-Za-z0-9._:-]{1,200}$/;

function parseNodeKey(value: string | undefined): JWK | null {
  if (!value) return null;
  try {
    const jwk = JSON.parse(Buffer.from(value, 'base64url').toString('utf8')) as JWK;
    return isPublicX25519Jwk(jwk) ? jwk : null;
  } catch {
    return null;
  }
}

export async function handleNodeStream(req: IncomingMessage, res: ServerResponse, deps: NodeRouteDeps): Promise<void> {
  if (!authorized(req, deps)) return sendError(res, 401, 'node_token_required', 'a valid node token is required');
  const nodeId = String(req.headers[NODE_ID_HEADER] ?? '');
  if (!NODE_ID.test(nodeId)) return sendError(res, 400, 'invalid_request', `header ${NODE_ID_HEADER} must be 1-200 of [A-Za-z0-9._:-]`);
  const nodePublicJwk = parseNodeKey(req.headers[NODE_KEY_HEADER] as string | undefined);
  if (!nodePublicJwk) return sendError(res, 400, 'invalid_request', `header ${NODE_KEY_HEADER} must be a base64url public X25519 JWK`);

  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
  res.flushHeaders();
  await setNodeConnected(deps.db, nodeId, true).catch((error: unknown) => deps.logger.warn({ err: String(error), nodeId }, 'could not record node connection'));

  let eventId = 0;
  const unsubscribe = await deps.publisher.subscribe({
    nodePublicJwk,
    send: (envelope) => {
      res.write(`event: ${SNAPSHOT_EVENT}\nid: ${++eventId}\ndata: ${JSON.stringify(envelope)}\n\n`);
    },
    sendDelta: (envelope) => {
      res.write(`event: ${DELTA_EVENT}\nid: ${++eventId}\ndata: ${JSON.stringify(envelope)}\n\n`);
    },
  });
  // Comments keep idle proxies and load balancers from closing the stream.
  const keepAlive = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
  deps.logger.info({ nodeId }, 'node connected');
  req.on('close', () => {
    clearInterval(keepAlive);
    unsubscribe();
    deps.logger.info({ nodeId }, 'node disconnected');
    void setNodeConnected(deps.db, nodeId, false).catch(() => undefined);
  });
}

export async function handleNodeReport(req: IncomingMessage, res: ServerResponse, deps: NodeRouteDeps): Promise<void> {
  if (!authorized(req, deps)) return sendError(res, 401, 'node_token_required', 'a valid node token is required');
  const body = await readJsonBody(req, res, 256 * 1024);
  if (body === undefined) return;
  const parsed = NodeReportSchema.safeParse(body);
  if (!parsed.success) return sendError(res, 400, 'invalid_request', 'body is not a node report');
  await recordNodeReport(deps.db, parsed.data);
  if (parsed.data.catalogs) await recordToolCatalogs(deps.db, parsed.data.catalogs);
  res.writeHead(204).end();
}

export function handleNodeJwks(req: IncomingMessage, res: ServerResponse, deps: NodeRouteDeps): void {
  if (!authorized(req, deps)) return sendError(res, 401, 'node_token_required', 'a valid node token is required');
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: deps.trustedKeys }));
}
