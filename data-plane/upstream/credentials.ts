/**
 * What goes upstream besides the MCP message: the server's configured credential headers (set once on the
 * pooled transport) and, per call, the caller headers that server's `allowedExtraHeaders` names.
 *
 * One pooled MCP `Client` serves every caller, so per-call headers cannot live on the transport. They ride
 * in an `AsyncLocalStorage` around the SDK call instead, and the transport's `fetch` (`http-client.ts`)
 * adds them to the HTTP request the SDK makes inside that call. Work the pool does for itself (connect, list
 * tools) runs outside any call context, so one caller's headers never reach a shared request.
 *
 * The caller's Authorization (and anything carrying the caller's virtual key) is never forwarded, even if
 * listed. It does not decide which servers a caller may reach (policy/) or open secrets (config/).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { IncomingHttpHeaders } from 'node:http';
import type { ResolvedServer } from '../config/runtime.js';

export type ExtraHeaders = Readonly<Record<string, string>>;

const callHeaders = new AsyncLocalStorage<ExtraHeaders>();

/** Runs `fn` (an SDK call on a pooled client) so that its HTTP requests carry `headers`. */
export function withExtraHeaders<T>(headers: ExtraHeaders, fn: () => T): T {
  return callHeaders.run(headers, fn);
}

/** Runs `fn` outside any caller's context: for the pool's own requests (connect, catalog refresh). */
export function outsideCallContext<T>(fn: () => T): T {
  return callHeaders.exit(fn);
}

/** The extra headers of the call in progress, if any (read by the upstream fetch in `http-client.ts`). */
export function currentExtraHeaders(): ExtraHeaders | undefined {
  return callHeaders.getStore();
}

/**
 * The caller headers that may go to `server`: those its allowlist names (already lower-cased and stripped
 * of never-forwarded names in the Runtime), minus any whose value contains the caller's virtual key.
 * Returns undefined when there is nothing to forward, so the common call needs no context at all.
 */
export function pickExtraHeaders(
  server: ResolvedServer,
  incoming: IncomingHttpHeaders,
  callerToken: string,
): ExtraHeaders | undefined {
  if (server.allowedExtraHeaders.length === 0) return undefined;
  let picked: Record<string, string> | undefined;
  for (const name of server.allowedExtraHeaders) {
    const raw = incoming[name];
    if (raw === undefined) continue;
    const value = Array.isArray(raw) ? raw.join(', ') : raw;
    // A caller could put its key in any header; a forwarded header never carries it.
    if (callerToken !== '' && value.includes(callerToken)) continue;
    (picked ??= {})[name] = value;
  }
  return picked;
}
