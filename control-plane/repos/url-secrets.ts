/**
 * THE rule for URLs the control plane stores and shows (an MCP server's connection URL, an LLM provider's
 * base URL, a server's OAuth settings: authorization, token and registration endpoints, resource; the
 * resource indicator each OAuth flow and credential keeps, 0022): what
 * may be in them, and how a credential inside one is kept. It decides and transforms; it does no storage
 * (the repos call it) and no fetching.
 *
 * - `user:password@` is refused everywhere (`urlProblem`): every one of these fields has a write-only
 *   place for credentials (headers, apiKey, clientSecret), and userinfo is also what phishing-style URLs
 *   (`https://trusted.example@evil.example/`) hide behind.
 * - A credential elsewhere in the URL is accepted, because services really take one there: hosted MCP
 *   servers (`?api_key=…`, `/t/<token>/mcp`, Azure Functions `?code=…`), Azure OpenAI and Google-style
 *   APIs (`?api-key=…`, `?key=…`), pre-signed or SAS URLs (`?sig=…`, `?token=…`). Refusing them would leave
 *   those services unusable. Such a URL is a secret like a header value instead: the whole URL is sealed
 *   at rest (secret-box, AAD naming its row and field) and sealed again for nodes, and every read (GraphQL,
 *   export, applyConfig plans, error messages, logs) shows `redactUrl`'s form, each credential-bearing
 *   part replaced by `***`. That form given back unchanged keeps the sealed URL (`keptSealedUrl`), so an
 *   export re-applies; `***` with other changes is refused, since the real value is then unknown.
 *
 * What counts as credential-bearing is the rule both planes share (data-plane/snapshot/url-credentials.ts:
 * userinfo, credential-named or token-shaped query values, path tokens such as `/t/<token>`, any fragment), so
 * the parts the control plane hides are the parts a node keeps out of the answers it relays.
 */

import { urlCredentialParts, type UrlPartPlace } from '../../data-plane/snapshot/url-credentials.js';
import type { SecretBox } from '../crypto/secret-box.js';

/** What reads show in place of a credential. */
export const REDACTED = '***';

export type UrlProblem = 'not_a_url' | 'not_http' | 'credentials' | 'insecure';

/**
 * Whether `value` may be stored as one of these URLs: an http(s) URL without `user:password@` (https only
 * when `requireHttps`). What the field is called and what to do instead is for the caller to say.
 */
export function urlProblem(value: string, options: { requireHttps: boolean }): UrlProblem | null {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'not_a_url';
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return 'not_http';
  if (url.username !== '' || url.password !== '') return 'credentials';
  if (url.protocol === 'http:' && options.requireHttps) return 'insecure';
  return null;
}

export interface RedactedUrl {
  /** The URL as reads show it (equal to the input when nothing was hidden). */
  shown: string;
  /** Whether any part was hidden: then the whole URL is a secret. */
  secret: boolean;
}

/** The URL with its credential-bearing parts (the shared rule, `urlCredentialParts`) replaced by `***`. */
export function redactUrl(url: URL): RedactedUrl {
  const parts = urlCredentialParts(url);
  if (parts.length === 0) return { shown: url.href, secret: false };
  const hidden = (place: UrlPartPlace, index: number): boolean => parts.some((p) => p.place === place && p.index === index);
  const path = url.pathname
    .split('/')
    .map((segment, i) => (hidden('path', i) ? REDACTED : segment))
    .join('/');
  const query = url.search
    .slice(1)
    .split('&')
    .map((part, i) => {
      if (!hidden('query', i)) return part;
      const eq = part.indexOf('=');
      return eq === -1 ? REDACTED : `${part.slice(0, eq)}=${REDACTED}`;
    })
    .join('&');
  // Userinfo as one mark: neither the name nor the password is shown (the control plane refuses to store
  // one, but messages show URLs it was given).
  const userinfo = hidden('userinfo', 0) || hidden('userinfo', 1) ? `${REDACTED}@` : '';
  return {
    shown: `${url.protocol}//${userinfo}${url.host}${path}${query === '' ? '' : `?${query}`}${url.hash === '' ? '' : `#${REDACTED}`}`,
    secret: true,
  };
}

/**
 * Any URL text as it may be shown (a page, a message, a log line): redacted when it parses, and only a
 * placeholder when it does not (unparsable text cannot be told apart from a credential).
 */
export function shownUrl(text: string): string {
  try {
    const redacted = redactUrl(new URL(text));
    // As given when nothing is hidden (an issuer is compared as written: no added trailing slash).
    return redacted.secret ? redacted.shown : text;
  } catch {
    return '(not a URL)';
  }
}

/** Whether URL text (stored before the rule, say) has a part reads must hide; false for text that is no URL. */
export function carriesCredential(text: string): boolean {
  try {
    return redactUrl(new URL(text)).secret;
  } catch {
    return false;
  }
}

/** Whether a URL still holds a redaction mark (a read value given back with something else). */
export function containsRedaction(value: string): boolean {
  return value.includes(REDACTED) || value.toLowerCase().includes('%2a%2a%2a');
}

/** A URL as stored: what reads show, and the whole URL sealed when it carries a credential. */
export interface StoredUrl {
  shown: string;
  /** secret-box ciphertext of the whole URL, or null when nothing in it is hidden. */
  sealed: string | null;
}

/** Column values for a checked http(s) URL: shown as is, or redacted with the whole sealed under `aad`. */
export function storeUrl(box: SecretBox, whole: string, aad: string): StoredUrl {
  const redacted = redactUrl(new URL(whole));
  return redacted.secret ? { shown: redacted.shown, sealed: box.seal(whole, aad) } : { shown: whole, sealed: null };
}

/** The stored sealed URL when `given` is exactly what reads show for it (an unchanged value given back). */
export function keptSealedUrl(stored: StoredUrl | null, given: string | null | undefined): string | null {
  return stored?.sealed != null && given === stored.shown ? stored.sealed : null;
}

/** The whole URL, in this process only (to connect with, or to seal for nodes): never log or show it. */
export function openStoredUrl(box: SecretBox, stored: StoredUrl, aad: string): string {
  return stored.sealed === null ? stored.shown : box.open(stored.sealed, aad);
}

/**
 * Whether `given` (a whole URL, or the shown form) is what `stored` holds: a new whole URL equal to the
 * sealed one is no change (plans compare by opening it, as for header values).
 */
export function sameStoredUrl(box: SecretBox, stored: StoredUrl, given: string, aad: string): boolean {
  if (given === stored.shown) return true;
  if (stored.sealed === null) return false;
  try {
    return box.open(stored.sealed, aad) === given;
  } catch {
    return false;
  }
}
