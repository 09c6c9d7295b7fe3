/**
 * Ships the outbox to the control plane (`POST /nodes/audit`, the node's own credentials): one batch at a
 * time, in order, acknowledged in the outbox only after a 200, so delivery is at least once and the
 * control plane's id check makes it exactly once in the store. While the control plane is away it retries
 * with capped exponential backoff and the outbox keeps growing on disk; it logs the outage once, not per try.
 *
 * Batches linger: one goes out when it is full (`batchEvents`, by default the protocol's 1,000) or `lingerMs` after the previous one (or
 * after the first event of a quiet spell), not after every outbox flush. Under load the control plane then
 * gets a few large batches a second instead of one per 20 ms flush, and what each batch costs on both
 * sides (a request, a read of the segment, a transaction, a cursor write) is paid that much less often;
 * an event reaches the store at most `lingerMs` later for it.
 *
 * A batch goes out as the outbox's bytes in the protocol's layout (`encodeAuditBatch`: one event per line
 * inside `{"events":[…]}`, no parsing, no string building), over one kept-alive undici connection of its own.
 *
 * It does not buffer events itself (the outbox does) or decide what is recorded.
 */
import { Client } from 'undici';
import { NODE_AUDIT_PATH, AuditIngestResultSchema, AUDIT_BATCH_MAX_EVENTS, encodeAuditBatch } from '../snapshot/audit-protocol.js';
import type { Logger } from '../log.js';
import type { AuditOutbox, OutboxBatch } from './outbox.js';

const MALFORMED = Symbol('malformed');

export interface ShipperOptions {
  outbox: AuditOutbox;
  controlPlaneUrl: string;
  /** The node's credentials for a request (per-node JWT bound to method and path, or the shared token). */
  authHeaders(method: string, path: string): Promise<Record<string, string>>;
  logger: Logger;
  batchEvents?: number;
  batchBytes?: number;
  maxBackoffMs?: number;
  /** How long a batch that is not full waits for more events (default 250 ms; 0: send at once). */
  lingerMs?: number;
}

export class AuditShipper {
  private abort = new AbortController();
  private running: Promise<void> | null = null;
  private failing = false;
  private readonly client: Client;

  constructor(private readonly options: ShipperOptions) {
    this.client = new Client(new URL(options.controlPlaneUrl).origin);
  }

  start(): void {
    this.running ??= this.loop();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.running;
    this.running = null;
    await this.client.close().catch(() => undefined);
  }

  /** Sends everything durable now (tests; a clean shutdown does not wait for the control plane). */
  private async loop(): Promise<void> {
    const { outbox, logger } = this.options;
    const batchEvents = Math.min(this.options.batchEvents ?? AUDIT_BATCH_MAX_EVENTS, AUDIT_BATCH_MAX_EVENTS);
    const batchBytes = this.options.batchBytes ?? 4 * 1024 * 1024;
    let backoff = 0;
    // After the control plane refused a batch as malformed (400/413), batches shrink to one event, so a
    // single bad line (a damaged disk) is found and dropped instead of holding back every event after it.
    let isolating = 0;
    const signal = this.abort.signal;
    const lingerMs = this.options.lingerMs ?? 250;
    let lastSent = performance.now();
    while (!signal.aborted) {
      // Linger until the batch is full or its time has come (never while isolating a bad line).
      if (isolating === 0 && lingerMs > 0) {
        const until = lastSent + lingerMs;
        for (let left = until - performance.now(); left > 0 && outbox.backlog < batchEvents && !signal.aborted; left = until - performance.now()) {
          await outbox.waitForEvents(left, signal, batchEvents);
        }
      }
      let batch;
      try {
        batch = await outbox.nextBatch(isolating > 0 ? 1 : batchEvents, batchBytes);
      } catch (error) {
        logger.error({ err: error instanceof Error ? error.message : String(error) }, 'could not read the audit outbox');
        await outbox.waitForEvents(1000, signal);
        continue;
      }
      if (!batch) {
        await outbox.waitForEvents(1000, signal);
        // A quiet spell ends: the first events linger too, so the batch gathers what follows them.
        lastSent = performance.now();
        continue;
      }
      const error = await this.send(batch, signal);
      lastSent = performance.now();
      if (signal.aborted) return;
      if (error === MALFORMED) {
        if (batch.count === 1) {
          logger.error({}, 'the control plane refused an audit event as malformed; it is dropped');
          await outbox.acknowledge(batch, false);
          isolating -= 1;
          continue;
        }
        logger.warn({ events: batch.count }, 'the control plane refused an audit batch as malformed; sending its events one by one');
        isolating = batch.count;
        continue;
      }
      if (isolating > 0) isolating -= 1;
      if (typeof error === 'string') {
        if (!this.failing) logger.warn({ reason: error, backlog: outbox.snapshot().depth }, 'audit events cannot reach the control plane; keeping them on disk and retrying');
        this.failing = true;
        backoff = Math.min(Math.max(backoff * 2, 250), this.options.maxBackoffMs ?? 5000);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, backoff);
          signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
        });
        continue;
      }
      if (this.failing) logger.info({ backlog: outbox.snapshot().depth }, 'audit shipping resumed');
      this.failing = false;
      backoff = 0;
      if (error.rejected > 0) {
        logger.error({ rejected: error.rejected }, 'the control plane refused malformed audit events; they are dropped');
        outbox.countDropped(error.rejected);
      }
      await outbox.acknowledge(batch);
    }
  }

  /** Posts one batch: the ingest result's rejected count, MALFORMED (never acceptable as sent), or why it failed. */
  private async send(batch: OutboxBatch, signal: AbortSignal): Promise<{ rejected: number } | typeof MALFORMED | string> {
    try {
      const res = await this.client.request({
        path: NODE_AUDIT_PATH,
        method: 'POST',
        headers: { ...(await this.options.authHeaders('POST', NODE_AUDIT_PATH)), 'content-type': 'application/json' },
        // The lines are already JSON: joined as bytes instead of parsed and serialised again.
        body: encodeAuditBatch(batch.data),
        // undici's own timeouts rather than AbortSignal.any + AbortSignal.timeout: those leave a 30 s timer
        // and a dependent signal alive per batch, garbage that outlives the young generation.
        signal,
        headersTimeout: 30_000,
        bodyTimeout: 30_000,
      });
      const text = await res.body.text();
      if (res.statusCode === 400 || res.statusCode === 413) return MALFORMED;
      if (res.statusCode !== 200) return `HTTP ${res.statusCode}`;
      const result = AuditIngestResultSchema.safeParse(JSON.parse(text) as unknown);
      return result.success ? { rejected: result.data.rejected.length } : 'unexpected answer';
    } catch (error) {
      return error instanceof Error ? error.message : String(error);
    }
  }
}
