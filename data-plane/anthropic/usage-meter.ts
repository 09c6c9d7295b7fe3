/**
 * Reads token usage from a Messages API answer while it passes through, without holding it back: every
 * chunk is pushed on before it is parsed. For `text/event-stream`, `message_start` carries the input and
 * cache token counts and `message_delta` the (cumulative) output count; for JSON, the body's `usage` is
 * read when it ends (a JSON answer is bounded; beyond `maxJsonBytes` it is passed on unmetered).
 * `usage` resolves when the answer ends (null if it carried none, or broke off).
 */
import { Transform, type TransformCallback } from 'node:stream';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import type { TokenUsage } from './pricing.js';

export interface MeteredUsage extends TokenUsage {
  model: string | null;
}

interface WireUsage {
  input_tokens?: unknown;
  output_tokens?: unknown;
  cache_creation_input_tokens?: unknown;
  cache_read_input_tokens?: unknown;
}

/**
 * The most tokens of one kind a call is believed to have used (no model reads a context a hundredth of
 * this). The count is the provider's word: a larger one (1e308 from a broken provider or a proxy in its
 * place) priced to an Infinity that no spend report can carry (JSON writes null), the control plane refused
 * the report, and the node resent it forever ahead of every later one. Beyond the bound it is charged as the
 * bound: finite, and far above any budget.
 */
export const MAX_CALL_TOKENS = 100_000_000;

const count = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? Math.min(Math.floor(v), MAX_CALL_TOKENS) : null);

export class UsageMeter extends Transform {
  readonly usage: Promise<MeteredUsage | null>;
  #resolve!: (u: MeteredUsage | null) => void;
  #seen = false;
  readonly #current: MeteredUsage = { model: null, inputTokens: 0, outputTokens: 0, cacheCreationTokens: 0, cacheReadTokens: 0 };
  readonly #sse: ReturnType<typeof createParser> | null;
  readonly #decoder = new TextDecoder();
  #json: Buffer[] | null;
  #jsonBytes = 0;
  #endAfter: Promise<unknown> | null = null;

  constructor(contentType: string, private readonly maxJsonBytes = 8 * 1024 * 1024) {
    super();
    this.usage = new Promise((resolve) => (this.#resolve = resolve));
    const sse = contentType.toLowerCase().startsWith('text/event-stream');
    this.#sse = sse ? createParser({ onEvent: (e) => this.#onEvent(e) }) : null;
    this.#json = sse ? null : [];
    // An answer cut off (caller gone, upstream broke) still settles what it reported so far.
    this.once('close', () => this.#resolve(this.#seen ? { ...this.#current } : null));
  }

  /**
   * Holds the end of the answer until `settled` (derived from `usage`) has settled: the caller's stream
   * closing is what delivers the call's record, which must carry the usage priced from this answer.
   */
  endAfter(settled: Promise<unknown>): void {
    this.#endAfter = settled;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.push(chunk);
    try {
      if (this.#sse) this.#sse.feed(this.#decoder.decode(chunk, { stream: true }));
      else if (this.#json) {
        this.#jsonBytes += chunk.length;
        if (this.#jsonBytes > this.maxJsonBytes) this.#json = null;
        else this.#json.push(chunk);
      }
    } catch {
      // Metering never breaks the answer.
    }
    done();
  }

  override _flush(done: TransformCallback): void {
    if (this.#json) {
      try {
        const body = JSON.parse(Buffer.concat(this.#json).toString('utf8')) as { model?: unknown; usage?: WireUsage };
        if (typeof body.model === 'string') this.#current.model = body.model;
        if (body.usage) this.#take(body.usage);
      } catch {
        // not JSON (an error page): nothing to meter
      }
    }
    this.#resolve(this.#seen ? { ...this.#current } : null);
    const hold = this.#endAfter;
    if (hold === null) done();
    else hold.then(() => done(), () => done());
  }

  #onEvent(event: EventSourceMessage): void {
    if (event.event !== 'message_start' && event.event !== 'message_delta') return;
    const data = JSON.parse(event.data) as { message?: { model?: unknown; usage?: WireUsage }; usage?: WireUsage };
    if (event.event === 'message_start') {
      if (typeof data.message?.model === 'string') this.#current.model = data.message.model;
      if (data.message?.usage) this.#take(data.message.usage);
    } else if (data.usage) this.#take(data.usage);
  }

  /** Counts are cumulative in the API (a later event repeats or raises them): keep the latest. */
  #take(u: WireUsage): void {
    this.#seen = true;
    const input = count(u.input_tokens);
    const output = count(u.output_tokens);
    const write = count(u.cache_creation_input_tokens);
    const read = count(u.cache_read_input_tokens);
    if (input !== null) this.#current.inputTokens = input;
    if (output !== null) this.#current.outputTokens = output;
    if (write !== null) this.#current.cacheCreationTokens = write;
    if (read !== null) this.#current.cacheReadTokens = read;
  }
}
