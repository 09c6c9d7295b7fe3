/**
 * Removes a call's secrets (the credential the node injected: the provider API key on `/anthropic`, an
 * upstream's on `/mcp/{server}` and `/mcp`) from what goes back to the caller: every occurrence becomes
 * `[redacted]`, in a body as it streams (`SecretScrubber`, also an occurrence split across chunks), a whole
 * body (`scrubBytes`, `scrubCutBytes`) or a text (`scrubText`).
 *
 * Spellings. A secret is found as its UTF-8 bytes, as the JSON spellings `echoForms` lists (`\/`, `\"`,
 * `\\`), and spelled with JSON escapes in any mix with plain characters: `\u0073k-…`, upper- or lower-case
 * hex, a surrogate pair for a character beyond the BMP, the short escapes, and nested (a JSON text inside a
 * JSON string, `\\u0073`, decoded again, up to MAX_DEPTH levels). A client that JSON-decodes the answer
 * would otherwise hold the credential. The escape search decodes, so it runs only where an escape that could
 * spell a secret's character occurs at all (`\u`, or `\/` for a secret with a `/`): the common answer costs
 * one `indexOf` per secret and one for `\u`.
 *
 * Streaming. Only the end of a chunk that could be the beginning of a secret (in any of those spellings,
 * an escape cut in its middle included) is held back until the next chunk decides it, so an SSE event
 * (which ends in a blank line) is never delayed; stream-replace libraries (replacestream) hold back a fixed
 * window of the longest search string on every chunk, which would keep the end of each event until the
 * next one arrives. An answer that ends inside what could be a secret's beginning (a provider cut off while
 * echoing it) ends with `[redacted]` instead; one that breaks off drops what was held.
 *
 * It does not parse bodies (escapes are decoded wherever they stand, in a JSON string or not: a false find
 * redacts a little too much, never too little) and depends on no other module of the node.
 */
import { Transform, type TransformCallback } from 'node:stream';

const REDACTED = Buffer.from('[redacted]');
const REDACTED_TEXT = '[redacted]';
const EMPTY = Buffer.alloc(0);
/** A held tail at least this long at the very end of an answer is taken for a cut-off secret. */
const CUT_OFF_PART = 4;
/** How many levels of JSON escaping are decoded (a JSON text inside a JSON string inside a JSON string). */
const MAX_DEPTH = 3;

const BACKSLASH = 0x5c;
const LETTER_U = 0x75;
/** What each short JSON escape (`\n`, `\/`, …) decodes to, by the byte after the backslash; -1 for none. */
const SHORT_ESCAPES = new Int16Array(256).fill(-1);
for (const [letter, value] of [['"', 0x22], ['\\', 0x5c], ['/', 0x2f], ['b', 0x08], ['f', 0x0c], ['n', 0x0a], ['r', 0x0d], ['t', 0x09]] as const) {
  SHORT_ESCAPES[letter.charCodeAt(0)] = value;
}
const HEX = new Int8Array(256).fill(-1);
for (let i = 0; i < 16; i++) HEX['0123456789abcdef'.charCodeAt(i)] = HEX['0123456789ABCDEF'.charCodeAt(i)] = i;

// ---------------------------------------------------------------------------------------------------------
// The secrets, compiled once per list

interface Compiled {
  /** The literal forms as bytes, longest first (a value is removed before a part of it). */
  readonly forms: readonly Buffer[];
  /** The secrets themselves (not their escaped forms) as bytes, longest first: what a decoded text is searched for. */
  readonly raw: readonly Buffer[];
  /** The two-byte escapes (`\u`, and `\/` etc. for a secret holding that character) that may spell a secret's character. */
  readonly triggers: readonly Buffer[];
  /** The same as texts. */
  readonly triggerTexts: readonly string[];
}

/** The secrets each `echoForms` list was made from: its escaped forms are literal spellings, not secrets to decode. */
const formsSource = new WeakMap<readonly string[], readonly string[]>();
const compiledCache = new WeakMap<readonly string[], Compiled>();
const formsCache = new WeakMap<readonly string[], readonly string[]>();

