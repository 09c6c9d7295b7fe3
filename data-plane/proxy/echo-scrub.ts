/**
 * What `/mcp/{server}` removes from an upstream's answer: the call's secrets (the credential the gateway
 * injected, `callSecrets`) wherever they occur, in every body it relays (JSON, SSE, anything else; whole or
 * streamed, past any length: `SecretScrubber` finds an occurrence split across chunks and holds back only a
 * tail that may begin one, so memory stays bounded and SSE events are not delayed) and in the relayed header
 * values. A body the node streams cannot be told apart into error and result before it has passed, so the
 * credential goes wherever it is: it is never the caller's to read.
 *
 * A JSON body may spell a secret escaped (`\/` for `/`, as PHP's json_encode does by default; `\"`, `\\`;
 * `\uXXXX` for any character, in any mix with plain ones; nested): every spelling is found (`secrets/scrubber.ts`),
 * an escape split across chunks included.
 *
 * It does not parse bodies.
 */
import { pipeline, type Readable } from 'node:stream';
import { SecretScrubber, scrubBytes, scrubText } from '../secrets/scrubber.js';

/** A whole body in hand, scrubbed. */
export function scrubbedBody(data: Buffer, forms: readonly string[]): Buffer {
  return scrubBytes(data, forms);
}

/**
 * A streamed body, scrubbed as it passes; a break on either side ends both (the caller leaving aborts the
 * upstream, an upstream breaking off fails the answer, which the respond stage turns into a closed response).
 */
export function scrubbedStream(body: Readable, forms: readonly string[]): Readable {
  if (forms.length === 0) return body;
  return pipeline(body, new SecretScrubber(forms), () => undefined);
}

/** Relayed header values, scrubbed in place. */
export function scrubHeaderValues(headers: Record<string, string>, forms: readonly string[]): void {
  if (forms.length === 0) return;
  for (const name in headers) {
    const value = headers[name] as string;
    headers[name] = scrubText(value, forms);
  }
}
