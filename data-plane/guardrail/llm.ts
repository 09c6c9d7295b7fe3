/**
 * The secrets guardrail on LLM traffic (`/anthropic`): the request body before it goes to the provider,
 * and the answer on its way back, whole JSON or streamed (SSE). A streamed answer is redacted event by
 * event: text-bearing deltas (`text_delta`, `input_json_delta`, `thinking_delta`) are held back per
 * content block by `HOLDBACK` characters, and more: the whole run of non-space characters at the end of
 * what has arrived (a token still growing: every rule's secret is such a run, and a JWT or a key has no
 * fixed length), up to `MAX_TOKEN_HOLD` characters, and an unterminated `-----BEGIN` block up to
 * `MAX_PEM_HOLD`. So a secret split across deltas is seen whole before any of it is sent, unless it is
 * longer than those bounds (a run of more than 16 KiB without a space is sent in parts, each scanned with
 * the `HOLDBACK` characters before it). A block policy ends the stream with an SSE `error`
 * event of type `secret_detected` (what was already sent cannot be recalled, but nothing after the
 * secret is). Findings are kinds and paths, never values.
 *
 * It does not read settings (policy.ts does) or meter usage (anthropic/usage-meter.ts reads the
 * provider's bytes before this).
 */
import { Transform, type TransformCallback } from 'node:stream';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { GatewayError, GuardrailMessage } from '../errors.js';
import type { GuardrailFinding } from '../snapshot/audit-protocol.js';
import type { GuardrailPolicy } from '../snapshot/schema.js';
import { redactText, SCAN_LIMIT_KIND, scanValue, type SecretScanner, type Span } from './scanner.js';

export const HOLDBACK = 256;
/** The longest run of non-space characters held back whole while it may still grow. */
export const MAX_TOKEN_HOLD = 16 * 1024;
const MAX_PEM_HOLD = 16 * 1024;

/** Where the run of non-space characters ending `text` starts, or -1 if it is longer than `limit`. */
function trailingRunStart(text: string, limit: number): number {
  const stop = Math.max(0, text.length - limit - 1);
  for (let i = text.length - 1; i >= stop; i--) {
    const c = text.charCodeAt(i);
    // ASCII whitespace (what ends a token in every rule) and the Unicode spaces a model may write.
    if (c <= 0x20 || c === 0xa0 || c === 0x2028 || c === 0x2029 || c === 0x3000) return i + 1;
  }
  return stop === 0 && text.length <= limit ? 0 : -1;
}
const PEM_END = /-----END[ A-Za-z0-9_-]{0,100}-----/;

function blocked(direction: 'request' | 'response', findings: GuardrailFinding[]): GatewayError {
  const kinds = [...new Set(findings.map((f) => f.kind))];
  return new GatewayError('secret_detected', {
    message: GuardrailMessage.blocked(direction, kinds, findings[0]?.where ?? direction),
    data: { type: 'secret_detected', kinds },
    reason: `${direction}: ${kinds.join(',')}`,
  });
}

/** The request body under `policy`: unchanged, redacted (a new body), or refused. */
export function guardLlmJson(
  scanner: SecretScanner,
  policy: GuardrailPolicy,
  json: unknown,
  direction: 'request' | 'response',
): { json: unknown; changed: boolean; findings: GuardrailFinding[]; error?: GatewayError } {
  if (policy === 'off') return { json, changed: false, findings: [] };
  const scanned = scanValue(scanner, json, direction);
  const secrets = scanned.findings.filter((f) => f.kind !== SCAN_LIMIT_KIND);
  if (policy === 'block' && secrets.length > 0) return { json, changed: false, findings: scanned.findings, error: blocked(direction, secrets) };
  return { json: scanned.value, changed: scanned.value !== json, findings: scanned.findings };
}

const DELTA_FIELDS: Record<string, string> = { text_delta: 'text', input_json_delta: 'partial_json', thinking_delta: 'thinking' };

interface SseData {
  type?: string;
  index?: number;
  delta?: Record<string, unknown>;
}

interface Held {
  index: number;
  deltaType: string;
  field: string;
  text: string;
}

/** Redacts (or blocks) secrets in an Anthropic Messages SSE stream. */
export class SseSecretGuard extends Transform {
  readonly findings: GuardrailFinding[] = [];
  #parser = createParser({ onEvent: (e) => this.#onEvent(e) });
  #decoder = new TextDecoder();
  #held = new Map<number, Held>();
  #stopped = false;

