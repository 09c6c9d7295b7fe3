/**
 * Ships priced calls to the control plane (`POST /nodes/spend`, batched, at-least-once: a batch that fails
 * stays queued and is retried; the control plane dedupes by request id) and reads persisted window spend
 * back (`GET /nodes/spend`) for seeding budget counters. Reports never block a request: `report` only
 * queues. What is lost if the node process dies: at most the calls queued since the last successful
 * flush (`intervalMs`, default 1 s); their cost was already counted in the shared counters.
 */
import type { Logger } from '../log.js';
import { NODE_SPEND_PATH, type SpendReport } from '../snapshot/stream-protocol.js';
import type { SpendEvent, SpendSink, SpendSource } from './limiter.js';

export type NodeFetch = (method: 'GET' | 'POST', path: string, body?: unknown) => Promise<Response>;

export interface SpendReporterOptions {
  fetch: NodeFetch;
  logger?: Pick<Logger, 'warn'>;
  intervalMs?: number;
  /** Queue bound: beyond it the oldest reports are dropped (logged); the counters still hold their cost. */
  maxQueued?: number;
}

const BATCH = 1000;

export class SpendReporter implements SpendSink, SpendSource {
  readonly #queue: SpendReport[] = [];
  readonly #timer: NodeJS.Timeout;
  #flushing: Promise<void> | null = null;
  #failures = 0;

  constructor(private readonly options: SpendReporterOptions) {
    this.#timer = setInterval(() => void this.flush(), options.intervalMs ?? 1000);
    this.#timer.unref();
  }

  get queued(): number {
    return this.#queue.length;
  }

  report(event: SpendEvent): void {
    if (this.#queue.length >= (this.options.maxQueued ?? 1_000_000)) {
      this.#queue.shift();
      this.options.logger?.warn({ queued: this.#queue.length }, 'spend report queue full: oldest report dropped');
    }
    this.#queue.push(event);
    if (this.#queue.length >= BATCH) void this.flush();
  }

  /** Sends everything queued (in batches); resolves when done or when the control plane refuses/is away. */
  flush(): Promise<void> {
    if (this.#flushing) return this.#flushing;
    this.#flushing = (async () => {
      while (this.#queue.length > 0) {
        const batch = this.#queue.slice(0, BATCH);
        try {
          const res = await this.options.fetch('POST', NODE_SPEND_PATH, { events: batch });
          if (!res.ok) throw new Error(`HTTP ${res.status}`);
          await res.body?.cancel();
          this.#queue.splice(0, batch.length);
          this.#failures = 0;
        } catch (error) {
          // Logged on the first failure of a run, not once a second while the control plane is away.
          if (this.#failures++ === 0) this.options.logger?.warn({ err: error instanceof Error ? error.message : String(error), queued: this.#queue.length }, 'spend report failed; will retry');
          return;
        }
      }
    })().finally(() => {
      this.#flushing = null;
    });
    return this.#flushing;
  }

  async windowSpend(keyId: string, fromMs: number, toMs: number): Promise<number> {
    const query = new URLSearchParams({ keyId, from: String(fromMs), to: String(toMs) });
    const res = await this.options.fetch('GET', `${NODE_SPEND_PATH}?${query.toString()}`);
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const body = (await res.json()) as { costNanos?: unknown };
    if (typeof body.costNanos !== 'number') throw new Error('malformed spend answer');
    // Calls this node has not reported yet are part of the window too.
    const unsent = this.#queue.filter((e) => e.keyId === keyId && Date.parse(e.at) >= fromMs && Date.parse(e.at) < toMs).reduce((n, e) => n + e.costNanos, 0);
    return body.costNanos + unsent;
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.flush();
  }
}
