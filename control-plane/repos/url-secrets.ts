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
 * What counts as credential-bearing errs towards hiding (a hidden part costs a reader some detail; a shown
 * one leaks a credential to every admin token, VIEWER included):
 * - a query parameter whose name contains a credential word (`api-key`, `access_token`, `client_secret`,
 *   `X-Amz-Signature`, `sessionid`…) or is one of the short names services use for one (`sig`, `code`,
 *   `key`, `k`, `t`…): a named list, because names are what services document and what an operator can
 *   check against; values alone cannot tell a token from an id,
 * - any value (query or path segment) shaped like a token (long, mixing letters and digits: UUIDs, hex and
 *   base64 keys), whatever its name, since not every service names its parameter helpfully,
 * - the path segment after one that names a credential exactly (`/t/<token>`, `/key/<key>`,
 *   `/api-key/<key>`): exact names, not the query's substring rule, because `/oauth/token` and
 *   `/auth/realms/…` are ordinary paths of authorization servers,
 * - any fragment (nothing is ever sent in one; it would only be kept there to be secret).
 */

import type { SecretBox } from '../crypto/secret-box.js';

/** What reads show in place of a credential. */
export const REDACTED = '***';

/**
 * Words that make a parameter name credential-bearing wherever they appear in it (compared lower-cased,
 * without `-`, `_`, `.`): `key` covers api-key, apikey, subscription-key; `token` access_token, id_token;
 * `secret` client_secret; `signature` X-Amz-Signature; `auth` authorization, x-auth; `session` sessionid.
 */
const CREDENTIAL_WORDS = ['key', 'token', 'secret', 'passw', 'pwd', 'auth', 'credential', 'signature', 'session', 'jwt', 'bearer'];
/**
 * Short names services use for a credential, matched whole: `sig` (Azure SAS, S3-style), `code` (Azure
 * Functions), `pat` (personal access tokens), `sid`, and the one-letter ones of hosted MCP servers.
 */
const CREDENTIAL_NAMES = new Set(['sig', 'code', 'pat', 'sid', 'k', 't', 's', 'p', 'x']);
/** Path segments after which the next segment is a credential (matched whole, or with a trailing `s`). */
const CREDENTIAL_SEGMENTS = new Set(['key', 'apikey', 'token', 'accesstoken', 'authtoken', 'secret', 'password', 'pwd', 'jwt', 'bearer', 'session', 'credential', ...CREDENTIAL_NAMES]);

function normalisedName(name: string): string {
  return name.toLowerCase().replace(/[-_.\s]/g, '');
}

function credentialName(name: string): boolean {
  const n = normalisedName(name);
  return n !== '' && (CREDENTIAL_NAMES.has(n) || CREDENTIAL_WORDS.some((word) => n.includes(word)));
}

function credentialSegment(segment: string): boolean {
  const n = normalisedName(segment);
  return n !== '' && (CREDENTIAL_SEGMENTS.has(n) || (n.endsWith('s') && CREDENTIAL_SEGMENTS.has(n.slice(0, -1))));
}

/**
 * A value shaped like a token: 16 or more characters of the sets tokens use, with at least two digits and
 * two letters (UUIDs, hex and base64 keys; not words joined by hyphens such as `mcp-server-v2`).
 */
function tokenShaped(value: string): boolean {
  if (value.length < 16 || !/^[A-Za-z0-9._~+/=:-]+$/.test(value)) return false;
  const digits = value.replace(/[^0-9]/g, '').length;
  const letters = value.replace(/[^A-Za-z]/g, '').length;
  return digits >= 2 && letters >= 2;
}

function decoded(text: string): string {
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '));
  } catch {
    return text;
  }
}

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

/** The URL with its credential-bearing parts replaced by `***` (see the module comment). */
export function redactUrl(url: URL): RedactedUrl {
  let secret = false;
  let previous = '';
  const path = url.pathname
    .split('/')
    .map((segment) => {
      const value = decoded(segment);
      const hide = value !== '' && (tokenShaped(value) || credentialSegment(previous));
      previous = value;
      if (!hide) return segment;
      secret = true;
      return REDACTED;
    })
    .join('/');
  const query = url.search
    .slice(1)
    .split('&')
    .map((part) => {
      if (part === '') return part;
      const eq = part.indexOf('=');
      const name = eq === -1 ? part : part.slice(0, eq);
      const value = eq === -1 ? '' : part.slice(eq + 1);
      const hide = eq === -1 ? tokenShaped(decoded(name)) : credentialName(decoded(name)) || tokenShaped(decoded(value));
      if (!hide) return part;
      secret = true;
      return eq === -1 ? REDACTED : `${name}=${REDACTED}`;
    })
    .join('&');
  if (url.hash !== '') secret = true;
  if (!secret) return { shown: url.href, secret: false };
  return { shown: `${url.origin}${path}${query === '' ? '' : `?${query}`}${url.hash === '' ? '' : `#${REDACTED}`}`, secret: true };
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
