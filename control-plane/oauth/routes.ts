/**
 * The OAuth routes of the control plane: the admin's one-time start link (`/oauth/start/<token>`, what
 * startServerOAuth returns), the redirect callback (every flow, shared or per user, comes back here) and
 * the Client ID Metadata Document this control plane is known by. The callback answers with a
 * page a person can read; its query (code, state) never reaches a log line.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { errorPage, failureStatus, successPage } from '../connect/pages.js';
import { redirect, sendPage } from '../connect/html.js';
import { FLOW_COOKIE, clearLinkFormCookie, cookieValue, hostedCookie, linkFailure, linkFormAccepted, showLinkLanding } from '../connect/routes.js';
import { getMcpServerById } from '../repos/mcp-servers.js';
import { OAuthFlowError } from './errors.js';
import { OAUTH_CALLBACK_PATH, START_LINK_PATTERN, type OAuthService } from './service.js';

export interface OAuthRouteDeps {
  oauth: OAuthService;
  logger: { warn(fields: object, message?: string): void };
}

export function handleClientMetadata(_req: IncomingMessage, res: ServerResponse, deps: OAuthRouteDeps): void {
  res
    .writeHead(200, { 'content-type': 'application/json', 'cache-control': 'public, max-age=300' })
    .end(JSON.stringify(deps.oauth.clientMetadataDocument()));
}

/** Whether a request is for a start link (anything under /oauth/start/, so a malformed one gets a page too). */
export function isOAuthStartPath(path: string): boolean {
  return path.startsWith('/oauth/start/');
}

/**
 * GET /oauth/start/<token>: a page whose button POSTs back (see showLinkLanding: link previews fetch links,
 * and spending on GET let a chat unfurler use the admin's link up, or bind the flow to its own "browser").
 * POST, from that page in this browser: spends the one-time link, binds the flow to this browser (the same
 * cookie the connect page sets for a per-user flow) and redirects to the authorization server. A second
 * use or an expired link gets a page saying so; the token never reaches a log line.
 */
export async function handleOAuthStart(req: IncomingMessage, res: ServerResponse, path: string, deps: OAuthRouteDeps): Promise<void> {
  const token = START_LINK_PATTERN.exec(path)?.[1];
  const advice = 'Run startServerOAuth again for a fresh link.';
  if ((req.method !== 'GET' && req.method !== 'HEAD' && req.method !== 'POST') || !token) return sendPage(res, failureStatus('LINK_INVALID'), errorPage('LINK_INVALID', advice));
  if (req.method !== 'POST') {
    const state = await deps.oauth.checkStartLink(token);
    if (!state.ok) return sendPage(res, failureStatus(linkFailure(state)), errorPage(linkFailure(state), advice));
    return showLinkLanding(res, path, 'oauth-start', deps.oauth);
  }
  if (!(await linkFormAccepted(req))) {
    deps.logger.warn({ code: 'CSRF_FAILED' }, 'OAuth start link not spent: the form did not come from its page in this browser');
    return sendPage(res, failureStatus('CSRF_FAILED'), errorPage('CSRF_FAILED', advice));
  }
  const opened = await deps.oauth.openStartLink(token);
  if (!opened.ok) {
    const code = linkFailure(opened);
    deps.logger.warn({ code }, 'OAuth start link refused');
    return sendPage(res, failureStatus(code), errorPage(code, advice));
  }
  res.setHeader('set-cookie', [hostedCookie(deps.oauth, FLOW_COOKIE, opened.browserBinding, OAUTH_CALLBACK_PATH, 'Lax', 900), clearLinkFormCookie(deps.oauth, path)]);
  redirect(res, opened.authorizationUrl);
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
