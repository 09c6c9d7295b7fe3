/**
 * Per-call headers on the pooled SDK clients. The pipeline's credentials stage (`pipeline/credentials.ts`)
 * produces the explicit `UpstreamCall`; the pool passes the part its transport does not already send (the
 * server's configured headers are set once on the transport) through this module.
 *
 * One pooled MCP `Client` serves every caller, so per-call headers cannot live on the transport. They ride
 * in an `AsyncLocalStorage` around the SDK call instead, and the transport's `fetch` (`http-client.ts`)
 * adds them to the HTTP request the SDK makes inside that call. Work the pool does for itself (connect, list
 * tools) runs outside any call context, so one caller's headers never reach a shared request.
 *
 * Temporary: HTTP upstreams move to an explicit undici client (issue 5), and this side channel goes with it.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

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