function compile(list: readonly string[]): Compiled {
  let compiled = compiledCache.get(list);
  if (compiled === undefined) {
    const toBytes = (values: readonly string[]): Buffer[] =>
      [...new Set(values)]
        .filter((s) => s.length > 0)
        .map((s) => Buffer.from(s, 'utf8'))
        .sort((a, b) => b.length - a.length);
    const raw = toBytes(formsSource.get(list) ?? list);
    const triggers = [Buffer.from('\\u')];
    for (let letter = 0; letter < 256; letter++) {
      const value = SHORT_ESCAPES[letter]!;
      if (value >= 0 && raw.some((s) => s.includes(value))) triggers.push(Buffer.from([BACKSLASH, letter]));
    }
    compiled = { forms: toBytes(list), raw, triggers, triggerTexts: triggers.map((t) => t.toString('latin1')) };
    compiledCache.set(list, compiled);
  }
  return compiled;
}

/**
 * The secrets and their JSON string spellings (cached per list: `callSecrets` lists are cached per
 * credential). A JSON text may spell a secret escaped (`\/` for `/`, as PHP's json_encode does by default;
 * `\"`, `\\`): a literal search needs those spellings. Any other mix of escapes is found by decoding.
 */
export function echoForms(secrets: readonly string[]): readonly string[] {
  let forms = formsCache.get(secrets);
  if (forms === undefined) {
    const all = new Set<string>();
    for (const secret of secrets) {
      if (secret === '') continue;
      all.add(secret);
      const escaped = JSON.stringify(secret).slice(1, -1);
      all.add(escaped);
      if (escaped.includes('/')) all.add(escaped.replaceAll('/', '\\/'));
    }
    forms = all.size === secrets.length ? secrets : [...all].sort((a, b) => b.length - a.length);
    if (forms !== secrets) formsSource.set(forms, secrets);
    formsCache.set(secrets, forms);
  }
  return forms;
}
// ---------------------------------------------------------------------------------------------------------
// Literal search

/** `data` with every literal occurrence of each form replaced; `data` itself when none occurs (the common case). */
function replaceLiteral(data: Buffer, forms: readonly Buffer[]): Buffer {
  let out = data;
  for (const secret of forms) {
    let at = out.indexOf(secret);
    if (at === -1) continue;
    const parts: Buffer[] = [];
    let from = 0;
    while (at !== -1) {
      parts.push(out.subarray(from, at), REDACTED);
      from = at + secret.length;
      at = out.indexOf(secret, from);
    }
    parts.push(out.subarray(from));
    out = Buffer.concat(parts);
  }
  return out;
}

/** How many bytes at the end of `data` are the beginning of some secret (the longest such end), 0 for none. */
function literalHeld(data: Buffer, secrets: readonly Buffer[]): number {
  let held = 0;
  for (const secret of secrets) {
    const first = secret[0]!;
    // Candidates start where the secret's first byte occurs, within the secret's length minus one of the end.
    const floor = Math.max(data.length - secret.length + 1, 0);
    let at = data.lastIndexOf(first, data.length - 1);
    while (at >= floor) {
      const tail = data.length - at;
      if (tail > held && data.compare(secret, 0, tail, at) === 0) held = tail;
      at = at === 0 ? -1 : data.lastIndexOf(first, at - 1);
    }
  }
  return held;
}

// ---------------------------------------------------------------------------------------------------------
// Escaped spellings

/** One level of JSON escapes decoded: what the text reads as, and where each of its bytes came from. */
interface Level {
  out: Buffer;
  /** Per byte of `out` (and one past its end) the offset in the *original* data of the unit it was decoded from. */
  from: Uint32Array;
  /** The original offset where an escape cut off by the end of the data begins, or -1. */
  partial: number;
}

/** Whether `data` holds an escape that may spell a secret's character, or ends in what may begin one. */
function mayHoldEscape(data: Buffer, compiled: Compiled): boolean {
  for (const trigger of compiled.triggers) if (data.includes(trigger)) return true;
  // A backslash at the very end may begin any escape (`\u…` is caught above).
  return data.length > 0 && data[data.length - 1] === BACKSLASH;
}

