/**
 * SseBreak (data-plane/anthropic/sse-break.ts): complete events pass as they come, an unfinished one waits
 * for its blank line (any line ends), a break drops it and ends with the Messages API error event, and an
 * event longer than the bound passes as it comes (memory bounded), a break inside it ending it first.
 */
import { describe, expect, it } from 'vitest';
import { SseBreak } from '../../../data-plane/anthropic/sse-break.js';

async function run(chunks: readonly string[], broken: boolean): Promise<{ each: string[]; all: string }> {
  const stage = new SseBreak();
  let out = '';
  stage.on('data', (c: Buffer) => (out += c.toString('utf8')));
  const each: string[] = [];
  for (const chunk of chunks) {
    const before = out.length;
    await new Promise<void>((resolve) => stage.write(Buffer.from(chunk, 'utf8'), () => resolve()));
    each.push(out.slice(before));
  }
  if (broken) stage.breakOff('broke off');
  await new Promise<void>((resolve) => stage.end(() => resolve()));
  return { each, all: out };
}

const ERROR = 'event: error\ndata: {"type":"error","error":{"type":"api_error","message":"broke off"}}\n\n';

describe('SseBreak', () => {
  it('passes complete events at once (LF, CRLF, CR), holds an unfinished one until its blank line', async () => {
    for (const eol of ['\n', '\r\n', '\r']) {
      const a = `event: a${eol}data: 1${eol}${eol}`;
      const { each, all } = await run([a + 'event: b', `${eol}data: 2${eol}${eol}`], false);
      expect(each).toEqual([a, `event: b${eol}data: 2${eol}${eol}`]);
      expect(all).toBe(`${a}event: b${eol}data: 2${eol}${eol}`);
    }
  });

  it('on an ordinary end, an unfinished last event passes as it came', async () => {
    expect((await run(['data: 1\n\ndata: 2'], false)).all).toBe('data: 1\n\ndata: 2');
  });

  it('on a break, the unfinished event is dropped and the error event ends the stream', async () => {
    expect((await run(['data: 1\n\ndata: {"ha', 'lf'], true)).all).toBe(`data: 1\n\n\n${ERROR}`);
  });

  it('an event over 1 MiB passes as it comes; broken off inside it, a blank line ends it before the error event', async () => {
    const big = `data: ${'x'.repeat(1024 * 1024 + 10)}`;
    const { each, all } = await run(['data: 1\n\n', big], true);
    expect(each[1]).toBe(big);
    expect(all).toBe(`data: 1\n\n${big}\n\n${ERROR}`);
  });
});
