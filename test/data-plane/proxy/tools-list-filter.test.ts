/**
 * The tools/list rewrite of `/mcp/{server}`: an SSE body passes byte for byte except the one response event,
 * whatever the line endings and however the bytes are split into chunks (text/event-stream §parsing).
 */
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { filterToolsListJson, toolsListSseFilter } from '../../../data-plane/proxy/tools-list-filter.js';

const grant = new Set(['a']);
const response = { jsonrpc: '2.0', id: 7, result: { tools: [{ name: 'a' }, { name: 'b' }], nextCursor: 'c' } };

async function run(chunks: string[]): Promise<string> {
  let out = '';
  for await (const chunk of Readable.from(chunks.map((c) => Buffer.from(c))).pipe(toolsListSseFilter(7, grant))) out += String(chunk);
  return out;
}

describe('tools/list filter', () => {
  it('filters a JSON answer and leaves other messages alone', () => {
    expect(JSON.parse(filterToolsListJson(JSON.stringify(response), 7, grant))).toEqual({ ...response, result: { tools: [{ name: 'a' }], nextCursor: 'c' } });
    const other = JSON.stringify({ ...response, id: 8 });
    expect(filterToolsListJson(other, 7, grant)).toBe(other);
    expect(filterToolsListJson('not json', 7, grant)).toBe('not json');
  });

  for (const eol of ['\n', '\r\n', '\r']) {
    it(`passes other events unchanged and rewrites the response (line ending ${JSON.stringify(eol)}, split anywhere)`, async () => {
      const note = `: comment${eol}event: message${eol}data: {"jsonrpc":"2.0","method":"notifications/progress",${eol}data: "params":{"progress":1}}${eol}${eol}`;
      const answer = `id: 5${eol}event: message${eol}data: ${JSON.stringify(response)}${eol}${eol}`;
      const text = note + answer;
      for (let split = 1; split < text.length; split += 1) {
        const out = await run([text.slice(0, split), text.slice(split)]);
        expect(out.startsWith(note)).toBe(true);
        const rest = out.slice(note.length);
        expect(rest).toBe(`id: 5\nevent: message\ndata: ${JSON.stringify({ ...response, result: { tools: [{ name: 'a' }], nextCursor: 'c' } })}\n\n`);
      }
    });
  }

  it('passes an unterminated last event as it came', async () => {
    expect(await run(['data: {"x":1}\n\n', 'data: partial'])).toBe('data: {"x":1}\n\ndata: partial');
  });
});
