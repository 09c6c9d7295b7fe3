/**
 * The `/connect/...` pages a person opens from an `mcp_auth_required` answer (no JavaScript needed):
 *
 *   GET  /connect/<link token>     only a page with a "Continue" button (and a cookie for its form): chat
 *                                  link previews and mail scanners fetch links, and spending on GET let them
 *                                  use a person's link up, or open it in their place
 *   POST /connect/<link token>     from that page (the form's value must match its cookie, so another site's
 *                                  form cannot spend a link in someone's browser): spends the one-time link
 *                                  (bound to a user and server, 15 minutes), sets a short session cookie and
 *                                  redirects to /connect/session, so the token is useless in any log or
 *                                  history from then on
 *   GET  /connect/session          the page: "continue to sign in" (OAuth) or the header form
 *   POST /connect/session/oauth    CSRF-checked; starts the user's OAuth authorization (PKCE, state) and
 *                                  redirects to the authorization server; the callback stores their tokens
 *   POST /connect/session/headers  CSRF-checked; verifies the values against the upstream (initialize +
 *                                  tools/list), then stores them sealed
 *   POST /connect/session/clear    CSRF-checked; forgets the user's header values
 *
 * Identity is the link's user, never anything the browser sends. No stored value is ever shown back.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import type { Kysely } from 'kysely';
import type { SecretBox } from '../crypto/secret-box.js';
import { constantTimeEqual } from '../crypto/tokens.js';
import { readBody } from '../../data-plane/snapshot/bounded-body.js';
import type { Database } from '../db/schema.js';
import {
  createConnectSession,
  deleteHeaderSet,
  getConnectSession,
  getHeaderSet,
  headerSetAad,
  peekConnectLink,
  saveHeaderSet,
  spendConnectLink,
  type LinkState,
  type ConnectSessionRow,
} from '../repos/connect.js';
import { connectionUrlText, getMcpServerById, serverHeaderAad, type McpServer } from '../repos/mcp-servers.js';
import { getUser } from '../repos/users.js';
import { OAuthFlowError } from '../oauth/errors.js';
import { OAUTH_CALLBACK_PATH, type OAuthService } from '../oauth/service.js';
import { html, layout, redirect, sendPage } from './html.js';
import { errorPage, failureStatus, linkLandingPage, successPage, type ConnectFailure, type LinkKind } from './pages.js';
import { headerValueProblem } from '../../data-plane/snapshot/rules.js';

export const CONNECT_SESSION_PATH = '/connect/session';
const COOKIE = 'gh_connect';
/** Binds a per-user authorization to the browser that started it (read by the OAuth callback). */
export const FLOW_COOKIE = 'gh_oauth_flow';
const LINK_PATTERN = /^\/connect\/(ghc_[A-Za-z0-9_-]{43})$/;
const MAX_FORM_BYTES = 32 * 1024;

export interface ConnectRouteDeps {
  db: Kysely<Database>;
  box: SecretBox;
  oauth: OAuthService;
  env?: NodeJS.ProcessEnv;
  logger: { info(fields: object, message?: string): void; warn(fields: object, message?: string): void };
  /** Called after a user's credential changed (saved, cleared), so nodes drop cached copies. */
  onCredentialChanged?: (serverId: string, userId: string) => void;
}

function fail(res: ServerResponse, code: ConnectFailure, detail?: string): void {
  sendPage(res, failureStatus(code), errorPage(code, detail));
}

export function cookieValue(req: IncomingMessage, name: string): string | null {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}

/** The form body, or null when it is too large (or the browser went away while sending it). */
async function readForm(req: IncomingMessage): Promise<URLSearchParams | null> {
  const body = await readBody(req, MAX_FORM_BYTES);
  return body.kind === 'ok' ? new URLSearchParams(body.text) : null;
}

/** Whether a request is one of ours: GET paths we serve under /connect/. */
export function isConnectPath(path: string): boolean {
  return path === CONNECT_SESSION_PATH || path.startsWith(`${CONNECT_SESSION_PATH}/`) || LINK_PATTERN.test(path);
}

