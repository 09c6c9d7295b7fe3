/**
 * How a call answers when its caller has no usable credential for a per-user server (SPEC §4): to clients
 * that declared URL-mode elicitation, MCP 2025-11-25's `URLElicitationRequiredError` (-32042) carrying
 * the connect URL; to every other client a tool result with `isError: true` whose text a person can act
 * on, plus `mcp_auth_required {kind, server, url, required_header_keys}` in `structuredContent` and
 * `_meta` for machines. A credential that cannot be had right now (authorization server down, shared
 * OAuth needing an admin) is a tool error saying so. The upstream is never called in either case.
 */
import { randomUUID } from 'node:crypto';
import type { JSONRPCRequest } from '@modelcontextprotocol/sdk/types.js';
import { CredentialMessage, GatewayError, RpcCode, type JsonRpcId } from '../errors.js';
import type { CredentialAnswer } from '../snapshot/credential-protocol.js';

/** The machine-readable part of an auth-required answer. */
export interface McpAuthRequired {
  kind: 'oauth' | 'headers';
  server: string;
  url: string;
  required_header_keys?: string[];
}

/** The `_meta` key MCP 2026-07-28 clients put their capabilities under (per request). */
const CLIENT_CAPABILITIES_META = 'io.modelcontextprotocol/clientCapabilities';
const PROTOCOL_VERSION_META = 'io.modelcontextprotocol/protocolVersion';
/** The first revision without server-to-client requests: URL elicitation is an `InputRequiredResult` there. */
const MRTR_VERSION = '2026-07-28';

/** Whether the request speaks MCP 2026-07-28 (per-request `_meta` protocol version). */
export function speaksMrtr(message: JSONRPCRequest): boolean {
  const version = (message.params?._meta as Record<string, unknown> | undefined)?.[PROTOCOL_VERSION_META];
  return typeof version === 'string' && version >= MRTR_VERSION;
}

export function authRequiredError(server: string, answer: Extract<CredentialAnswer, { status: 'auth_required' }>): GatewayError {
  const payload: McpAuthRequired =
    answer.kind === 'headers'
      ? { kind: 'headers', server, url: answer.url, required_header_keys: answer.requiredHeaderKeys ?? [] }
      : { kind: 'oauth', server, url: answer.url };
  const message =
    answer.kind === 'headers'
      ? CredentialMessage.headersRequired(server, answer.url, answer.requiredHeaderKeys ?? [], answer.reason === 'needs_update')
      : CredentialMessage.oauthRequired(server, answer.url, answer.reason === 'needs_reauth');
  // The standard -32042 shape rides along, so a route that answers this as a plain JSON-RPC error (e.g. to an
  // `initialize` on /mcp/{server}) still gives clients MCP's URLElicitationRequiredError data.
  const elicitations = [{ mode: 'url', elicitationId: randomUUID(), url: answer.url, message: CredentialMessage.elicitation(server) }];
  return new GatewayError('auth_required', { message, data: { mcp_auth_required: payload, elicitations }, reason: answer.reason });
}

export function credentialsUnavailableError(message: string, retryable: boolean): GatewayError {
  return new GatewayError('credentials_unavailable', { message, reason: retryable ? 'transient' : 'needs_admin' });
}

function authRequiredOf(error: GatewayError): McpAuthRequired | null {
  const value = error.data?.mcp_auth_required;
  return typeof value === 'object' && value !== null ? (value as McpAuthRequired) : null;
}

/** Whether this request's client declared URL-mode elicitation (MCP 2025-11-25 `capabilities.elicitation.url`). */
export function declaresUrlElicitation(message: JSONRPCRequest, sessionCapabilities?: unknown): boolean {
  const meta = message.params?._meta as Record<string, unknown> | undefined;
  const capabilities = (meta?.[CLIENT_CAPABILITIES_META] ?? sessionCapabilities) as { elicitation?: { url?: unknown } } | undefined;
  return typeof capabilities?.elicitation?.url === 'object' && capabilities.elicitation.url !== null;
}

/**
 * The JSON-RPC answer for a credential refusal, or null when `error` is not one (the caller answers it
 * the usual way).
 */
export function credentialRefusalReply(id: JsonRpcId, error: GatewayError, urlElicitation: boolean, mrtr = false): unknown {
  if (error.code === 'credentials_unavailable') {
    return { jsonrpc: '2.0', id, result: { content: [{ type: 'text', text: error.message }], isError: true } };
  }
  if (error.code !== 'auth_required') return null;
  const payload = authRequiredOf(error);
  if (!payload) return null;
  if (urlElicitation && mrtr) {
    // MCP 2026-07-28 (basic/patterns/mrtr): no server-to-client request; the client fulfils the URL
    // elicitation and retries the call, which then finds the user's credential.
    const elicitation = (error.data?.elicitations as Array<Record<string, unknown>> | undefined)?.[0];
    return {
      jsonrpc: '2.0',
      id,
      result: {
        resultType: 'input_required',
        inputRequests: {
          connect_account: {
            method: 'elicitation/create',
            params: {
              mode: 'url',
              message: CredentialMessage.elicitation(payload.server),
              url: payload.url,
              elicitationId: typeof elicitation?.elicitationId === 'string' ? elicitation.elicitationId : randomUUID(),
            },
          },
        },
        _meta: { mcp_auth_required: payload },
      },
    };
  }
  if (urlElicitation) {
    return {
      jsonrpc: '2.0',
      id,
      error: {
        code: RpcCode.UrlElicitationRequired,
        message: error.message,
        data: {
          elicitations: [{ mode: 'url', elicitationId: randomUUID(), url: payload.url, message: CredentialMessage.elicitation(payload.server) }],
          mcp_auth_required: payload,
        },
      },
    };
  }
  return {
    jsonrpc: '2.0',
    id,
    result: {
      ...(mrtr ? { resultType: 'complete' } : {}),
      content: [{ type: 'text', text: error.message }],
      isError: true,
      structuredContent: { mcp_auth_required: payload },
      _meta: { mcp_auth_required: payload },
    },
  };
}