/** Whether the data from `at` to its end is shorter than a `\uXXXX` escape and could begin one. */
function escapeBegins(data: Buffer, at: number): boolean {
  if (data.length - at >= 6) return false;
  for (let i = at; i < data.length; i++) {
    const ok = i === at ? data[i] === BACKSLASH : i === at + 1 ? data[i] === LETTER_U : HEX[data[i]!]! >= 0;
    if (!ok) return false;
  }
  return true;
}

/** Four hex digits at `at` as a number; -1 where one is not a hex digit, -2 where the data ends first. */
function hex4(data: Buffer, at: number): number {
  let value = 0;
  for (let i = at; i < at + 4; i++) {
    if (i >= data.length) return -2;
    const digit = HEX[data[i]!]!;
    if (digit < 0) return -1;
    value = value * 16 + digit;
  }
  return value;
}

/** Writes code point `cp` as UTF-8 at `o` (a lone surrogate as 0xFF, which no UTF-8 secret holds); the bytes written. */
function writeUtf8(out: Buffer, o: number, cp: number): number {
  if (cp < 0x80) {
    out[o] = cp;
    return 1;
  }
  if (cp < 0x800) {
    out[o] = 0xc0 | (cp >> 6);
    out[o + 1] = 0x80 | (cp & 0x3f);
    return 2;
  }
  if (cp >= 0xd800 && cp <= 0xdfff) {
    out[o] = 0xff;
    return 1;
  }
  if (cp < 0x10000) {
    out[o] = 0xe0 | (cp >> 12);
    out[o + 1] = 0x80 | ((cp >> 6) & 0x3f);
    out[o + 2] = 0x80 | (cp & 0x3f);
    return 3;
  }
  out[o] = 0xf0 | (cp >> 18);
  out[o + 1] = 0x80 | ((cp >> 12) & 0x3f);
  out[o + 2] = 0x80 | ((cp >> 6) & 0x3f);
  out[o + 3] = 0x80 | (cp & 0x3f);
  return 4;
}

/**
 * `data` with its JSON escapes decoded (a backslash that starts none stays as it is), mapped back through
 * `origin` (the original offset of each byte of `data`, for a nested level) to the original data.
 */
function decodeLevel(data: Buffer, origin: Uint32Array | null): Level {
  const n = data.length;
  // Decoding never lengthens: every escape is longer than the UTF-8 it stands for.
  const out = Buffer.allocUnsafe(n);
  const from = new Uint32Array(n + 1);
  const source = (i: number): number => (origin === null ? i : origin[i]!);
  let o = 0;
  let i = 0;
  let partial = -1;
  while (i < n) {
    if (data[i] !== BACKSLASH) {
      // A run without escapes is copied as it is.
      let end = data.indexOf(BACKSLASH, i);
      if (end === -1) end = n;
      data.copy(out, o, i, end);
      if (origin === null) for (; i < end; i++) from[o++] = i;
      else for (; i < end; i++) from[o++] = origin[i]!;
      continue;
    }
    if (i + 1 === n) {
      partial = i;
      break;
    }
    const next = data[i + 1]!;
    const short = SHORT_ESCAPES[next]!;
    if (short >= 0) {
      out[o] = short;
      from[o++] = source(i);
      i += 2;
      continue;
    }
    const unit = next === LETTER_U ? hex4(data, i + 2) : -1;
    if (unit === -2) {
      partial = i;
      break;
    }
    if (unit === -1) {
      out[o] = BACKSLASH;
      from[o++] = source(i++);
      continue;
    }
    let cp = unit;
    let length = 6;
    if (unit >= 0xd800 && unit <= 0xdbff) {
      // A high surrogate: with a low one escaped right after it, one character beyond the BMP. Cut off
      // before the low one could be read whole, it waits for the rest.
      if (escapeBegins(data, i + 6)) {
        partial = i;
        break;
      }
      const low = data[i + 6] === BACKSLASH && data[i + 7] === LETTER_U ? hex4(data, i + 8) : -1;
      if (low >= 0xdc00 && low <= 0xdfff) {
        cp = 0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00);
        length = 12;
      }
    }
    const start = source(i);
    const written = writeUtf8(out, o, cp);
    for (let k = 0; k < written; k++) from[o++] = start;
    i += length;
  }
  from[o] = partial === -1 ? (origin === null ? n : origin[n]!) : source(partial);
  return { out: out.subarray(0, o), from: from.subarray(0, o + 1), partial: partial === -1 ? -1 : source(partial) };
}

