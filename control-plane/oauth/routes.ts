/**
 * The OAuth routes of the control plane: the redirect callback (every flow, shared or per user, comes back
 * here) and the Client ID Metadata Document this control plane is known by. The callback answers with a
 * page a person can read; its query (code, state) never reaches a log line.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { errorPage, failureStatus, successPage } from '../connect/pages.js';
import { sendPage } from '../connect/html.js';
import { FLOW_COOKIE, cookieValue } from '../connect/routes.js';
import { getMcpServerById } from '../repos/mcp-servers.js';
import { OAuthFlowError } from './errors.js';
import type { OAuthService } from './service.js';

export interface OAuthRouteDeps {
  oauth: OAuthService;
  logger: { warn(fields: object, message?: string): void };
}

export function handleClientMetadata(_req: IncomingMessage, res: ServerResponse, deps: OAuthRouteDeps): void {
  res
    .writeHead(200, { 'content-type': 'application/json', 'cache-control': 'public, max-age=300' })
    .end(JSON.stringify(deps.oauth.clientMetadataDocument()));
}

export async function handleOAuthCallback(req: IncomingMessage, res: ServerResponse, deps: OAuthRouteDeps): Promise<void> {
  const query = new URL(req.url ?? '/', 'http://callback.invalid').searchParams;
  try {
    const completed = await deps.oauth.completeAuthorization(query, cookieValue(req, FLOW_COOKIE));
    const server = await getMcpServerById(deps.oauth.db, completed.serverId);
    sendPage(res, 200, successPage(server?.name ?? 'the server', completed.userId === null ? 'admin' : 'connected'));
  } catch (error) {
    if (error instanceof OAuthFlowError) {
      deps.logger.warn({ code: error.code }, 'OAuth callback refused');
      sendPage(res, failureStatus(error.code), errorPage(error.code));
      return;
    }
    throw error;
  }
}
