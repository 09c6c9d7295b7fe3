/**
 * Reads token usage from a Messages API answer while it passes through, without holding it back: every
 * chunk is pushed on before it is parsed. For `text/event-stream`, `message_start` carries the input and
 * cache token counts and `message_delta` the (cumulative) output count; for JSON, the body's `usage` is
 * read when it ends (a JSON answer is bounded; beyond `maxJsonBytes` it is passed on unmetered).
 * `usage` resolves when the answer ends (null if it carried none, or broke off).
 *
 * Memory is bounded for SSE too: one event longer than `maxEventChars` (a provider that never sends the
 * blank line ending it) is not metered; the parser drops what it held of it, the meter skips the rest of it
 * up to its blank line (`onOversizedEvent` is told once per answer) and meters the events after it. The
 * bytes pass on regardless: how much of an unfinished event the relay holds is the relay's limit
 * (sse-break.ts, MAX_HELD_BYTES), which is also this default bound.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import type { TokenUsage } from './pricing.js';
import { MAX_HELD_BYTES } from './sse-break.js';

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

export interface UsageMeterOptions {
  /** Bytes of a JSON answer read for its usage; a longer one passes unmetered. */
  maxJsonBytes?: number;
  /** Characters of one unfinished SSE event held to meter it; a longer one passes unmetered. */
  maxEventChars?: number;
  /** Called once per answer, on the first event over `maxEventChars` (for the caller's log; no provider text). */
  onOversizedEvent?: () => void;
}

/**
 * Where a skipped event's text stands: inside a line, just after a line end, or just after a CR (which a LF
 * may complete as one CRLF line end). Two line ends in a row make the blank line that ends the event.
 */
type SkipState = 'line' | 'lineEnd' | 'cr';

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
  readonly #maxJsonBytes: number;
  #onOversizedEvent: (() => void) | null;
  /** The parser gave up on an event over the bound during the last feed. */
  #overflowed = false;
  /** Skipping the rest of an event over the bound (where its text stands), or null when metering. */
  #skipping: SkipState | null = null;
  /** The last text fed ended in CR. */
  #endsInCr = false;

  constructor(contentType: string, options: UsageMeterOptions = {}) {
    super();
    this.usage = new Promise((resolve) => (this.#resolve = resolve));
    this.#maxJsonBytes = options.maxJsonBytes ?? 8 * 1024 * 1024;
    this.#onOversizedEvent = options.onOversizedEvent ?? null;
    const sse = contentType.toLowerCase().startsWith('text/event-stream');
    this.#sse = sse
      ? createParser({
          onEvent: (e) => this.#onEvent(e),
          // Past the bound the parser drops what it held and stops until reset (`#feed` skips to the event's end).
          maxBufferSize: options.maxEventChars ?? MAX_HELD_BYTES,
          onError: (e) => {
            if (e.type === 'max-buffer-size-exceeded') this.#overflowed = true;
          },
        })
      : null;
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
      if (this.#sse) this.#feed(this.#sse, this.#decoder.decode(chunk, { stream: true }));
      else if (this.#json) {
        this.#jsonBytes += chunk.length;
        if (this.#jsonBytes > this.#maxJsonBytes) this.#json = null;
        else this.#json.push(chunk);
      }
    } catch {
      // Metering never breaks the answer.
    }
    done();
  }

  override _flush(done: TransformCallback): void {
    // A CR the parser holds at the end (it may begin a CRLF) is a line end once nothing follows: an answer
    // whose last event ends in CR CR (the format allows CR alone) is dispatched. Nothing else completes.
    if (this.#sse && this.#skipping === null && this.#endsInCr) {
      try {
        this.#sse.feed('\n');
      } catch {
        // Metering never breaks the answer.
      }
    }
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

  /** Feeds the parser, skipping the rest of an event over the bound up to its blank line. */
  #feed(parser: ReturnType<typeof createParser>, text: string): void {
    if (this.#skipping !== null) {
      const after = this.#skipEnd(text);
      if (after === -1) return;
      this.#skipping = null;
      parser.reset();
      text = text.slice(after);
    }
    parser.feed(text);
    if (text !== '') this.#endsInCr = text.endsWith('\r');
    if (!this.#overflowed) return;
    // The overflow is found after the whole text was parsed: the event it is in is still open at its end.
    this.#overflowed = false;
    const last = text.at(-1);
    this.#skipping = last === '\n' ? 'lineEnd' : last === '\r' ? 'cr' : 'line';
    if (this.#onOversizedEvent !== null) {
      this.#onOversizedEvent();
      this.#onOversizedEvent = null;
    }
  }

  /** Where the skipped event's blank line ends in `text` (what follows is metered again), or -1 if not in it. */
  #skipEnd(text: string): number {
    let state = this.#skipping ?? 'line';
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === 10) {
        // LF: ends a line, unless it completes a CR's CRLF.
        if (state === 'lineEnd') return i + 1;
        state = 'lineEnd';
      } else if (c === 13) {
        if (state !== 'line') return i + 1;
        state = 'cr';
      } else state = 'line';
    }
    this.#skipping = state;
    return -1;
  }

  #onEvent(event: EventSourceMessage): void {
    if (event.event !== 'message_start' && event.event !== 'message_delta') return;
    let data: { message?: { model?: unknown; usage?: WireUsage }; usage?: WireUsage };
    try {
      data = JSON.parse(event.data) as typeof data;
    } catch {
      // Not JSON: nothing to meter here, and the parser must go on with the rest of the text it was fed.
      return;
    }
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
