/**
 * Expected failures of the OAuth flows, each with a stable code, so every boundary (GraphQL payloads, the
 * connect pages, the node credential route, tool errors) translates them once. Messages name what a person
 * must do and never carry a token, code, verifier, state or client secret.
 */

export type OAuthErrorCode =
  /** The MCP server or its metadata could not be read, or names no authorization server. */
  | 'DISCOVERY_FAILED'
  /** The authorization server does not advertise PKCE S256 (MCP 2025-11-25 requires refusing it). */
  | 'PKCE_UNSUPPORTED'
  /** No way to get a client id: nothing pre-registered, no CIMD support, no registration endpoint. */
  | 'REGISTRATION_UNAVAILABLE'
  /** The authorization server could not be reached or answered 5xx / timed out: worth retrying. */
  | 'AS_UNREACHABLE'
  /** The authorization server refused the grant (`invalid_grant`): a person must authorize again. */
  | 'INVALID_GRANT'
  /** The authorization server answered an error other than invalid_grant. */
  | 'AS_ERROR'
  /** The user said no at the authorization server. */
  | 'ACCESS_DENIED'
  /** A callback whose state is unknown, spent, expired or does not match. */
  | 'STATE_INVALID'
  /** A callback from an issuer other than the one the flow started with (RFC 9207). */
  | 'ISSUER_MISMATCH'
  /** No credential stored (never connected, or revoked). */
  | 'NOT_CONNECTED'
  /** The stored credential needs a person to authorize again. */
  | 'NEEDS_REAUTH'
  /** The server is not an OAuth server of the kind asked for. */
  | 'WRONG_AUTH_TYPE';

export class OAuthFlowError extends Error {
  constructor(
    readonly code: OAuthErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'OAuthFlowError';
  }

  /** Transient failures keep the credential and may be retried; only these. */
  get transient(): boolean {
    return this.code === 'AS_UNREACHABLE';
  }
}
