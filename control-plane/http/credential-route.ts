/**
 * `POST /nodes/credentials`: a node asks for one server's credential for one user (SPEC §3: per-user
 * credentials are not in snapshots). Authenticated with `authenticateNode` like every node route; the
 * answer is sealed to that node's X25519 key (enrolled, or presented by a shared-token node), so a
 * captured response reveals nothing. What to answer is the broker's job (connect/broker.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CredentialRequestSchema, sealCredentialAnswer } from '../../data-plane/snapshot/credential-protocol.js';
import type { CredentialBroker } from '../connect/broker.js';
import { requireNode, sealingKey, type NodeRouteDeps } from './node-routes.js';
import { readJsonBody, sendError } from './respond.js';

export interface CredentialRouteDeps {
  node: NodeRouteDeps;
  broker: CredentialBroker;
}

export async function handleNodeCredentials(req: IncomingMessage, res: ServerResponse, deps: CredentialRouteDeps): Promise<void> {
  const node = await requireNode(req, res, deps.node);
  if (!node) return;
  const key = sealingKey(req, res, node);
  if (!key) return;
  const body = await readJsonBody(req, res, 16 * 1024);
  if (body === undefined) return;
  const parsed = CredentialRequestSchema.safeParse(body);
  if (!parsed.success) {
    sendError(res, 'invalid_request', 'body must be {server, userId, rejectedGeneration?}');
    return;
  }
  const answer = await deps.broker.answer(parsed.data);
  const sealed = await sealCredentialAnswer(answer, key);
  res.writeHead(200, { 'content-type': 'application/jose', 'cache-control': 'no-store' }).end(sealed);
}