/** The decoded levels of `data` (at least one), each decoded from the one before while it may hold an escape. */
function decodeLevels(data: Buffer, compiled: Compiled): Level[] {
  const levels = [decodeLevel(data, null)];
  for (let depth = 1; depth < MAX_DEPTH; depth++) {
    const last = levels[levels.length - 1]!;
    if (!mayHoldEscape(last.out, compiled)) break;
    levels.push(decodeLevel(last.out, last.from));
  }
  return levels;
}

/** Where each decoded occurrence of a secret stands in the original data, as [start, end) ranges, sorted, merged. */
function escapedSpans(levels: readonly Level[], secrets: readonly Buffer[]): Array<[number, number]> {
  const spans: Array<[number, number]> = [];
  for (const { out, from } of levels) {
    for (const secret of secrets) {
      for (let at = out.indexOf(secret); at !== -1; at = out.indexOf(secret, at + secret.length)) {
        // The end is where the unit after the occurrence's last byte begins.
        let end = at + secret.length;
        while (end < out.length && from[end] === from[end - 1]) end++;
        spans.push([from[at]!, from[end]!]);
      }
    }
  }
  if (spans.length < 2) return spans;
  spans.sort((a, b) => a[0] - b[0]);
  const merged: Array<[number, number]> = [spans[0]!];
  for (const span of spans.slice(1)) {
    const last = merged[merged.length - 1]!;
    if (span[0] <= last[1]) last[1] = Math.max(last[1], span[1]);
    else merged.push(span);
  }
  return merged;
}

function replaceSpans(data: Buffer, spans: ReadonlyArray<readonly [number, number]>): Buffer {
  const parts: Buffer[] = [];
  let from = 0;
  for (const [start, end] of spans) {
    parts.push(data.subarray(from, start), REDACTED);
    from = end;
  }
  parts.push(data.subarray(from));
  return Buffer.concat(parts);
}

/**
 * Where the longest end of the data that may begin a secret in some spelling starts (an original offset),
 * or `length` for none. An escape cut off at the end may be the secret's next character.
 */
function escapedHeldStart(levels: readonly Level[], secrets: readonly Buffer[], length: number): number {
  let start = length;
  for (const { out, from, partial } of levels) {
    if (partial !== -1) start = Math.min(start, partial);
    for (const secret of secrets) {
      const floor = Math.max(out.length - secret.length + 1, 0);
      for (let at = out.lastIndexOf(secret[0]!, out.length - 1); at >= floor; at = at === 0 ? -1 : out.lastIndexOf(secret[0]!, at - 1)) {
        if (from[at]! < start && out.compare(secret, 0, out.length - at, at) === 0) start = from[at]!;
      }
    }
  }
  return start;
}

/** `offset` moved back to the start of the decoded unit it falls in (so the next chunk is decoded from a unit's start). */
function unitStart(levels: readonly Level[], offset: number): number {
  const { from } = levels[levels.length - 1]!;
  let lo = 0;
  let hi = from.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (from[mid]! <= offset) lo = mid;
    else hi = mid - 1;
  }
  return from[lo]! <= offset ? from[lo]! : offset;
}

// ---------------------------------------------------------------------------------------------------------
// Both, on one piece of data

/** `data` with every occurrence of each secret, in any spelling, replaced; `data` itself when none occurs. */
function replaceAll(data: Buffer, compiled: Compiled): Buffer {
  const out = replaceLiteral(data, compiled.forms);
  if (!mayHoldEscape(out, compiled)) return out;
  const spans = escapedSpans(decodeLevels(out, compiled), compiled.raw);
  return spans.length === 0 ? out : replaceSpans(out, spans);
}

/**
 * `data` scrubbed, and how many bytes at its end may begin a secret in some spelling (0 for none). Decoded
 * once when no secret occurs (the common case), again after one was replaced.
 */
