/**
 * What each connect page says: the success page ("you can go back to Claude Code") and one clear error
 * page per failure (expired or reused link, denied consent, state mismatch, authorization server
 * unreachable, forged form). Plain HTML that works without JavaScript; no stored value is ever shown.
 */
import type { OAuthErrorCode } from '../oauth/errors.js';
import { html, layout, type Html } from './html.js';

export type ConnectFailure =
  | OAuthErrorCode
  | 'LINK_INVALID'
  | 'LINK_USED'
  | 'LINK_EXPIRED'
  | 'SESSION_EXPIRED'
  | 'CSRF_FAILED'
  | 'UPSTREAM_REJECTED'
  | 'BAD_INPUT';

const FAILURES: Record<ConnectFailure, { status: number; title: string; advice: string }> = {
  LINK_INVALID: { status: 404, title: 'This link is not valid', advice: 'Ask your agent again: the next tool call gives you a fresh link.' },
  LINK_USED: { status: 410, title: 'This link was already used', advice: 'Each link works once. Ask your agent again for a fresh link.' },
  LINK_EXPIRED: { status: 410, title: 'This link has expired', advice: 'Links expire after 15 minutes. Ask your agent again for a fresh link.' },
  SESSION_EXPIRED: { status: 403, title: 'This page has expired', advice: 'Open a fresh link from your agent and start again.' },
  CSRF_FAILED: { status: 403, title: 'This form could not be accepted', advice: 'The form was not the one Gatehouse showed you. Open a fresh link and try again.' },
  UPSTREAM_REJECTED: { status: 400, title: 'The server did not accept these values', advice: 'Check the values and submit again. Nothing was saved.' },
  BAD_INPUT: { status: 400, title: 'Some values are missing', advice: 'Fill in every field and submit again. Nothing was saved.' },
  DISCOVERY_FAILED: { status: 502, title: 'The server\u2019s sign-in could not be found', advice: 'Ask your Gatehouse admin to check the server\u2019s OAuth settings.' },
  PKCE_UNSUPPORTED: { status: 502, title: 'The server\u2019s sign-in is not safe enough', advice: 'Its authorization server does not support PKCE (S256); ask your Gatehouse admin.' },
  REGISTRATION_UNAVAILABLE: { status: 502, title: 'Gatehouse is not registered with this sign-in', advice: 'Ask your Gatehouse admin to set a client id for this server.' },
  AS_UNREACHABLE: { status: 502, title: 'The sign-in server could not be reached', advice: 'Try again in a minute. Nothing you had stored was lost.' },
  INVALID_GRANT: { status: 400, title: 'The sign-in was not accepted', advice: 'Start again from a fresh link.' },
  AS_ERROR: { status: 502, title: 'The sign-in server refused the request', advice: 'Start again from a fresh link; if it keeps failing, ask your Gatehouse admin.' },
  ACCESS_DENIED: { status: 403, title: 'Access was not granted', advice: 'You declined at the sign-in page. Nothing was stored. Ask your agent again if you change your mind.' },
  STATE_INVALID: { status: 400, title: 'This sign-in response does not match', advice: 'It was already used, expired, or was not started here. Start again from a fresh link.' },
  ISSUER_MISMATCH: { status: 400, title: 'This sign-in response came from the wrong server', advice: 'Nothing was stored. Start again from a fresh link.' },
  NOT_CONNECTED: { status: 404, title: 'Not connected', advice: 'Start again from a fresh link.' },
  NEEDS_REAUTH: { status: 400, title: 'Sign in again', advice: 'Start again from a fresh link.' },
  WRONG_AUTH_TYPE: { status: 400, title: 'This server does not use this kind of sign-in', advice: 'Ask your Gatehouse admin.' },
};

export function failureStatus(code: ConnectFailure): number {
  return FAILURES[code].status;
}

export function errorPage(code: ConnectFailure, detail?: string): string {
  const failure = FAILURES[code];
  const more: Html = detail ? html`<p class="hint">${detail}</p>` : html``;
  return layout(failure.title, html`<h1>${failure.title}</h1><p>${failure.advice}</p>${more}<p class="hint">Code: ${code}</p>`, 'error');
}

export function successPage(serverName: string, what: 'connected' | 'saved' | 'cleared' | 'admin'): string {
  const lead =
    what === 'admin'
      ? html`<p>Gatehouse now holds the shared credential for <strong>${serverName}</strong>. Its tools are available to every key granted them.</p>`
      : what === 'cleared'
        ? html`<p>Your values for <strong>${serverName}</strong> were removed.</p>`
        : html`<p>Your account for <strong>${serverName}</strong> is ${what === 'saved' ? 'saved' : 'connected'}.</p><p>You can go back to Claude Code (or your agent) and run the tool again.</p>`;
  return layout('Connected', html`<h1>${what === 'cleared' ? 'Cleared' : 'All set'}</h1>${lead}<p class="hint">You can close this page.</p>`);
}

export type LinkKind = 'connect' | 'oauth-start';

/**
 * The page a one-time link's GET shows: one button that POSTs back to the link (with the form value its
 * cookie matches). It names no user, server or account: a link preview would show it to a whole channel.
 * Nor does it hold the link's token: the form has no action, so it posts to the page's own address (a saved
 * page, a screenshot of its source, an extension reading the DOM get no usable link from it).
 */
export function linkLandingPage(formValue: string, kind: LinkKind): string {
  const what =
    kind === 'connect'
      ? html`<p>This one-time link opens a Gatehouse page where you connect an account for your agent.</p>`
      : html`<p>This one-time link starts the sign-in that gives Gatehouse a server's shared credential.</p>`;
  const body = html`<h1>Open your Gatehouse link</h1>${what}
<p class="hint">It works once, so it opens only when you press the button: link previews in chat and mail do not use it up.</p>
<form method="post"><input type="hidden" name="csrf" value="${formValue}"><button type="submit">Continue</button></form>`;
  return layout('Open your Gatehouse link', body);
}
