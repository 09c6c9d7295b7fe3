/**
 * Credentials inside an MCP server's connection URL. Many hosted MCP servers take their token in the URL
 * itself (`https://host/mcp?api_key=…`, `/t/<token>/mcp`, Azure-style `?code=…`), because some clients
 * cannot send headers. Refusing such URLs would leave those servers unusable (headers are no alternative
 * for a token in the path, and `env.NAME` on every node defeats registering the credential once), so the
 * URL is treated like a header value instead: the whole URL is sealed at rest (secret-box, like headers)
 * and shipped sealed to nodes, and every read (GraphQL, export, applyConfig plans, errors) shows a redacted
 * form with each credential-bearing part replaced by `***`. What counts as credential-bearing errs towards
 * hiding: a query parameter with a credential-like name or a token-shaped value, a token-shaped path
 * segment or the one after a segment such as `t`, `key` or `token`, and any fragment. A URL without such a
 * part is stored and shown as given. `user:password@` stays refused (mcp-servers.ts).
 */

/** What reads show in place of a credential. */
export const REDACTED = '***';

/** Parameter and segment names that announce a credential (compared lower-cased, without `-`, `_`, `.`). */
const CREDENTIAL_WORDS = ['key', 'token', 'secret', 'passw', 'pwd', 'auth', 'credential', 'signature', 'session', 'jwt', 'bearer'];
const CREDENTIAL_NAMES = new Set(['sig', 'code', 'pat', 'sid', 'k', 't', 's', 'p', 'x']);

function normalisedName(name: string): string {
  return name.toLowerCase().replace(/[-_.\s]/g, '');
}

function credentialName(name: string): boolean {
  const n = normalisedName(name);
  return n !== '' && (CREDENTIAL_NAMES.has(n) || CREDENTIAL_WORDS.some((word) => n.includes(word)));
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

export interface RedactedUrl {
  /** The URL as reads show it (equal to the input when nothing was hidden). */
  shown: string;
  /** Whether any part was hidden: then the whole URL is a secret. */
  secret: boolean;
}

/** The URL with its credential-bearing parts replaced by `***` (see the module comment). */
export function redactConnectionUrl(url: URL): RedactedUrl {
  let secret = false;
  let previous = '';
  const path = url.pathname
    .split('/')
    .map((segment) => {
      const value = decoded(segment);
      const hide = value !== '' && (tokenShaped(value) || credentialName(previous));
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

/** Whether a connection string still holds a redaction mark (a read value given back with something else). */
export function containsRedaction(value: string): boolean {
  return value.includes(REDACTED) || value.toLowerCase().includes('%2a%2a%2a');
}
