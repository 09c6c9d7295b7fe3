/**
 * Ships priced calls to the control plane (`POST /nodes/spend`, batched, at-least-once: a batch that fails
 * stays queued and is retried; the control plane dedupes by request id) and reads persisted window spend
 * back (`GET /nodes/spend`) for seeding budget counters. Reports never block a request: `report` only
 * queues. With a `file` (the node's state dir), unsent reports are appended to it once per event-loop tick
 * and the file is rewritten after each successful flush, so a node that crashes or restarts sends them
 * after it starts again (a report sent twice is counted once). Without one, a crash loses what was queued.
 */
import { appendFileSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { Logger } from '../log.js';
import { NODE_SPEND_PATH, SpendReportSchema, type SpendReport } from '../snapshot/stream-protocol.js';
import type { SpendEvent, SpendScope, SpendSink, SpendSource } from './limiter.js';

export type NodeFetch = (method: 'GET' | 'POST', path: string, body?: unknown) => Promise<Response>;

export interface SpendReporterOptions {
  fetch: NodeFetch;
  logger?: Pick<Logger, 'warn'>;
  intervalMs?: number;
  /** Queue bound: beyond it the oldest reports are dropped (logged); the counters still hold their cost. */
  maxQueued?: number;
  /** Where unsent reports are kept across restarts (JSON lines); null/absent keeps them in memory only. */
  file?: string | null;
}

const BATCH = 1000;

/**
 * Answers that refuse the batch itself (its content), not the node or the moment: resending it as it is
 * would be refused forever and hold back every report queued behind it (a report the control plane's
 * version cannot take, a value it refuses). 401/403/404/408/429/5xx are the node's or the moment's.
 */
const REFUSES_CONTENT = new Set([400, 413, 422]);

export class SpendReporter implements SpendSink, SpendSource {
  readonly #queue: SpendReport[] = [];
  readonly #timer: NodeJS.Timeout;
  #flushing: Promise<void> | null = null;
  #failures = 0;
  #unwritten: string[] = [];

  constructor(private readonly options: SpendReporterOptions) {
    this.#timer = setInterval(() => void this.flush(), options.intervalMs ?? 1000);
    this.#timer.unref();
    const file = options.file;
    if (file && existsSync(file)) {
      for (const line of readFileSync(file, 'utf8').split('\n')) {
        if (line.trim() === '') continue;
        try {
          this.#queue.push(SpendReportSchema.parse(JSON.parse(line)));
        } catch {
          // A torn last line (crash mid-write): that report was never acknowledged... nor fully written.
        }
      }
      if (this.#queue.length > 0) void this.flush();
    }
  }

  /** Appends this tick's reports to the file in one write. */
  #persist(event: SpendReport): void {
    const file = this.options.file;
    if (!file) return;
    if (this.#unwritten.length === 0) {
      setImmediate(() => {
        const lines = this.#unwritten;
        this.#unwritten = [];
        if (lines.length === 0) return;
        try {
          appendFileSync(file, lines.join('\n') + '\n');
        } catch (error) {
          this.options.logger?.warn({ err: error instanceof Error ? error.message : String(error) }, 'could not persist spend reports');
        }
      });
    }
    this.#unwritten.push(JSON.stringify(event));
  }

  /** The file holds exactly what is still queued (written whole, then renamed into place). */
  #rewrite(): void {
    const file = this.options.file;
    if (!file) return;
    this.#unwritten = [];
    try {
      const tmp = `${file}.tmp`;
      writeFileSync(tmp, this.#queue.map((e) => JSON.stringify(e) + '\n').join(''));
      renameSync(tmp, file);
    } catch (error) {
      this.options.logger?.warn({ err: error instanceof Error ? error.message : String(error) }, 'could not rewrite the spend outbox');
    }
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
    this.#persist(event);
    if (this.#queue.length >= BATCH) void this.flush();
  }

  /**
   * Sends everything queued (in batches); resolves when done or when the control plane is away. A batch
   * refused for its content is halved until the report it cannot take is alone, and that one is dropped
   * (logged by request id): the others go on, instead of the node resending one batch forever.
   */
  flush(): Promise<void> {
    if (this.#flushing) return this.#flushing;
    this.#flushing = (async () => {
      let size = BATCH;
      while (this.#queue.length > 0) {
        const batch = this.#queue.slice(0, size);
        try {
          const res = await this.options.fetch('POST', NODE_SPEND_PATH, { events: batch });
          if (!res.ok && REFUSES_CONTENT.has(res.status)) {
            await res.body?.cancel();
            if (batch.length > 1) {
              size = Math.ceil(batch.length / 2);
              continue;
            }
            this.#queue.shift();
            this.#rewrite();
            this.options.logger?.warn({ requestId: batch[0]?.requestId, status: res.status, queued: this.#queue.length }, 'the control plane refused a spend report; dropped it');
            size = BATCH;
            continue;
          }
          if (!res.ok) throw new Error(`HTTP ${res.status}`);
          await res.body?.cancel();
          this.#queue.splice(0, batch.length);
          this.#rewrite();
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

  async windowSpend(scope: SpendScope, fromMs: number, toMs: number): Promise<number> {
    const query = new URLSearchParams({ ...scope, from: String(fromMs), to: String(toMs) });
    const res = await this.options.fetch('GET', `${NODE_SPEND_PATH}?${query.toString()}`);
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const body = (await res.json()) as { costNanos?: unknown };
    if (typeof body.costNanos !== 'number') throw new Error('malformed spend answer');
    // Calls this node has not reported yet are part of the window too.
    const mine = (e: SpendReport): boolean => ('keyId' in scope ? e.keyId === scope.keyId : e.userId === scope.userId);
    const unsent = this.#queue.filter((e) => mine(e) && Date.parse(e.at) >= fromMs && Date.parse(e.at) < toMs).reduce((n, e) => n + e.costNanos, 0);
    return body.costNanos + unsent;
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.flush();
  }
}
