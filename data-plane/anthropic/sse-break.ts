/**
 * The last stage of a streamed (SSE) `/anthropic` answer: passes complete events on as they arrive and, when
 * the provider breaks off (`breakOff`), ends the caller's stream with a Messages API error event instead of a
 * cut connection, which Claude Code and the Anthropic SDKs report as a network failure, not as the
 * provider's: `event: error` / `data: {"type":"error","error":{"type":"api_error","message":…}}`
 * (https://docs.anthropic.com/en/api/messages-streaming#error-events).
 *
 * An event the provider had only begun when it broke off is dropped: a client dispatches an event only at
 * its blank line, so holding the unfinished one back delays nothing a client could act on, and it keeps the
 * error event from being glued to half an event. On an ordinary end the unfinished rest passes as it came.
 * An event longer than MAX_HELD_BYTES is passed on as it comes (memory stays bounded); broken off inside
 * one, the error event follows a blank line that ends it.
 *
 * It does not parse events, and the message it writes is the caller's to read (no provider text in it).
 */
import { Transform, type TransformCallback } from 'node:stream';

const EMPTY = Buffer.alloc(0);
/** The most of an unfinished event held back; a Messages API event is far shorter. */
export const MAX_HELD_BYTES = 1024 * 1024;
/** The blank lines that end an SSE event, by the line ends the format allows (LF, CRLF, CR). */
const EVENT_ENDS = ['\n\n', '\r\r', '\r\n\r\n', '\n\r\n'].map((s) => Buffer.from(s));

/** Where the last complete event of `data` ends (0 for none). */
function completeLength(data: Buffer): number {
  let end = 0;
  for (const blank of EVENT_ENDS) {
    const at = data.lastIndexOf(blank);
    if (at !== -1) end = Math.max(end, at + blank.length);
  }
  return end;
}

/**
 * An SSE error event in the Messages API's form. A leading line end closes whatever line came before; after
 * part of an event (`inEvent`), a blank line ends that event first.
 */
export function sseErrorEvent(message: string, inEvent = false): Buffer {
  return Buffer.from(`${inEvent ? '\n\n' : '\n'}event: error\ndata: ${JSON.stringify({ type: 'error', error: { type: 'api_error', message } })}\n\n`, 'utf8');
}

export class SseBreak extends Transform {
  #rest: Buffer = EMPTY;
  #broken: string | null = null;
  /** Whether what has passed ends inside an event (one longer than MAX_HELD_BYTES). */
  #inEvent = false;

  /** The provider broke off: the stream ends (once what is before it has passed) with an error event saying `message`. */
  breakOff(message: string): void {
    this.#broken = message;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    const data = this.#rest.length === 0 ? chunk : Buffer.concat([this.#rest, chunk]);
    const complete = completeLength(data);
    const end = data.length - complete > MAX_HELD_BYTES ? data.length : complete;
    if (end > 0) this.#inEvent = end !== complete;
    // A copy: the rest must not pin the chunk's buffer.
    this.#rest = end === data.length ? EMPTY : Buffer.from(data.subarray(end));
    if (end > 0) this.push(end === data.length ? data : data.subarray(0, end));
    done();
  }

  override _flush(done: TransformCallback): void {
    if (this.#broken !== null) this.push(sseErrorEvent(this.#broken, this.#inEvent));
    else if (this.#rest.length > 0) this.push(this.#rest);
    this.#rest = EMPTY;
    done();
  }
}
