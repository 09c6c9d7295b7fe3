/**
 * Prices LLM usage from a provider's price table: the entry for a model (exact name first, then the
 * longest matching `prefix*`), and the cost of input, output, cache-write and cache-read tokens in integer
 * nano-USD (USD per million tokens × tokens × 1000), rounded once per kind so every node and the control
 * plane compute the same number. Also the upper bound of a call's cost known from its request (what the
 * Limiter reserves on budgets before the call runs). Pure.
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

/**
 * The most one Messages API call can use, read from its request before it runs: every prompt token (input,
 * cache write or cache read) is at least one byte of the request body (JSON adds bytes, never tokens), except
 * what the API adds itself, bounded here by a fixed allowance per request and per image or document block;
 * output is at most `max_tokens` (or the thinking budget, if larger). What it does not bound: input the API
 * adds on the provider's side during the call (server tools such as web search or fetch, a PDF page denser
 * than its bytes). A call that uses more is charged the excess when it settles.
 */
export interface TokenBound {
  promptTokens: number;
  outputTokens: number;
}

/** The system prompt the API adds for tool use and each message's framing (a few hundred tokens), generously. */
const PROMPT_OVERHEAD_TOKENS = 2_000;
/** An image (or a document) may cost more tokens than the bytes it is sent in (a URL, a small PNG): up to ~1,600 per image. */
const MEDIA_BLOCK_TOKENS = 5_000;
/** No Claude model reads a longer prompt (1M-token context window); a body of megabytes is not reserved as more. */
const MAX_PROMPT_TOKENS = 1_000_000;
/** Without a usable `max_tokens` (the API refuses such a request): the longest output a Claude model writes. */
const DEFAULT_OUTPUT_TOKENS = 128_000;

const tokenCount = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? Math.ceil(v) : null);

/** Image and document blocks anywhere in the request (walked without recursion: a deeply nested body cannot overflow the stack). */
function mediaBlocks(json: unknown): number {
  let count = 0;
  const stack: unknown[] = [json];
  while (stack.length > 0) {
    const value = stack.pop();
    if (typeof value !== 'object' || value === null) continue;
    if (Array.isArray(value)) {
      for (const item of value) if (typeof item === 'object' && item !== null) stack.push(item);
      continue;
    }
    const type = (value as { type?: unknown }).type;
    if (type === 'image' || type === 'document') count++;
    for (const item of Object.values(value)) if (typeof item === 'object' && item !== null) stack.push(item);
  }
  return count;
}

export function tokenBound(json: unknown, bodyBytes: number): TokenBound {
  const request = typeof json === 'object' && json !== null ? (json as { max_tokens?: unknown; thinking?: { budget_tokens?: unknown } | null }) : {};
  const maxTokens = tokenCount(request.max_tokens);
  const thinking = tokenCount(typeof request.thinking === 'object' && request.thinking !== null ? request.thinking.budget_tokens : undefined);
  return {
    promptTokens: Math.min(MAX_PROMPT_TOKENS, bodyBytes + PROMPT_OVERHEAD_TOKENS + MEDIA_BLOCK_TOKENS * mediaBlocks(json)),
    outputTokens: maxTokens === null ? DEFAULT_OUTPUT_TOKENS : Math.max(maxTokens, thinking ?? 0),
  };
}

/**
 * An upper bound of `costNanos` for any usage within `bound`: every prompt token at the dearest prompt
 * price (input, cache write or cache read), every output token at the output price; each part rounded up
 * and one nano-USD added for each kind `costNanos` rounds separately.
 */
export function costBoundNanos(price: ModelPrice, bound: TokenBound): number {
  const prompt = Math.max(price.inputPerMTok, price.cacheWritePerMTok, price.cacheReadPerMTok);
  return Math.ceil(bound.promptTokens * prompt * 1000) + Math.ceil(bound.outputTokens * price.outputPerMTok * 1000) + 4;
}
