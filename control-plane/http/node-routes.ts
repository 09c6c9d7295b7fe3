/**
 * The routes data-plane nodes call: enrollment (public keys, with a one-time token or awaiting approval),
 * the snapshot stream (SSE), the cached whole snapshot (for compacting a node's state dir), status
 * reports, and the public signing keys. Every route but enrollment authenticates with `authenticateNode`
 * and acts only as the node it returns; refusals are logged (never with the credential) and answered
 * from the error table (errors.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { JWK } from 'jose';
import type { Kysely } from 'kysely';
import type { PublicJwk } from '../../data-plane/snapshot/schema.js';
import { isPublicX25519Jwk } from '../../data-plane/snapshot/seal.js';
import { MAX_NODE_REPORT_BYTES, NODE_ID_HEADER, NODE_KEY_HEADER, NODE_TRUST_HEADER, NODE_VERSION_HEADER, NodeEnrollmentSchema, NodeReportSchema } from '../../data-plane/snapshot/stream-protocol.js';
import { parseBearer } from '../../data-plane/snapshot/rules.js';
import type { Database } from '../db/schema.js';
import type { Logger } from '../log.js';
import { recordToolCatalogs } from '../repos/mcp-servers.js';
import { enrollNode, recordNodeReport, setNodeConnected, touchConnectedNodes } from '../repos/nodes.js';
import { recordUpstreamHealth } from '../repos/server-health.js';
import type { SnapshotPublisher } from '../snapshot/publisher.js';
import { ControlPlaneMessage } from './errors.js';
import { authenticateNode, type NodeIdentity } from './node-auth.js';
import { readJsonBody, sendError, sendJson } from './respond.js';

export interface NodeRouteDeps {
  db: Kysely<Database>;
  publisher: SnapshotPublisher;
  /** Hash of the shared node token, or null when only enrolled nodes are accepted. */
  sharedTokenHash: string | null;
  trustedKeys: PublicJwk[];
  logger: Logger;
}

/** Authenticates, or answers the refusal (and logs it: operators see who knocked and why) and returns null. */
export async function requireNode(req: IncomingMessage, res: ServerResponse, deps: NodeRouteDeps, anonymousSharedToken = false): Promise<NodeIdentity | null> {
  const result = await authenticateNode(req, deps, { anonymousSharedToken });
  if (result.ok) return result.node;
  deps.logger.warn(
    { code: result.code, reason: result.reason, claimedNodeId: String(req.headers[NODE_ID_HEADER] ?? '').slice(0, 200), remote: req.socket.remoteAddress, path: req.url?.split('?')[0] },
    'refused a node request',
  );
  sendError(res, result.code);
  return null;
}

function parseNodeKey(value: string | undefined): JWK | null {
  if (!value) return null;
  try {
    const jwk = JSON.parse(Buffer.from(value, 'base64url').toString('utf8')) as JWK;
    return isPublicX25519Jwk(jwk) ? jwk : null;
  } catch {
    return null;
  }
}

/**
 * The key a node's data keys are wrapped for: for an enrolled node, its approved key (and it must present
 * that one); for a shared-token node, whatever it presents.
 */
export function sealingKey(req: IncomingMessage, res: ServerResponse, node: NodeIdentity): JWK | null {
  const presented = parseNodeKey(req.headers[NODE_KEY_HEADER] as string | undefined);
  if (!presented) {
    sendError(res, 'invalid_request', ControlPlaneMessage.badNodeKey(NODE_KEY_HEADER));
    return null;
  }
  if (node.sealingJwk && node.sealingJwk.x !== presented.x) {
    sendError(res, 'node_key_mismatch');
    return null;
  }
  return node.sealingJwk ?? presented;
}

export async function handleNodeStream(req: IncomingMessage, res: ServerResponse, deps: NodeRouteDeps): Promise<void> {
  const node = await requireNode(req, res, deps);
  if (!node) return;
  const sealingJwk = sealingKey(req, res, node);
  if (!sealingJwk) return;
  const versionHeader = Number(req.headers[NODE_VERSION_HEADER]);
  // A node that trusts another set of signing keys (a rotation) needs a whole snapshot to learn this one.
  const trustsOurKeys = String(req.headers[NODE_TRUST_HEADER] ?? '') === deps.trustedKeys.map((k) => k.kid).sort().join(',');
  const appliedVersion = Number.isSafeInteger(versionHeader) && versionHeader >= 0 && trustsOurKeys ? versionHeader : null;

  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
  res.flushHeaders();
  const { nodeId } = node;
  await setNodeConnected(deps.db, nodeId, true).catch((error: unknown) => deps.logger.warn({ err: String(error), nodeId }, 'could not record node connection'));

  const unsubscribe = await deps.publisher.subscribe({
    nodeId,
    sealingJwk,
    appliedVersion,
    write: (chunks) => {
      // A node that stopped reading would make this process hold every snapshot for it: drop it instead.
      if (res.writableLength > 256 * 1024 * 1024) {
        res.destroy();
        return;
      }
      for (const chunk of chunks) res.write(chunk);
    },
    close: (reason) => {
      deps.logger.info({ nodeId, reason }, 'closing node stream');
      res.end();
      res.destroy();
    },
  });
  // Comments keep idle proxies and load balancers from closing the stream.
  const keepAlive = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
  deps.logger.info({ nodeId, auth: node.method, appliedVersion }, 'node connected');
  req.on('close', () => {
    clearInterval(keepAlive);
    unsubscribe();
    deps.logger.info({ nodeId }, 'node disconnected');
    // Another stream of the same node (a reconnect racing this close) keeps it connected.
    if (!deps.publisher.connectedNodeIds().includes(nodeId)) void setNodeConnected(deps.db, nodeId, false).catch(() => undefined);
  });
}

