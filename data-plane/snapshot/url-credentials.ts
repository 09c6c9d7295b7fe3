/**
 * THE rule for which parts of a URL are credentials, written once for both planes: the control plane seals a
 * URL holding one and shows it with those parts as `***` (control-plane/repos/url-secrets.ts); the node keeps
 * those parts of a provider's or server's URL out of every answer it relays (data-plane/config/runtime.ts).
 * It only judges and names the parts; it does not redact, seal or scrub (each plane does that its own way).
 *
 * Pure: no I/O, no state.
 *
 * What counts as credential-bearing errs towards hiding (a hidden part costs a reader some detail, or an
 * answer a few characters; a shown one leaks a credential to every admin token or key holder):
 * - `user:password@` (the control plane refuses it in what it stores, but an `env.NAME` resolved on a node
 *   may still hold one, and a URL in a message may too),
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
 * Everything else is not: `?api-version=2024-06-01`, `?region=eu`, `/v1/messages`.
 */

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
const CREDENTIAL_NAMES: ReadonlySet<string> = new Set(['sig', 'code', 'pat', 'sid', 'k', 't', 's', 'p', 'x']);
/** Path segments after which the next segment is a credential (matched whole, or with a trailing `s`). */
const CREDENTIAL_SEGMENTS: ReadonlySet<string> = new Set([
  'key',
  'apikey',
  'token',
  'accesstoken',
  'authtoken',
  'secret',
  'password',
  'pwd',
  'jwt',
  'bearer',
  'session',
  'credential',
  ...CREDENTIAL_NAMES,
]);

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
 * two letters (UUIDs, hex and base64 keys; not words joined by hyphens such as `mcp-server-v2`, nor dates).
 */
function tokenShaped(value: string): boolean {
  if (value.length < 16 || !/^[A-Za-z0-9._~+/=:-]+$/.test(value)) return false;
  const digits = value.replace(/[^0-9]/g, '').length;
  const letters = value.replace(/[^A-Za-z]/g, '').length;
  return digits >= 2 && letters >= 2;
}

/**
 * Percent-decoded as the server receiving it reads it: a query by form rules (`+` is a space), a path or
 * userinfo by URI rules (`+` is itself, as in a base64 token). Text that does not decode stays as written.
 */
function decoded(text: string, form: boolean): string {
  try {
    return decodeURIComponent(form ? text.replace(/\+/g, ' ') : text);
  } catch {
    return text;
  }
}

/** Where in the URL a credential part sits. */
export type UrlPartPlace = 'userinfo' | 'path' | 'query' | 'fragment';

export interface UrlCredentialPart {
  place: UrlPartPlace;
  /**
   * Which one: for `path`, the index in `url.pathname.split('/')`; for `query`, in `url.search.slice(1)
   * .split('&')`; for `userinfo`, 0 the user name and 1 the password; 0 for the fragment.
   */
  index: number;
  /**
   * The credential as the URL spells it (percent-encoded): a query parameter's value, or the whole
   * `name` of one without `=`; a path segment; the user name or password; the fragment without `#`.
   */
  raw: string;
  /** `raw` decoded, as the server it is sent to reads it. */
  value: string;
}

/** The credential-bearing parts of `url` (see the module comment), in the order they appear; empty for none. */
export function urlCredentialParts(url: URL): UrlCredentialPart[] {
  const parts: UrlCredentialPart[] = [];
  if (url.username !== '') parts.push({ place: 'userinfo', index: 0, raw: url.username, value: decoded(url.username, false) });
  if (url.password !== '') parts.push({ place: 'userinfo', index: 1, raw: url.password, value: decoded(url.password, false) });
  let previous = '';
  url.pathname.split('/').forEach((segment, index) => {
    const value = decoded(segment, false);
    if (value !== '' && (tokenShaped(value) || credentialSegment(previous))) parts.push({ place: 'path', index, raw: segment, value });
    previous = value;
  });
  url.search
    .slice(1)
    .split('&')
    .forEach((part, index) => {
      if (part === '') return;
      const eq = part.indexOf('=');
      if (eq === -1) {
        // A bare token (`?<token>`): only its shape can tell.
        const value = decoded(part, true);
        if (tokenShaped(value)) parts.push({ place: 'query', index, raw: part, value });
        return;
      }
      const raw = part.slice(eq + 1);
      const value = decoded(raw, true);
      if (credentialName(decoded(part.slice(0, eq), true)) || tokenShaped(value)) parts.push({ place: 'query', index, raw, value });
    });
  if (url.hash !== '') parts.push({ place: 'fragment', index: 0, raw: url.hash.slice(1), value: decoded(url.hash.slice(1), false) });
  return parts;
}
