/**
 * SecretScrubber (data-plane/secrets/scrubber.ts): a secret is removed wherever the chunks of an
 * answer split it, nothing is held back at an SSE event's end (streaming stays event by event), and an
 * answer that ends inside a secret's beginning does not hand that part over.
 */
import { describe, expect, it } from 'vitest';
import { SecretScrubber, holdsAny, scrubBytes, scrubText } from '../../../data-plane/secrets/scrubber.js';

const KEY = 'sk-ant-api03-' + 'Zq7xK2mP9vL4nR8sT1wY6bC3dF5gH0jA'.repeat(3);

/** Feeds `chunks` one by one and returns what came out after each, and in all. */
async function run(secrets: readonly string[], chunks: ReadonlyArray<string | Buffer>): Promise<{ each: string[]; all: string }> {
  const scrubber = new SecretScrubber(secrets);
  const each: string[] = [];
  let out = '';
  scrubber.on('data', (c: Buffer) => (out += c.toString('utf8')));
  for (const chunk of chunks) {
    const before = out.length;
    await new Promise<void>((resolve) => scrubber.write(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk, () => resolve()));
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

/** `text` with every `\uXXXX` and `\/` read as what it stands for, however many backslashes precede it (what a client decoding again and again would see). */
function decodedAll(text: string): string {
  for (let before = ''; before !== text; ) {
    before = text;
    text = text.replace(/\\+u([0-9a-fA-F]{4})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16))).replace(/\\+\//g, '/');
  }
  return text;
}

/** `secret` with the characters `escape` picks spelled `\uXXXX` (hex in `upper` case or not). */
function spell(secret: string, escape: (i: number) => boolean, upper = false): string {
  return [...secret]
    .map((c, i) => {
      if (!escape(i)) return c;
      return Array.from({ length: c.length }, (_unit, k) => `\\u${c.charCodeAt(k).toString(16).padStart(4, '0')}`)
        .join('')
        .replace(/[a-f]/g, (h) => (upper ? h.toUpperCase() : h));
    })
    .join('');
}

describe('SecretScrubber: a secret spelled with JSON \\u escapes', () => {
  const spellings: Array<[string, string]> = [
    ['every character escaped', spell(KEY, () => true)],
    ['every character escaped, upper-case hex', spell(KEY, () => true, true)],
    ['every other character escaped, mixed case', spell(KEY, (i) => i % 2 === 0, true).replace(/\\u00(.)(.)/g, (_m, a: string, b: string) => `\\u00${a}${b.toLowerCase()}`)],
    ['only the first character escaped', spell(KEY, (i) => i === 0)],
    ['only the last character escaped', spell(KEY, (i) => i === KEY.length - 1)],
    ['twice encoded (a JSON text inside a JSON string)', spell(KEY, (i) => i % 3 === 1).replaceAll('\\u', '\\\\u')],
  ];

  for (const [label, spelled] of spellings) {
    it(`${label}: removed whatever two chunks it is split across`, async () => {
      const body = `data: {"text":"your key is ${spelled}!","n":1}\n\n`;
      const expected = body.replace(spelled, '[redacted]');
      for (let at = 0; at <= body.length; at++) {
        const { all } = await run([KEY], [body.slice(0, at), body.slice(at)]);
        expect(all, `split at ${at}`).toBe(expected);
      }
      expect(decodedAll(expected)).not.toContain(KEY.slice(0, 8));
    });

    it(`${label}: removed from a whole body, a text, and found by holdsAny`, () => {
      const body = `{"error":"invalid key ${spelled}"}`;
      expect(scrubBytes(Buffer.from(body), [KEY]).toString()).toBe('{"error":"invalid key [redacted]"}');
      expect(scrubText(body, [KEY])).toBe('{"error":"invalid key [redacted]"}');
      expect(holdsAny(body, [KEY])).toBe(true);
      expect(holdsAny(Buffer.from(body), [KEY])).toBe(true);
    });
  }

  it('removed when every byte is a chunk of its own', async () => {
    const spelled = spell(KEY, (i) => i % 2 === 1);
    const { all } = await run([KEY], [...`{"a":"${spelled}"}`]);
    expect(all).toBe('{"a":"[redacted]"}');
  });

  it('characters beyond ASCII and the BMP, escaped (a surrogate pair) or not, in any mix', async () => {
    const secret = 'pässwörd-𝄞-Ω-0123456789';
    for (const escape of [() => true, (i: number) => i % 2 === 0, (i: number) => i === 13]) {
      const spelled = spell(secret, escape);
      // Split by bytes: a raw character's UTF-8 may be cut in its middle too.
      const body = Buffer.from(`{"p":"${spelled}"}`, 'utf8');
      for (let at = 0; at <= body.length; at++) {
        const { all } = await run([secret], [body.subarray(0, at), body.subarray(at)]);
        expect(all, `split at ${at} of ${spelled}`).toBe('{"p":"[redacted]"}');
      }
    }
  });

  it('a secret holding / escaped as \\/ in one place and not in another', () => {
    const secret = 'tok/abc/def0123456789';
    const body = '{"t":"tok\\/abc/def0123456789"}';
    expect(scrubBytes(Buffer.from(body), [secret]).toString()).toBe('{"t":"[redacted]"}');
  });

  it('an escaped backslash before u is not an escape: the text after it is read as it stands', () => {
    const body = '{"t":"C:\\\\users\\\\u0041 ok"}';
    expect(scrubBytes(Buffer.from(body), [KEY]).toString()).toBe(body);
    expect(holdsAny(body, ['A ok'])).toBe(true);
  });

  it('a clean answer with escapes passes unchanged, an SSE event is not held, an escape cut off at a chunk end waits', async () => {
    const event = 'event: content_block_delta\ndata: {"text":"caf\\u00e9\\n"}\n\n';
    const { each, all } = await run([KEY], [event, 'data: {"text":"\\u00', '73 is s"}\n\n']);
    expect(each[0]).toBe(event);
    expect(each[1]).toBe('data: {"text":"');
    expect(each[2]).toBe('\\u0073 is s"}\n\n');
    expect(all).toBe(`${event}data: {"text":"\\u0073 is s"}\n\n`);
  });

  it('an answer that ends inside an escaped beginning of the secret ends with [redacted]', async () => {
    const { all } = await run([KEY], ['{"error":"', spell(KEY.slice(0, 30), () => true)]);
    expect(all).toBe('{"error":"[redacted]');
  });
});
