/**
 * The cost bound of a Messages API call read from its request (data-plane/anthropic/pricing.ts), which the
 * Limiter reserves on budgets: prompt tokens at most the body's bytes plus an allowance per request and per
 * image/document block, capped at the context window; output at most max_tokens or the thinking budget; and
 * the priced bound never below `costNanos` of any usage within it, however the prompt splits between
 * input, cache writes and cache reads.
 */
import { describe, expect, it } from 'vitest';
import { costBoundNanos, costNanos, tokenBound } from '../../../data-plane/anthropic/pricing.js';

const PRICE = { model: 'claude-*', inputPerMTok: 3, outputPerMTok: 15, cacheWritePerMTok: 3.75, cacheReadPerMTok: 0.3 };

describe('tokenBound', () => {
  const text = { model: 'claude-x', max_tokens: 500, messages: [{ role: 'user', content: 'hello' }] };
  const bytes = (v: unknown): number => Buffer.byteLength(JSON.stringify(v));

  it('bounds the prompt by the body bytes plus a fixed allowance, and the output by max_tokens', () => {
    const plain = tokenBound(text, bytes(text));
    expect(plain.outputTokens).toBe(500);
    expect(plain.promptTokens).toBeGreaterThan(bytes(text));
    // Each byte more is one token more.
    expect(tokenBound(text, bytes(text) + 1000).promptTokens).toBe(plain.promptTokens + 1000);
  });

  it('adds an allowance for every image or document block, wherever it is (a URL image is a few bytes)', () => {
    const image = { type: 'image', source: { type: 'url', url: 'https://example.com/a.png' } };
    const withImages = {
      ...text,
      system: [{ type: 'text', text: 's' }],
      messages: [
        { role: 'user', content: [image, { type: 'text', text: 'look' }] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 't', content: [image, { type: 'document', source: { type: 'text', data: 'd' } }] }] },
      ],
    };
    const plain = tokenBound(text, 0).promptTokens;
    const bound = tokenBound(withImages, 0).promptTokens;
    expect(bound - plain).toBe(3 * 5_000);
  });

  it('takes the thinking budget when it is above max_tokens, and 128k when max_tokens is missing or not a count', () => {
    expect(tokenBound({ ...text, thinking: { type: 'enabled', budget_tokens: 20_000 } }, 10).outputTokens).toBe(20_000);
    expect(tokenBound({ model: 'claude-x', messages: [] }, 10).outputTokens).toBe(128_000);
    expect(tokenBound({ ...text, max_tokens: '500' }, 10).outputTokens).toBe(128_000);
    expect(tokenBound({ ...text, max_tokens: -1 }, 10).outputTokens).toBe(128_000);
  });

  it('never reserves a prompt longer than the 1M-token context window, and walks a deeply nested body without recursion', () => {
    expect(tokenBound(text, 30 * 1024 * 1024).promptTokens).toBe(1_000_000);
    let deep: unknown = { type: 'image' };
    for (let i = 0; i < 200_000; i++) deep = [{ nested: deep }];
    expect(tokenBound({ ...text, messages: deep }, 100).promptTokens).toBe(tokenBound(text, 100).promptTokens + 5_000);
  });
});

describe('costBoundNanos', () => {
  it('is never below the cost of any usage within the bound, however the prompt splits', () => {
    const bound = { promptTokens: 12_345, outputTokens: 777 };
    const limit = costBoundNanos(PRICE, bound);
    for (const [input, write] of [
      [12_345, 0],
      [0, 12_345],
      [0, 0],
      [4_115, 4_115],
      [1, 12_343],
    ] as const) {
      const usage = { inputTokens: input, cacheCreationTokens: write, cacheReadTokens: bound.promptTokens - input - write, outputTokens: bound.outputTokens };
      expect(costNanos(PRICE, usage)).toBeLessThanOrEqual(limit);
    }
    // All of it written to the cache (the dearest prompt price) is the bound, to within its rounding slack.
    expect(limit - costNanos(PRICE, { inputTokens: 0, cacheCreationTokens: 12_345, cacheReadTokens: 0, outputTokens: 777 })).toBeLessThanOrEqual(6);
  });
});
