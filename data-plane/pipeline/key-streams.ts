/**
 * Streamed answers held open, per virtual key, so that a key that stops being valid loses them as it loses
 * every new request: a `/mcp/{server}` GET stream of server notifications (or a long SSE answer) can stay
 * open for hours, well past a revocation or the key's expiry. On every configuration swap each open
 * stream's key is looked up again (by hash) and the stream is cut if the key is gone, revoked, expired, or
 * (on `/mcp/{server}`) no longer granted that server; a key with an expiry also gets a timer for it.
 *
 * Only streamed answers are tracked (a JSON answer is sent at once); the cost is one Map entry per open
 * stream and a pass over them per swap.
 */
import type { ServerResponse } from 'node:http';
import type { Runtime, RuntimeHolder, RuntimeKey } from '../config/runtime.js';
import { keyRefusal } from '../auth/authenticate.js';
import type { RequestContext } from './context.js';

/** setTimeout's longest delay; a later expiry is re-checked when it fires. */
const MAX_TIMER_MS = 2 ** 31 - 1;

interface OpenStream {
  ctx: RequestContext;
  key: RuntimeKey;
  /** The server of a `/mcp/{server}` stream (its grant is checked too), else null. */
  server: string | null;
  timer: NodeJS.Timeout | null;
}

export class KeyStreams {
  readonly #open = new Map<ServerResponse, OpenStream>();
  readonly #now: () => number;

  constructor(holder: RuntimeHolder, now: () => number) {
    this.#now = now;
    holder.onChange((runtime) => this.#sweep(runtime));
  }

  /** Tracks a streamed answer until its response closes. */
  track(ctx: RequestContext, res: ServerResponse, server: string | null): void {
    const key = ctx.caller?.key;
    if (key === undefined || res.destroyed) return;
    const entry: OpenStream = { ctx, key, server, timer: null };
    this.#open.set(res, entry);
    this.#schedule(res, entry);
    res.once('close', () => {
      this.#open.delete(res);
      if (entry.timer !== null) clearTimeout(entry.timer);
    });
  }

  /** How many streams are open (for tests and metrics). */
  get size(): number {
    return this.#open.size;
  }

  #schedule(res: ServerResponse, entry: OpenStream): void {
    if (entry.timer !== null) clearTimeout(entry.timer);
    entry.timer = null;
    const expiresAt = entry.key.expiresAtMs;
    if (expiresAt === null) return;
    entry.timer = setTimeout(() => {
      entry.timer = null;
      if (this.#now() >= expiresAt) this.#cut(res, entry, 'key_expired');
      else this.#schedule(res, entry);
    }, Math.min(MAX_TIMER_MS, Math.max(0, expiresAt - this.#now())));
    entry.timer.unref();
  }

  #sweep(runtime: Runtime): void {
    const now = this.#now();
    for (const [res, entry] of this.#open) {
      const key = runtime.keysByHash.get(entry.key.hash);
      if (key === undefined) {
        // Gone from the configuration (deleted): as good as revoked.
        this.#cut(res, entry, 'key_revoked');
        continue;
      }
      const refused = keyRefusal(key, now);
      if (refused !== null) this.#cut(res, entry, refused);
      else if (entry.server !== null && !key.tools.has(entry.server)) this.#cut(res, entry, 'not_granted');
      else if (key !== entry.key) {
        // The key changed (an expiry moved, say): the timer follows it.
        entry.key = key;
        this.#schedule(res, entry);
      }
    }
  }

  #cut(res: ServerResponse, entry: OpenStream, reason: string): void {
    for (const record of entry.ctx.records) record.reason ??= reason;
    res.destroy();
  }
}