export async function handleNodeReport(req: IncomingMessage, res: ServerResponse, deps: NodeRouteDeps): Promise<void> {
  const node = await requireNode(req, res, deps);
  if (!node) return;
  const body = await readJsonBody(req, res, MAX_NODE_REPORT_BYTES, ControlPlaneMessage.reportTooLarge(MAX_NODE_REPORT_BYTES));
  if (body === undefined) {
    // Not silent on this side either: an operator sees which node's reports are lost.
    if (res.statusCode === 413) deps.logger.warn({ nodeId: node.nodeId, maxBytes: MAX_NODE_REPORT_BYTES }, 'refused an oversized node report');
    return;
  }
  const parsed = NodeReportSchema.safeParse(body);
  if (!parsed.success) return sendError(res, 'invalid_request', ControlPlaneMessage.notAReport());
  // A node reports for itself only.
  if (parsed.data.nodeId !== node.nodeId) return sendError(res, 'invalid_request', 'nodeId in the report is not the authenticated node');
  await recordNodeReport(deps.db, parsed.data);
  if (parsed.data.catalogs) await recordToolCatalogs(deps.db, parsed.data.catalogs, deps.logger);
  if (parsed.data.upstreams) await recordUpstreamHealth(deps.db, node.nodeId, parsed.data.upstreams);
  res.writeHead(204).end();
}

export async function handleNodeJwks(req: IncomingMessage, res: ServerResponse, deps: NodeRouteDeps): Promise<void> {
  // Public keys: an operator may fetch them with the shared token alone, to pin them (--trust-jwks).
  if (!(await requireNode(req, res, deps, true))) return;
  sendJson(res, 200, { keys: deps.trustedKeys });
}

/** The cached whole snapshot, its data key wrapped for this node: what it writes as its new base on disk. */
export async function handleNodeSnapshot(req: IncomingMessage, res: ServerResponse, deps: NodeRouteDeps): Promise<void> {
  const node = await requireNode(req, res, deps);
  if (!node) return;
  const sealingJwk = sealingKey(req, res, node);
  if (!sealingJwk) return;
  const whole = await deps.publisher.wholeSnapshot(sealingJwk);
  res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(whole.body);
}

/** `POST /nodes/enroll`: with `Authorization: Bearer ghe_…` the node is approved at once; without, it waits for approveNode. */
export async function handleNodeEnroll(req: IncomingMessage, res: ServerResponse, deps: NodeRouteDeps): Promise<void> {
  const body = await readJsonBody(req, res, 16 * 1024);
  if (body === undefined) return;
  const parsed = NodeEnrollmentSchema.safeParse(body);
  if (!parsed.success || (parsed.data.identityJwk as JWK).d !== undefined || (parsed.data.sealingJwk as JWK).d !== undefined) {
    return sendError(res, 'invalid_request', ControlPlaneMessage.notAnEnrollment());
  }
  const outcome = await enrollNode(deps.db, parsed.data, parseBearer(req.headers.authorization));
  if (!outcome.ok) {
    deps.logger.warn({ code: outcome.code, nodeId: parsed.data.nodeId, remote: req.socket.remoteAddress }, 'refused a node enrollment');
    return sendError(res, outcome.code);
  }
  deps.logger.info({ nodeId: parsed.data.nodeId, status: outcome.status, fingerprint: outcome.fingerprint }, 'node enrolled');
  sendJson(res, outcome.status === 'APPROVED' ? 200 : 202, { nodeId: parsed.data.nodeId, status: outcome.status, fingerprint: outcome.fingerprint });
}

/** Every 20 s, vouches for the streams open here in one statement, so `nodes` can tell CONNECTED from gone. */
export function startNodeHeartbeat(deps: NodeRouteDeps, intervalMs = 20_000): () => void {
  const timer = setInterval(() => {
    touchConnectedNodes(deps.db, deps.publisher.connectedNodeIds()).catch((error: unknown) =>
      deps.logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'node heartbeat failed'),
    );
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