function scrubHeld(data: Buffer, compiled: Compiled): { out: Buffer; held: number } {
  let out = replaceLiteral(data, compiled.forms);
  if (!mayHoldEscape(out, compiled)) return { out, held: literalHeld(out, compiled.forms) };
  let levels = decodeLevels(out, compiled);
  const spans = escapedSpans(levels, compiled.raw);
  if (spans.length > 0) {
    out = replaceSpans(out, spans);
    if (!mayHoldEscape(out, compiled)) return { out, held: literalHeld(out, compiled.forms) };
    levels = decodeLevels(out, compiled);
  }
  // A literal beginning is held from the start of the unit it falls in: the next chunk is decoded from there.
  const literal = unitStart(levels, out.length - literalHeld(out, compiled.forms));
  return { out, held: out.length - Math.min(literal, escapedHeldStart(levels, compiled.raw, out.length)) };
}

export class SecretScrubber extends Transform {
  readonly #compiled: Compiled;
  #held: Buffer = EMPTY;

  constructor(secrets: readonly string[]) {
    super();
    this.#compiled = compile(secrets);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    if (this.#compiled.forms.length === 0) return done(null, chunk);
    const { out: data, held } = scrubHeld(this.#held.length === 0 ? chunk : Buffer.concat([this.#held, chunk]), this.#compiled);
    // A copy: the held bytes must not pin (or alias) the chunk buffer passed on.
    this.#held = held === 0 ? EMPTY : Buffer.from(data.subarray(data.length - held));
    if (held < data.length) this.push(held === 0 ? data : data.subarray(0, data.length - held));
    done();
  }

  override _flush(done: TransformCallback): void {
    const held = this.#held;
    this.#held = EMPTY;
    if (held.length > 0) this.push(held.length >= CUT_OFF_PART ? REDACTED : held);
    done();
  }
}

/** A whole body with every occurrence of each secret replaced (`data` itself when none occurs). */
export function scrubBytes(data: Buffer, secrets: readonly string[]): Buffer {
  const compiled = compile(secrets);
  return compiled.forms.length === 0 ? data : replaceAll(data, compiled);
}

/** A body cut short at `data`'s end: scrubbed, and a tail that could begin a secret replaced too. */
export function scrubCutBytes(data: Buffer, secrets: readonly string[]): Buffer {
  const compiled = compile(secrets);
  if (compiled.forms.length === 0) return data;
  const { out, held } = scrubHeld(data, compiled);
  return held === 0 ? out : Buffer.concat([out.subarray(0, out.length - held), REDACTED]);
}

/** A text with every occurrence of each secret replaced, in any spelling (`text` itself when none occurs). */
export function scrubText(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) {
    if (secret !== '' && out.includes(secret)) out = out.split(secret).join(REDACTED_TEXT);
  }
  const compiled = compile(secrets);
  if (compiled.forms.length === 0 || !mayHoldEscapeText(out, compiled)) return out;
  const bytes = Buffer.from(out, 'utf8');
  const scrubbed = replaceAll(bytes, compiled);
  return scrubbed === bytes ? out : scrubbed.toString('utf8');
}

/** Whether `data` holds any of the secrets in any spelling (the common answer holds none: then it is relayed as it came). */
export function holdsAny(data: string | Buffer, secrets: readonly string[]): boolean {
  for (const secret of secrets) if (secret !== '' && data.includes(secret)) return true;
  const compiled = compile(secrets);
  if (compiled.forms.length === 0) return false;
  if (typeof data === 'string') {
    if (!mayHoldEscapeText(data, compiled)) return false;
    data = Buffer.from(data, 'utf8');
  } else if (!mayHoldEscape(data, compiled)) return false;
  return escapedSpans(decodeLevels(data, compiled), compiled.raw).length > 0;
}

/** `mayHoldEscape` on a text, without encoding it (the common text holds no escape). */
function mayHoldEscapeText(text: string, compiled: Compiled): boolean {
  for (const trigger of compiled.triggerTexts) if (text.includes(trigger)) return true;
  return false;
}
