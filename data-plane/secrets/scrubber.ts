/**
 * Removes a call's secrets (the credential the node injected: the provider API key on `/anthropic`, an
 * upstream's on `/mcp/{server}`) from the answer while it streams to the caller: every occurrence becomes `[redacted]`, also one split across chunks. Only the end
 * of a chunk that could be the beginning of a secret is held back until the next chunk decides it, so an
 * SSE event (which ends in a blank line) is never delayed; stream-replace libraries (replacestream) hold
 * back a fixed window of the longest search string on every chunk, which would keep the end of each event
 * until the next one arrives. An answer that ends inside what could be a secret's beginning (a provider cut
 * off while echoing it) ends with `[redacted]` instead; one that breaks off drops what was held.
 *
 * It works on bytes (secrets are matched as their UTF-8), never decodes the answer, and does not parse it.
 */
import { Transform, type TransformCallback } from 'node:stream';

const REDACTED = Buffer.from('[redacted]');
const EMPTY = Buffer.alloc(0);
/** A held tail at least this long at the very end of an answer is taken for a cut-off secret. */
const CUT_OFF_PART = 4;

const compiled = new WeakMap<readonly string[], readonly Buffer[]>();

/** The secrets as bytes, longest first (a value is removed before a part of it); cached per list. */
function asBytes(secrets: readonly string[]): readonly Buffer[] {
  let bytes = compiled.get(secrets);
  if (!bytes) {
    bytes = secrets
      .filter((s) => s.length > 0)
      .map((s) => Buffer.from(s, 'utf8'))
      .sort((a, b) => b.length - a.length);
    compiled.set(secrets, bytes);
  }
  return bytes;
}

/** `data` with every occurrence of each secret replaced; `data` itself when none occurs (the common case). */
function replaceAll(data: Buffer, secrets: readonly Buffer[]): Buffer {
  let out = data;
  for (const secret of secrets) {
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
function heldLength(data: Buffer, secrets: readonly Buffer[]): number {
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

export class SecretScrubber extends Transform {
  readonly #secrets: readonly Buffer[];
  #held: Buffer = EMPTY;

  constructor(secrets: readonly string[]) {
    super();
    this.#secrets = asBytes(secrets);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    if (this.#secrets.length === 0) return done(null, chunk);
    const data = replaceAll(this.#held.length === 0 ? chunk : Buffer.concat([this.#held, chunk]), this.#secrets);
    const held = heldLength(data, this.#secrets);
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
  return replaceAll(data, asBytes(secrets));
}

/** A body cut short at `data`'s end: scrubbed, and a tail that could begin a secret replaced too. */
export function scrubCutBytes(data: Buffer, secrets: readonly string[]): Buffer {
  const bytes = asBytes(secrets);
  const out = replaceAll(data, bytes);
  const held = heldLength(out, bytes);
  return held === 0 ? out : Buffer.concat([out.subarray(0, out.length - held), REDACTED]);
}
