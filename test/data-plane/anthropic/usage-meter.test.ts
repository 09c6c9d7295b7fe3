/**
 * UsageMeter (data-plane/anthropic/usage-meter.ts) on streamed answers: one event longer than the bound (a
 * provider that never sends the blank line ending it) is not buffered without limit: it goes unmetered, the
 * caller is told once an answer, every byte still passes, and the events after its blank line (any line
 * ends, split across chunks) are metered again. An event whose data is not JSON does not stop the events
 * after it in the same chunk from being metered.
 */
import { describe, expect, it } from 'vitest';
import { UsageMeter, type MeteredUsage } from '../../../data-plane/anthropic/usage-meter.js';

const START = 'event: message_start\ndata: {"type":"message_start","message":{"model":"claude-x","usage":{"input_tokens":10,"output_tokens":1}}}\n\n';
const delta = (output: number, eol = '\n'): string => `event: message_delta${eol}data: {"type":"message_delta","usage":{"output_tokens":${output}}}${eol}${eol}`;

async function run(meter: UsageMeter, chunks: readonly string[]): Promise<{ out: string; usage: MeteredUsage | null }> {
  let out = '';
  meter.on('data', (c: Buffer) => (out += c.toString('utf8')));
  for (const chunk of chunks) await new Promise<void>((resolve) => meter.write(Buffer.from(chunk, 'utf8'), () => resolve()));
  await new Promise<void>((resolve) => meter.end(() => resolve()));
  return { out, usage: await meter.usage };
}

/** An event that goes on for `chunks` chunks of 300 characters without ending. */
function endless(chunks: number, eol = '\n'): string[] {
  return [`event: content_block_delta${eol}data: `, ...Array.from({ length: chunks }, (_, i) => `${'x'.repeat(299)}${i % 2 === 0 ? '' : eol + 'data: '}`)];
}

describe('UsageMeter on a streamed answer', () => {
  it('an endless event past the bound is not metered, told once; every byte passes; what came before counts', async () => {
    let told = 0;
    const meter = new UsageMeter('text/event-stream', { maxEventChars: 1024, onOversizedEvent: () => told++ });
    const chunks = [START, ...endless(40)];
    const { out, usage } = await run(meter, chunks);
    expect(out).toBe(chunks.join(''));
    expect(told).toBe(1);
    expect(usage).toEqual({ model: 'claude-x', inputTokens: 10, outputTokens: 1, cacheCreationTokens: 0, cacheReadTokens: 0 });
  });

  it('after the long event\'s blank line (LF, CRLF, CR; split across chunks) events are metered again; told once an answer', async () => {
    for (const eol of ['\n', '\r\n', '\r']) {
      let told = 0;
      const meter = new UsageMeter('text/event-stream', { maxEventChars: 1024, onOversizedEvent: () => told++ });
      // The blank line split between two chunks, then a second long event, then the last delta.
      const chunks = [START, ...endless(10, eol), eol, `${eol}${delta(42, eol)}`, ...endless(10, eol), `${eol}${eol}`, delta(50, eol)];
      const { out, usage } = await run(meter, chunks);
      expect(out, JSON.stringify(eol)).toBe(chunks.join(''));
      expect(told, JSON.stringify(eol)).toBe(1);
      expect(usage?.outputTokens, JSON.stringify(eol)).toBe(50);
    }
  });

  it('the blank line ending the long event may come at the very start of a chunk', async () => {
    const meter = new UsageMeter('text/event-stream', { maxEventChars: 1024 });
    const chunks = [START, ...endless(10), '\n', '\n', delta(42)];
    expect((await run(meter, chunks)).usage?.outputTokens).toBe(42);
    const crlf = new UsageMeter('text/event-stream', { maxEventChars: 1024 });
    expect((await run(crlf, [START, ...endless(10, '\r\n'), '\r\n\r', '\n', delta(43, '\r\n')])).usage?.outputTokens).toBe(43);
  });

  it('by default the bound is the relay\'s (1 MiB): an event under it is metered whole', async () => {
    const meter = new UsageMeter('text/event-stream');
    const big = `event: message_delta\ndata: {"usage":{"output_tokens":7},"pad":"${'x'.repeat(900_000)}"}\n\n`;
    expect((await run(meter, [START, big])).usage?.outputTokens).toBe(7);
    let told = 0;
    const over = new UsageMeter('text/event-stream', { onOversizedEvent: () => told++ });
    const huge = `event: message_delta\ndata: {"usage":{"output_tokens":8},"pad":"${'x'.repeat(1024 * 1024 + 10)}"}`;
    expect((await run(over, [START, huge, '\n\n', delta(9)])).usage?.outputTokens).toBe(9);
    expect(told).toBe(1);
  });

  it('an event whose data is not JSON leaves the rest of its chunk metered', async () => {
    const meter = new UsageMeter('text/event-stream');
    expect((await run(meter, [`event: message_start\ndata: not json\n\n${delta(7)}`])).usage?.outputTokens).toBe(7);
  });
});