/** The cookie that carries a one-time link page's form value (double submit), scoped to that link's path. */
const LINK_FORM_COOKIE = 'gh_link_form';

/** A link that cannot be spent: the page that says why. */
export function linkFailure(state: Exclude<LinkState, { ok: true }>): ConnectFailure {
  return state.reason === 'used' ? 'LINK_USED' : state.reason === 'expired' ? 'LINK_EXPIRED' : 'LINK_INVALID';
}

/**
 * GET of a one-time link (connect links, the admin's OAuth start links): a page whose button POSTs back to
 * the same path, and a fresh random value both in the form and in a cookie scoped to that path. Nothing is
 * spent and nothing about the link's user or server is shown (a preview bot would publish it).
 */
export function showLinkLanding(res: ServerResponse, path: string, kind: LinkKind, oauth: OAuthService): void {
  const formValue = randomBytes(32).toString('base64url');
  sendPage(res, 200, linkLandingPage(formValue, kind), {
    'set-cookie': hostedCookie(oauth, LINK_FORM_COOKIE, formValue, path, 'Strict', 900),
  });
}

/**
 * Every cookie the hosted pages set, scoped to `path` (a route) as the browser sees it (`publicPath`):
 * scoped to the route itself, a control plane served under a path prefix never got its cookies back (the
 * Continue form was refused as CSRF_FAILED, the session and OAuth callback lost theirs). HttpOnly, and
 * Secure when the public URL is https.
 */
export function hostedCookie(oauth: OAuthService, name: string, value: string, path: string, sameSite: 'Strict' | 'Lax', maxAgeSeconds: number): string {
  const secure = oauth.publicBaseUrl().startsWith('https:') ? '; Secure' : '';
  return `${name}=${value}; Path=${oauth.publicPath(path)}; HttpOnly; SameSite=${sameSite}; Max-Age=${maxAgeSeconds}${secure}`;
}

/**
 * Whether a POST to a one-time link came from its own page in this browser: the form value equals the
 * cookie that page set. Another site can make a browser POST to a link it knows, but cannot read or set
 * this cookie (SameSite=Strict also keeps it off cross-site requests), so it cannot log a browser into a
 * link's session (a victim would then type their credential into the sender's account).
 */
export async function linkFormAccepted(req: IncomingMessage): Promise<boolean> {
  const form = await readForm(req);
  const cookie = cookieValue(req, LINK_FORM_COOKIE);
  const sent = form?.get('csrf') ?? '';
  return cookie !== null && cookie.length >= 32 && constantTimeEqual(sent, cookie);
}

/** Clears the landing form's cookie once the link is spent (or refused). */
export function clearLinkFormCookie(oauth: OAuthService, path: string): string {
  return hostedCookie(oauth, LINK_FORM_COOKIE, '', path, 'Strict', 0);
}

export async function handleConnect(req: IncomingMessage, res: ServerResponse, path: string, deps: ConnectRouteDeps): Promise<void> {
  const link = LINK_PATTERN.exec(path);
  // HEAD as GET: scanners send it, and a HEAD that differed (a 404) would tell them to try something else.
  if (link?.[1] && (req.method === 'GET' || req.method === 'HEAD')) return showLink(res, path, link[1], deps);
  if (link?.[1] && req.method === 'POST') return spendLink(req, res, path, link[1], deps);
  if (path === CONNECT_SESSION_PATH && req.method === 'GET') return showSession(req, res, deps);
  if (req.method === 'POST' && path.startsWith(`${CONNECT_SESSION_PATH}/`)) return submit(req, res, path.slice(CONNECT_SESSION_PATH.length + 1), deps);
  fail(res, 'LINK_INVALID');
}

async function showLink(res: ServerResponse, path: string, token: string, deps: ConnectRouteDeps): Promise<void> {
  const state = await peekConnectLink(deps.db, token);
  if (!state.ok) return fail(res, linkFailure(state));
  showLinkLanding(res, path, 'connect', deps.oauth);
}