  constructor(
    private readonly scanner: SecretScanner,
    private readonly policy: 'redact' | 'block',
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    if (!this.#stopped) this.#parser.feed(this.#decoder.decode(chunk, { stream: true }));
    done();
  }

  override _flush(done: TransformCallback): void {
    for (const index of [...this.#held.keys()]) this.#release(index, true);
    done();
  }

  #emit(event: string | undefined, data: string): void {
    if (this.#stopped) return;
    this.push(`${event ? `event: ${event}\n` : ''}data: ${data}\n\n`);
  }

  #found(spans: readonly Span[], where: string): boolean {
    for (const s of spans) if (!this.findings.some((f) => f.kind === s.kind && f.where === where)) this.findings.push({ kind: s.kind, where });
    if (this.policy === 'block' && spans.length > 0) {
      const error = blocked('response', this.findings);
      this.#emit('error', JSON.stringify({ type: 'error', error: { type: 'secret_detected', message: error.message } }));
      this.#stopped = true;
      this.push(null);
      return true;
    }
    return false;
  }

  /** Sends what of a block's held text is safe to send (all of it when `final`). */
  #release(index: number, final: boolean): void {
    const held = this.#held.get(index);
    if (!held || this.#stopped) return;
    const { spans } = this.scanner.scanText(held.text);
    let cut = final ? held.text.length : Math.max(0, held.text.length - HOLDBACK);
    if (!final) {
      // A token still growing at the end waits whole (bounded), however long its rule lets it be.
      const run = trailingRunStart(held.text, MAX_TOKEN_HOLD);
      if (run !== -1) cut = Math.min(cut, run);
      // An unterminated PEM block waits for its END line (bounded).
      const begin = held.text.lastIndexOf('-----BEGIN');
      // Until its whole END line (`-----END … -----`) has arrived.
      if (begin !== -1 && !PEM_END.test(held.text.slice(begin)) && held.text.length - begin < MAX_PEM_HOLD) cut = Math.min(cut, begin);
      for (const s of spans) if (s.start < cut && s.end > cut) cut = s.start;
    }
    const sent = spans.filter((s) => s.end <= cut);
    if (this.#found(sent, `response.content[${index}].${held.field}`)) return;
    if (cut > 0) {
      const out = redactText(held.text.slice(0, cut), sent);
      this.#emit('content_block_delta', JSON.stringify({ type: 'content_block_delta', index, delta: { type: held.deltaType, [held.field]: out } }));
      held.text = held.text.slice(cut);
    }
    if (final) this.#held.delete(index);
  }

  #onEvent(e: EventSourceMessage): void {
    if (this.#stopped) return;
    let data: SseData | null = null;
    try {
      data = JSON.parse(e.data) as SseData;
    } catch {
      data = null;
    }
    const deltaType = typeof data?.delta?.type === 'string' ? data.delta.type : '';
    const field = DELTA_FIELDS[deltaType];
    if (data && e.event === 'content_block_delta' && field && typeof data.index === 'number' && typeof data.delta?.[field] === 'string') {
      const held = this.#held.get(data.index) ?? { index: data.index, deltaType, field, text: '' };
      // A block changing delta type (rare) flushes what it had first.
      if (held.deltaType !== deltaType) {
        this.#release(data.index, true);
        return this.#onEvent(e);
      }
      held.text += data.delta[field] as string;
      this.#held.set(data.index, held);
      this.#release(data.index, false);
      return;
    }
    if (data && e.event === 'content_block_stop' && typeof data.index === 'number') this.#release(data.index, true);
    if (data && e.event === 'message_stop') for (const index of [...this.#held.keys()]) this.#release(index, true);
    if (this.#stopped) return;
    // Any other event: scanned as a JSON value (e.g. a content_block_start carrying text or tool input).
    if (data) {
      const scanned = scanValue(this.scanner, data, `response.${e.event ?? 'event'}`);
      const secrets = scanned.findings.filter((f) => f.kind !== SCAN_LIMIT_KIND);
      for (const f of secrets) if (!this.findings.some((g) => g.kind === f.kind && g.where === f.where)) this.findings.push(f);
      if (this.policy === 'block' && secrets.length > 0) return void this.#found([{ start: 0, end: 0, kind: secrets[0]!.kind }], secrets[0]!.where);
      this.#emit(e.event, scanned.value === data ? e.data : JSON.stringify(scanned.value));
      return;
    }
    this.#emit(e.event, e.data);
  }
}
