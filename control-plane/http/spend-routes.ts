/**
 * The node routes for spend (issue 7): `POST /nodes/spend` records a batch of priced calls (idempotent per
 * request id), `GET /nodes/spend?keyId=|userId=&from=&to=` answers the spend persisted for a key (or a user) in a window (epoch
 * ms), which nodes seed their shared budget counters from. Both authenticate with `authenticateNode`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { SpendBatchSchema } from '../../data-plane/snapshot/stream-protocol.js';
import { recordSpend, spendTotals } from '../repos/spend.js';
import { authenticateNode } from './node-auth.js';
import type { NodeRouteDeps } from './node-routes.js';
import { readJsonBody, sendError, sendJson } from './respond.js';

async function requireNode(req: IncomingMessage, res: ServerResponse, deps: NodeRouteDeps): Promise<string | null> {
  const result = await authenticateNode(req, deps);
  if (result.ok) return result.node.nodeId;
  deps.logger.warn({ code: result.code, reason: result.reason, remote: req.socket.remoteAddress, path: '/nodes/spend' }, 'refused a node request');
  sendError(res, result.code);
  return null;
}

export async function handleSpendReport(req: IncomingMessage, res: ServerResponse, deps: NodeRouteDeps): Promise<void> {
  const nodeId = await requireNode(req, res, deps);
  if (nodeId === null) return;
  const body = await readJsonBody(req, res, 2 * 1024 * 1024);
  if (body === undefined) return;
  const parsed = SpendBatchSchema.safeParse(body);
  if (!parsed.success) return sendError(res, 'invalid_request', 'expected {events: [{requestId, keyId, userId, kind, model, …tokens, costNanos, at}]} (at most 1000)');
  const added = await recordSpend(deps.db, nodeId, parsed.data.events);
  sendJson(res, 200, { recorded: added, duplicates: parsed.data.events.length - added });
}

export async function handleSpendQuery(req: IncomingMessage, res: ServerResponse, deps: NodeRouteDeps): Promise<void> {
  if ((await requireNode(req, res, deps)) === null) return;
  const url = new URL(req.url ?? '/', 'http://control-plane');
  const keyId = url.searchParams.get('keyId');
  const userId = url.searchParams.get('userId');
  const from = Number(url.searchParams.get('from'));
  const to = Number(url.searchParams.get('to'));
  if ((keyId === null) === (userId === null) || !(keyId ?? userId) || !Number.isSafeInteger(from) || !Number.isSafeInteger(to) || from < 0 || to <= from || to > 8.64e15) {
    return sendError(res, 'invalid_request', 'expected ?keyId= or ?userId=, and &from=&to= (epoch ms, from < to)');
  }
  const scope = keyId !== null ? { keyId } : { userId: userId as string };
  const totals = await spendTotals(deps.db, { ...scope, from: new Date(from).toISOString(), to: new Date(to).toISOString() });
  sendJson(res, 200, { ...scope, from, to, costNanos: totals.costNanos, requests: totals.requests });
}