async function spendLink(req: IncomingMessage, res: ServerResponse, path: string, token: string, deps: ConnectRouteDeps): Promise<void> {
  if (!(await linkFormAccepted(req))) {
    deps.logger.warn({}, 'connect link not spent: the form did not come from its page in this browser');
    return fail(res, 'CSRF_FAILED');
  }
  const spent = await spendConnectLink(deps.db, token);
  if (!spent.ok) return fail(res, linkFailure(spent));
  const session = await createConnectSession(deps.db, spent.userId, spent.serverId, spent.kind);
  res.setHeader('set-cookie', [hostedCookie(deps.oauth, COOKIE, session.sessionId, '/connect', 'Lax', 900), clearLinkFormCookie(deps.oauth, path)]);
  redirect(res, deps.oauth.publicPath(CONNECT_SESSION_PATH));
}

async function currentSession(req: IncomingMessage, deps: ConnectRouteDeps): Promise<{ session: ConnectSessionRow; server: McpServer } | null> {
  const id = cookieValue(req, COOKIE);
  if (!id) return null;
  const session = await getConnectSession(deps.db, id);
  if (!session) return null;
  const server = await getMcpServerById(deps.db, session.server_id);
  return server ? { session, server } : null;
}

async function showSession(req: IncomingMessage, res: ServerResponse, deps: ConnectRouteDeps): Promise<void> {
  const current = await currentSession(req, deps);
  if (!current) return fail(res, 'SESSION_EXPIRED');
  const { session, server } = current;
  const csrf = html`<input type="hidden" name="csrf" value="${session.csrf_token}">`;
  // Whoever opens a link acts for the link's user: a link forwarded by someone else would store this
  // person's credential for that other account (whose agent could then use it). Naming the account lets
  // the person see that before they sign in or type anything.
  const user = await getUser(deps.db, session.user_id);
  if (!user) return fail(res, 'SESSION_EXPIRED');
  const forWhom = html`<p class="for">This link connects <strong>${server.name}</strong> for the Gatehouse user <strong>${user.email}</strong>. If that is not you, close this page: what you enter here would be used by that user's agent.</p>`;
  if (session.kind === 'oauth') {
    const body = html`<h1>Connect your ${server.name} account</h1>${forWhom}
<p>Gatehouse will send you to ${server.name}'s sign-in page. After you approve, Gatehouse keeps the token for you; your agent never sees it.</p>
<form method="post" action="${deps.oauth.publicPath(`${CONNECT_SESSION_PATH}/oauth`)}">${csrf}<button type="submit">Continue to sign in</button></form>`;
    return sendPage(res, 200, layout(`Connect ${server.name}`, body));
  }
  const stored = await getHeaderSet(deps.db, server.id, session.user_id);
  const fields = server.perUserHeaderKeys.map(
    (key, i) => html`<label for="h${i}">${key}</label><input type="password" id="h${i}" name="header:${key}" autocomplete="off" required>`,
  );
  const clear = stored
    ? html`<p class="hint">You have values stored for ${server.name} (they are never shown). Submitting replaces them.</p>
<form method="post" action="${deps.oauth.publicPath(`${CONNECT_SESSION_PATH}/clear`)}">${csrf}<button type="submit">Clear my values</button></form>`
    : html``;
  const body = html`<h1>Your ${server.name} credentials</h1>${forWhom}
<p>${server.name} needs values of your own. Gatehouse stores them encrypted and sends them only to ${server.name}; your agent never sees them.</p>
<form method="post" action="${deps.oauth.publicPath(`${CONNECT_SESSION_PATH}/headers`)}">${csrf}${fields}<button type="submit">Save</button></form>${clear}`;
  sendPage(res, 200, layout(`Connect ${server.name}`, body));
}

