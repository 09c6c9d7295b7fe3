/**
 * Node authentication for every node-facing route: `authenticateNode(req, deps)` returns the authenticated
 * node identity or the error code to answer with. Routes added later (per-user credential fetch, audit
 * ingest) call it the same way and act as `identity.nodeId`, never as a node id the caller merely names.
 *
 * Two credentials are accepted:
 * - per-node (the default): `Authorization: Bearer <JWT>` signed by the node's enrolled Ed25519 identity key,
 *   bound to its node id, this method and this path (data-plane/snapshot/node-credential.ts), good for one
 *   request (its `jti` is remembered until it expires: a captured credential cannot be replayed); the node
 *   must be APPROVED. Its data keys are wrapped only for its enrolled X25519 key.
 * - the shared node token (`GATEHOUSE_NODE_TOKEN`), only when this control plane opted in: weaker, since
 *   whoever holds it can name any node id and receive data keys for a key pair of their own. A node id that
 *   enrolled keys is never accepted on the shared token.
 *
 * Verification is apart from HTTP answers (STYLE #5): this returns codes; routes send them with errors.ts.
 */
import type { IncomingMessage } from 'node:http';
import type { JWK } from 'jose';
import type { Kysely } from 'kysely';
import { credentialSubject, verifyNodeCredential } from '../../data-plane/snapshot/node-credential.js';
import { NODE_ID_HEADER } from '../../data-plane/snapshot/stream-protocol.js';
import { parseBearer } from '../../data-plane/snapshot/rules.js';
import { constantTimeEqual, hashToken } from '../crypto/tokens.js';
import type { Database } from '../db/schema.js';
import { claimNodeCredential } from '../repos/node-credential-uses.js';
import { getNodeCredentials } from '../repos/nodes.js';
import type { ControlPlaneErrorCode } from './errors.js';

export interface NodeIdentity {
  nodeId: string;
  method: 'enrolled' | 'shared_token';
  /** For enrolled nodes, the approved X25519 key: the only key its data keys may be wrapped for. */
  sealingJwk: JWK | null;
}

export type NodeAuthResult = { ok: true; node: NodeIdentity } | { ok: false; code: ControlPlaneErrorCode; reason: string };

export interface NodeAuthDeps {
  db: Kysely<Database>;
  /** Hash of the shared node token, or null when this control plane accepts enrolled nodes only. */
  sharedTokenHash: string | null;
}

export const NODE_ID_PATTERN = /^[A-Za-z0-9._:-]{1,200}$/;

function bearer(req: IncomingMessage): string | null {
  return parseBearer(req.headers.authorization);
}

/** The authenticated node behind a request, or why not (`reason` is for the log; it never holds a credential). */
export async function authenticateNode(
  req: IncomingMessage,
  deps: NodeAuthDeps,
  options: { now?: number; /** Shared-token callers may leave out the node id header (e.g. fetching the public keys). */ anonymousSharedToken?: boolean } = {},
): Promise<NodeAuthResult> {
  const now = options.now ?? Date.now();
  const token = bearer(req);
  if (token === null || token.length > 4096) return { ok: false, code: 'node_token_required', reason: 'no bearer credential' };
  const path = (req.url ?? '/').split('?')[0] ?? '/';

  // A JWT has three dot-separated parts; the shared token has none.
  if (token.split('.').length === 3) {
    const nodeId = credentialSubject(token);
    if (nodeId === null || !NODE_ID_PATTERN.test(nodeId)) return { ok: false, code: 'node_token_required', reason: 'credential names no valid node id' };
    const node = await getNodeCredentials(deps.db, nodeId);
    if (!node || !node.identityJwk) return { ok: false, code: 'node_token_required', reason: `node ${nodeId} is not enrolled` };
    const verified = await verifyNodeCredential(token, node.identityJwk, { nodeId, method: req.method ?? 'GET', path }, now);
    if (!verified) return { ok: false, code: 'node_token_required', reason: `credential of node ${nodeId} did not verify` };
    if (!(await claimNodeCredential(deps.db, nodeId, verified.jti, verified.usableUntil, now))) {
      return { ok: false, code: 'node_token_required', reason: `credential of node ${nodeId} was already used (replayed)` };
    }
    if (node.enrollment === 'PENDING') return { ok: false, code: 'node_pending_approval', reason: `node ${nodeId} awaits approval` };
    if (node.enrollment === 'REVOKED') return { ok: false, code: 'node_revoked', reason: `node ${nodeId} is revoked` };
    return { ok: true, node: { nodeId, method: 'enrolled', sealingJwk: node.sealingJwk } };
  }

  if (deps.sharedTokenHash === null) return { ok: false, code: 'node_token_required', reason: 'shared node token presented but not accepted here' };
  if (!constantTimeEqual(hashToken(token), deps.sharedTokenHash)) return { ok: false, code: 'node_token_required', reason: 'wrong shared node token' };
  const nodeId = String(req.headers[NODE_ID_HEADER] ?? '');
  if (nodeId === '' && options.anonymousSharedToken) return { ok: true, node: { nodeId: '', method: 'shared_token', sealingJwk: null } };
  if (!NODE_ID_PATTERN.test(nodeId)) return { ok: false, code: 'invalid_request', reason: 'bad node id header' };
  const node = await getNodeCredentials(deps.db, nodeId);
  if (node?.enrollment === 'REVOKED') return { ok: false, code: 'node_revoked', reason: `node ${nodeId} is revoked` };
  if (node && node.enrollment !== 'SHARED_TOKEN') {
    return { ok: false, code: 'node_token_required', reason: `node ${nodeId} is enrolled; the shared token cannot act for it` };
  }
  return { ok: true, node: { nodeId, method: 'shared_token', sealingJwk: null } };
}
