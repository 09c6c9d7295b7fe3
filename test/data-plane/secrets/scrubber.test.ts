/**
 * SecretScrubber (data-plane/secrets/scrubber.ts): a secret is removed wherever the chunks of an
 * answer split it, nothing is held back at an SSE event's end (streaming stays event by event), and an
 * answer that ends inside a secret's beginning does not hand that part over.
 */
import { describe, expect, it } from 'vitest';
import { SecretScrubber } from '../../../data-plane/secrets/scrubber.js';

const KEY = 'sk-ant-api03-' + 'Zq7xK2mP9vL4nR8sT1wY6bC3dF5gH0jA'.repeat(3);

/** Feeds `chunks` one by one and returns what came out after each, and in all. */
async function run(secrets: readonly string[], chunks: readonly string[]): Promise<{ each: string[]; all: string }> {
  const scrubber = new SecretScrubber(secrets);
  const each: string[] = [];
  let out = '';
  scrubber.on('data', (c: Buffer) => (out += c.toString('utf8')));
  for (const chunk of chunks) {
    const before = out.length;
    await new Promise<void>((resolve) => scrubber.write(Buffer.from(chunk, 'utf8'), () => resolve()));
    each.push(out.slice(before));
  }
  await new Promise<void>((resolve) => scrubber.end(() => resolve()));
  return { each, all: out };
}

describe('SecretScrubber', () => {
  const body = `data: {"error":"invalid x-api-key ${KEY}","again":"${KEY}${KEY}"}\n\n`;
  const expected = body.split(KEY).join('[redacted]');

  it('removes the secret whatever two chunks it is split across', async () => {
    for (let at = 0; at <= body.length; at++) {
      const { all } = await run([KEY], [body.slice(0, at), body.slice(at)]);
      expect(all, `split at ${at}`).toBe(expected);
    }
  });

  it('removes it when every byte is a chunk of its own', async () => {
    const { all } = await run([KEY], [...body]);
    expect(all).toBe(expected);
  });

  it('holds nothing back at the end of an SSE event, and only a possible beginning of the secret otherwise', async () => {
    const event = 'event: content_block_delta\ndata: {"text":"hi"}\n\n';
    const { each } = await run([KEY], [event, 'data: {"text":"s', 'k-x"}\n\n']);
    expect(each[0]).toBe(event);
    // "s" may begin the key: it waits for the next chunk, which shows it does not.
    expect(each[1]).toBe('data: {"text":"');
    expect(each[2]).toBe('sk-x"}\n\n');
  });

  it('an answer that ends inside the secret\'s beginning ends with [redacted], not the part', async () => {
    const part = KEY.slice(0, 60);
    const { all } = await run([KEY], ['{"error":"', part]);
    expect(all).toBe('{"error":"[redacted]');
    expect(all).not.toContain(KEY.slice(0, 8));
  });

  it('passes bytes through unchanged (multi-byte characters split across chunks included)', async () => {
    const text = 'données – ☃ – 𝄞 end';
    const bytes = Buffer.from(text, 'utf8');
    const chunks = [bytes.subarray(0, 9), bytes.subarray(9, 15), bytes.subarray(15)].map((b) => b.toString('latin1'));
    const scrubber = new SecretScrubber([KEY]);
    const out: Buffer[] = [];
    scrubber.on('data', (c: Buffer) => out.push(c));
    for (const c of chunks) scrubber.write(Buffer.from(c, 'latin1'));
    await new Promise<void>((resolve) => scrubber.end(() => resolve()));
    expect(Buffer.concat(out).toString('utf8')).toBe(text);
  });

  it('removes every secret of the call, the longer one first', async () => {
    const { all } = await run([KEY.slice(13), KEY], [`a ${KEY} b ${KEY.slice(13)} c`]);
    expect(all).toBe('a [redacted] b [redacted] c');
  });
});
