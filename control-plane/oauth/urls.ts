/**
 * THE rule for an authorization server's URLs (issuer, authorization, token and registration endpoints),
 * wherever they come from: an admin's setMcpServerOAuth, discovery (RFC 9728 / RFC 8414 metadata), or
 * settings stored before a rule changed and read when a flow starts. Codes, client secrets, tokens and
 * refresh tokens travel to them, and the authorization endpoint is where a person's browser is sent, so:
 * http(s) only (a `javascript:`, `file:` or custom scheme there is the class of CVE-2025-6514), https unless
 * the named opt-in (GATEHOUSE_OAUTH_ALLOW_HTTP, for tests and loopback development) is on, and no
 * `user:password@` (the rule of every stored URL, repos/url-secrets.ts: the client secret has its own
 * write-only field). A credential elsewhere in an admin's URL is kept sealed and shown redacted (same module).
 */
import { urlProblem, type UrlProblem } from '../repos/url-secrets.js';

export type OAuthUrlProblem = UrlProblem;

export function oauthEndpointProblem(value: string, allowInsecure: boolean): OAuthUrlProblem | null {
  return urlProblem(value, { requireHttps: !allowInsecure });
}

/** What a problem means to the person who wrote (or whose server published) `what`. */
export function oauthEndpointProblemText(problem: OAuthUrlProblem, what: string): string {
  switch (problem) {
    case 'not_a_url':
      return `${what} is not a URL`;
    case 'not_http':
      return `${what} is not an http(s) URL`;
    case 'credentials':
      return `${what} must not embed credentials; use clientId and clientSecret`;
    case 'insecure':
      return `${what} must use https (http:// is accepted only with GATEHOUSE_OAUTH_ALLOW_HTTP=1, for development)`;
  }
}
