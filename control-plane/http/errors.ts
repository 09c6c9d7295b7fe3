/**
 * The control plane's HTTP error table (the GraphQL endpoint has its own, graphql/errors.ts): every
 * failure a non-GraphQL route answers with has one stable `type`, and this module is the only place that
 * turns it into a status and a `{type, message}` body (STYLE #2, like the node's data-plane/errors.ts).
 * Default messages name what a person should check; none may contain a secret. It does no I/O.
 */

export type ControlPlaneErrorCode =
  | 'node_token_required'
  | 'node_pending_approval'
  | 'node_revoked'
  | 'node_key_mismatch'
  | 'node_exists'
  | 'enrollment_token_invalid'
  | 'too_many_pending_nodes'
  | 'admin_token_required'
  | 'audit_unavailable'
  | 'invalid_request'
  | 'invalid_json'
  | 'payload_too_large'
  | 'not_found'
  | 'internal_error';

interface ErrorSpec {
  status: number;
  message: string;
}

/** THE table. Messages are defaults; a route may pass a more specific one (never containing a secret). */
export const CONTROL_PLANE_ERRORS: Readonly<Record<ControlPlaneErrorCode, ErrorSpec>> = {
  node_token_required: {
    status: 401,
    message:
      'the node credentials were not accepted: check GATEHOUSE_NODE_TOKEN (the shared node token, if this control plane accepts one) ' +
      'or enroll the node (GATEHOUSE_ENROLLMENT_TOKEN, or approveNode)',
  },
  node_pending_approval: { status: 403, message: 'this node is enrolled but not approved yet: an admin must run approveNode with its id and fingerprint' },
  node_revoked: { status: 403, message: 'this node has been revoked; enroll it again with a new GATEHOUSE_ENROLLMENT_TOKEN' },
  node_key_mismatch: { status: 403, message: 'the node key presented is not the one enrolled for this node id' },
  node_exists: { status: 409, message: 'a node with this id is already enrolled with other keys; use another --node-id or forgetNode first' },
  enrollment_token_invalid: { status: 401, message: 'the enrollment token is unknown, used, expired or for another node id: check GATEHOUSE_ENROLLMENT_TOKEN' },
  too_many_pending_nodes: { status: 429, message: 'too many nodes await approval; approve or forget some first' },
  admin_token_required: { status: 401, message: 'an admin token is required: send Authorization: Bearer <admin token>' },
  audit_unavailable: { status: 503, message: 'the audit store could not take this batch now; resend it later' },
  invalid_request: { status: 400, message: 'invalid request' },
  invalid_json: { status: 400, message: 'body is not valid JSON' },
  payload_too_large: { status: 413, message: 'request body is too large' },
  not_found: { status: 404, message: 'not found' },
  internal_error: { status: 500, message: 'internal error' },
};

export interface ControlPlaneErrorBody {
  type: ControlPlaneErrorCode;
  message: string;
}

/** Status, headers (WWW-Authenticate on 401, RFC 6750 §3) and body for a code. */
export function controlPlaneError(code: ControlPlaneErrorCode, message?: string): { status: number; headers: Record<string, string>; body: ControlPlaneErrorBody } {
  const spec = CONTROL_PLANE_ERRORS[code];
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (spec.status === 401) headers['www-authenticate'] = code === 'admin_token_required' ? 'Bearer realm="gatehouse"' : 'Bearer realm="gatehouse-nodes"';
  return { status: spec.status, headers, body: { type: code, message: message ?? spec.message } };
}

/** Texts of errors that say more than the table's default. */
export const ControlPlaneMessage = {
  noRoute: (method: string, path: string) => `no route for ${method} ${path.slice(0, 200)}`,
  bodyTooLarge: (limit: number) => `body exceeds ${limit} bytes`,
  badNodeId: (header: string) => `header ${header} must be 1-200 of [A-Za-z0-9._:-]`,
  badNodeKey: (header: string) => `header ${header} must be a base64url public X25519 JWK`,
  notAReport: () => 'body is not a node report',
  reportTooLarge: (limit: number) => `node report exceeds ${limit} bytes and was dropped: the node must send fewer tool catalogs (nodes since this bound trim their reports themselves)`,
  notAnAuditBatch: (max: number) => `body must be {events: [...]} with 1 to ${max} audit events`,
  badAuditRange: (field: string) => `${field} must be an ISO-8601 date-time`,
  notAnEnrollment: () => 'body must be {nodeId, identityJwk (public Ed25519 JWK), sealingJwk (public X25519 JWK)}',
} as const;
