/**
 * The audit routes: `POST /nodes/audit` (a node's batch, authenticated with `authenticateNode` and stored
 * as that node's events) and `GET /audit/export` (admins: every matching event as JSON Lines, streamed a
 * page at a time with back-pressure, for a data lake). Answers come from the HTTP error table.
 * It does not chain or verify events (store.ts does).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { once } from 'node:events';
import type { Kysely } from 'kysely';
import { AUDIT_BATCH_MAX_BYTES, AUDIT_BATCH_MAX_EVENTS, AuditBatchSchema, decodeAuditBatch } from '../../data-plane/snapshot/audit-protocol.js';
import { parseBearer } from '../../data-plane/snapshot/rules.js';
import type { Database } from '../db/schema.js';
import { ControlPlaneMessage } from '../http/errors.js';
import { authenticateNode } from '../http/node-auth.js';
import { readTextBody, sendError, sendJson } from '../http/respond.js';
import type { Logger } from '../log.js';
import { authenticateAdminToken } from '../repos/admin-tokens.js';
import { iterateAuditEvents, type AuditFilter, type AuditStore } from './store.js';

export const AUDIT_EXPORT_PATH = '/audit/export';

export interface AuditRouteDeps {
  db: Kysely<Database>;
  store: AuditStore;
  sharedTokenHash: string | null;
  logger: Logger;
}

export async function handleAuditIngest(req: IncomingMessage, res: ServerResponse, deps: AuditRouteDeps): Promise<void> {
  const auth = await authenticateNode(req, deps);
  if (!auth.ok) {
    deps.logger.warn({ code: auth.code, reason: auth.reason, remote: req.socket.remoteAddress }, 'refused an audit batch');
    return sendError(res, auth.code);
  }
  const text = await readTextBody(req, res, AUDIT_BATCH_MAX_BYTES);
  if (text === undefined) return;
  // One event per line when the node laid the batch out so (each event's text is then kept as sent).
  const decoded = decodeAuditBatch(text);
  if (decoded === null) return sendError(res, 'invalid_json');
  const batch = AuditBatchSchema.safeParse(decoded.body);
  if (!batch.success) return sendError(res, 'invalid_request', ControlPlaneMessage.notAnAuditBatch(AUDIT_BATCH_MAX_EVENTS));
  try {
    const result = await deps.store.ingest(auth.node.nodeId, batch.data.events, decoded.texts);
    if (result.rejected.length > 0) deps.logger.warn({ nodeId: auth.node.nodeId, rejected: result.rejected.slice(0, 5) }, 'audit events rejected');
    sendJson(res, 200, result);
  } catch (error) {
    // The node keeps the batch and resends it: nothing is lost by answering 503.
    deps.logger.warn({ nodeId: auth.node.nodeId, err: error instanceof Error ? error.message : String(error) }, 'audit batch not stored');
    sendError(res, 'audit_unavailable');
  }
}

const FILTER_PARAMS = { key: 'keyId', user: 'userId', server: 'server', tool: 'tool', outcome: 'outcome', from: 'from', to: 'to' } as const;

export async function handleAuditExport(req: IncomingMessage, res: ServerResponse, deps: AuditRouteDeps): Promise<void> {
  const presented = parseBearer(req.headers.authorization);
  const principal = presented !== null ? await authenticateAdminToken(deps.db, presented) : null;
  if (!principal) return sendError(res, 'admin_token_required');
  const params = new URL(req.url ?? '/', 'http://x').searchParams;
  const filter: AuditFilter = {};
  for (const [param, field] of Object.entries(FILTER_PARAMS) as [keyof typeof FILTER_PARAMS, keyof AuditFilter][]) {
    const value = params.get(param);
    if (value === null || value === '') continue;
    if ((param === 'from' || param === 'to') && Number.isNaN(Date.parse(value))) return sendError(res, 'invalid_request', ControlPlaneMessage.badAuditRange(param));
    filter[field] = param === 'from' || param === 'to' ? new Date(value).toISOString() : value.slice(0, 200);
  }
  deps.logger.info({ admin: principal.name, filter }, 'audit export');
  res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
  let closed = false;
  res.on('close', () => {
    closed = true;
  });
  try {
    for await (const stored of iterateAuditEvents(deps.db, filter)) {
      if (closed) return;
      const line = JSON.stringify({ ...stored.event, partition: stored.partition, seq: stored.seq, receivedAt: stored.receivedAt, hash: stored.hash }) + '\n';
      if (!res.write(line)) await Promise.race([once(res, 'drain'), once(res, 'close')]);
    }
    res.end();
  } catch (error) {
    deps.logger.error({ err: error instanceof Error ? error.message : String(error) }, 'audit export failed');
    // Headers are sent: cutting the stream short tells the client the export is incomplete.
    res.destroy();
  }
}
