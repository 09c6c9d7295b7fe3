/**
 * Prices LLM usage from a provider's price table: the entry for a model (exact name first, then the
 * longest matching `prefix*`), and the cost of input, output, cache-write and cache-read tokens in integer
 * nano-USD (USD per million tokens × tokens × 1000), rounded once per kind so every node and the control
 * plane compute the same number. Pure.
 */
import type { ModelPrice } from '../snapshot/schema.js';

export interface TokenUsage {
  inputTokens: number;
  outputTokens: number;
  cacheCreationTokens: number;
  cacheReadTokens: number;
}

export function findPrice(prices: readonly ModelPrice[], model: string): ModelPrice | null {
  let best: ModelPrice | null = null;
  for (const p of prices) {
    if (p.model === model) return p;
    if (p.model.endsWith('*') && model.startsWith(p.model.slice(0, -1)) && (best === null || p.model.length > best.model.length)) best = p;
  }
  return best;
}

export function costNanos(price: ModelPrice, usage: TokenUsage): number {
  const part = (tokens: number, perMTok: number) => Math.round(tokens * perMTok * 1000);
  return (
    part(usage.inputTokens, price.inputPerMTok) +
    part(usage.outputTokens, price.outputPerMTok) +
    part(usage.cacheCreationTokens, price.cacheWritePerMTok) +
    part(usage.cacheReadTokens, price.cacheReadPerMTok)
  );
}
