/**
 * Header lines a request must carry once, checked before any route sees the request. node:http keeps the
 * first line of some repeated fields (`Host`, `Content-Type`, …) and joins the lines of others with `, `,
 * while a proxy in front may act on another line: the two would disagree about where the request goes
 * (`Host`: RFC 9112 §3.2 says a server MUST answer 400 to a repeated or invalid Host, and to an HTTP/1.1
 * request without one), what its body is, or which MCP session, method, tool or parameter it names. Such a
 * request is refused (typed 400) rather than served as node:http read it.
 *
 * `Authorization` is the pipeline's check (`auth/authenticate.ts` `repeatsAuthorization`, which records the
 * refusal); `Content-Length` and `Transfer-Encoding` are node's parser's (`server.ts` types its answers).
 *
 * One pass over the raw header names, no allocation unless an `Mcp-Param-*` line is present.
 */
import type { IncomingMessage } from 'node:http';
import { HttpMessage } from '../errors.js';

/** Fields sent once: a repeat is a request two readers would read differently. Lower case. */
const SINGLE_FIELDS = [
  'host',
  'content-type',
  'origin',
  'x-api-key',
  'mcp-session-id',
  'mcp-protocol-version',
  'mcp-method',
  'mcp-name',
  'last-event-id',
] as const;

/** MCP 2026-07-28 `Mcp-Param-{Name}`: each mirrors one tool argument, so each is sent once too. */
const PARAM_PREFIX = 'mcp-param-';

/** Whether `name` equals `lower` (ASCII lower case) ignoring ASCII case; `| 0x20` folds letters, keeps `-`. */
function sameName(name: string, lower: string): boolean {
  if (name.length !== lower.length) return false;
  for (let i = 0; i < lower.length; i++) if ((name.charCodeAt(i) | 0x20) !== lower.charCodeAt(i)) return false;
  return true;
}

/** SINGLE_FIELDS' lengths are all different: a name's length picks its one candidate (index by length). */
const BY_LENGTH: readonly number[] = (() => {
  const out: number[] = [];
  SINGLE_FIELDS.forEach((name, f) => {
    if (out[name.length] !== undefined) throw new Error(`two single fields of length ${name.length}`);
    out[name.length] = f;
  });
  return out;
})();

/** The index in SINGLE_FIELDS of `name`, or -1: one comparison at most per header line. */
function singleField(name: string): number {
  const f = BY_LENGTH[name.length];
  return f !== undefined && sameName(name, SINGLE_FIELDS[f] as string) ? f : -1;
}

function isParamHeader(name: string): boolean {
  if (name.length <= PARAM_PREFIX.length) return false;
  for (let i = 0; i < PARAM_PREFIX.length; i++) if ((name.charCodeAt(i) | 0x20) !== PARAM_PREFIX.charCodeAt(i)) return false;
  return true;
}

/**
 * RFC 9110 §7.2 / RFC 3986 §3.2.2-3: `uri-host [ ":" port ]` — unreserved, sub-delims, `%`, `:` and the
 * brackets of an IP literal. Empty is allowed (a target without an authority). A character outside the set
 * (space, `/`, `@`, `\`, controls, anything non-ASCII) is an invalid Host.
 */
function validHost(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    const ok =
      (c >= 0x61 && c <= 0x7a) || // a-z
      (c >= 0x41 && c <= 0x5a) || // A-Z
      (c >= 0x30 && c <= 0x3b) || // 0-9 : ;
      c === 0x2d || c === 0x2e || c === 0x5f || c === 0x7e || // - . _ ~
      (c >= 0x24 && c <= 0x2c) || // $ % & ' ( ) * + ,
      c === 0x21 || c === 0x3d || c === 0x5b || c === 0x5d; // ! = [ ]
    if (!ok) return false;
  }
  return true;
}

/** Why the request's header lines cannot be served (a text for the 400), or null when they can. */
export function headerLinesProblem(req: IncomingMessage): string | null {
  const raw = req.rawHeaders;
  let seen = 0;
  let params: Set<string> | null = null;
  let host: string | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    const f = singleField(name);
    if (f !== -1) {
      const bit = 1 << f;
      if ((seen & bit) !== 0) return HttpMessage.repeatedHeader(SINGLE_FIELDS[f] as string);
      seen |= bit;
      if (f === 0) host = raw[i + 1] as string;
    } else if (isParamHeader(name)) {
      const lower = name.toLowerCase();
      if ((params ??= new Set()).has(lower)) return HttpMessage.repeatedHeader(lower);
      params.add(lower);
    }
  }
  if (host === null) return req.httpVersionMajor === 1 && req.httpVersionMinor === 0 ? null : HttpMessage.missingHost();
  return validHost(host) ? null : HttpMessage.invalidHost();
}