async function submit(req: IncomingMessage, res: ServerResponse, action: string, deps: ConnectRouteDeps): Promise<void> {
  const current = await currentSession(req, deps);
  const form = await readForm(req);
  if (!current) return fail(res, 'SESSION_EXPIRED');
  if (!form) return fail(res, 'BAD_INPUT', 'The form is too large.');
  const { session, server } = current;
  if (!constantTimeEqual(form.get('csrf') ?? '', session.csrf_token)) {
    deps.logger.warn({ serverId: server.id }, 'connect form refused: CSRF token mismatch');
    return fail(res, 'CSRF_FAILED');
  }
  if (action === 'oauth' && session.kind === 'oauth') {
    try {
      // The flow is bound to this browser: the callback refuses it without this cookie.
      const binding = randomBytes(32).toString('base64url');
      const url = await deps.oauth.startAuthorization(server, session.user_id, { browserBinding: binding });
      return redirect(res, url.href, { 'set-cookie': hostedCookie(deps.oauth, FLOW_COOKIE, binding, OAUTH_CALLBACK_PATH, 'Lax', 900) });
    } catch (error) {
      if (error instanceof OAuthFlowError) return fail(res, error.code);
      throw error;
    }
  }
  if (action === 'headers' && session.kind === 'headers') return saveHeaders(res, form, session, server, deps);
  if (action === 'clear' && session.kind === 'headers') {
    await deleteHeaderSet(deps.db, server.id, session.user_id);
    deps.onCredentialChanged?.(server.id, session.user_id);
    return sendPage(res, 200, successPage(server.name, 'cleared'));
  }
  fail(res, 'BAD_INPUT');
}

async function saveHeaders(res: ServerResponse, form: URLSearchParams, session: ConnectSessionRow, server: McpServer, deps: ConnectRouteDeps): Promise<void> {
  const values: Record<string, string> = {};
  for (const key of server.perUserHeaderKeys) {
    const value = (form.get(`header:${key}`) ?? '').trim();
    if (value === '') return fail(res, 'BAD_INPUT', `A value for ${key} is required.`);
    // Only what an HTTP header can carry: anything else would fail every call to the server later.
    if (headerValueProblem(value) !== null) return fail(res, 'BAD_INPUT', `The value for ${key} has characters a header cannot carry (control characters, or beyond Latin-1).`);
    values[key] = value;
  }
  const verified = await verifyAgainstUpstream(server, values, deps);
  if (!verified.ok) return fail(res, 'UPSTREAM_REJECTED', verified.detail);
  // What the upstream listed to these values is this user's catalog, not the server's: it is not recorded
  // as `McpServer.tools` (other users and admins would see it), only used to tell that the values work.
  await saveHeaderSet(deps.db, server.id, session.user_id, deps.box.seal(JSON.stringify(values), headerSetAad(server.id, session.user_id)), Object.keys(values));
  deps.onCredentialChanged?.(server.id, session.user_id);
  deps.logger.info({ serverId: server.id }, 'per-user header values stored');
  sendPage(res, 200, successPage(server.name, 'saved'));
}

/** initialize + tools/list with the server's static headers overridden by the user's values: whether they work. */
async function verifyAgainstUpstream(server: McpServer, values: Record<string, string>, deps: ConnectRouteDeps): Promise<{ ok: true } | { ok: false; detail: string }> {
  const env = deps.env ?? process.env;
  const urlText = connectionUrlText(deps.box, server, env);
  if (!urlText || server.connectionType === 'STDIO') return { ok: true };
  const headers: Record<string, string> = {};
  for (const [name, secret] of Object.entries(server.headers)) {
    const value = secret.kind === 'enc' ? deps.box.open(secret.ciphertext, serverHeaderAad(server.id, name)) : env[secret.name];
    if (value !== undefined) headers[name.toLowerCase()] = value;
  }
  for (const [name, value] of Object.entries(values)) headers[name.toLowerCase()] = value;
  const client = new Client({ name: 'gatehouse-connect', version: '1' }, { capabilities: {} });
  try {
    const url = new URL(urlText);
    const transport =
      server.connectionType === 'SSE' ? new SSEClientTransport(url, { requestInit: { headers } }) : new StreamableHTTPClientTransport(url, { requestInit: { headers } });
    await client.connect(transport, { timeout: 10_000 });
    await client.listTools(undefined, { timeout: 10_000 });
    return { ok: true };
  } catch {
    // The upstream's own error text could echo a value: say only that it refused.
    return { ok: false, detail: `${server.name} did not accept these values (initialize and tools/list were tried).` };
  } finally {
    await client.close().catch(() => undefined);
  }
}
