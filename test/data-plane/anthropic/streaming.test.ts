/**
 * `/anthropic` streaming is passed through as it arrives (data-plane/anthropic): a provider that sends
 * `message_start` and then waits is seen by the caller before the provider goes on (no buffering of the
 * answer), and the usage of that stream (input, output, cache-creation and cache-read tokens) is priced
 * when it ends, settled against the key's limits, and reported once; a refused call never reaches the
 * provider; a budgeted call the caller leaves mid-stream is charged what was streamed and gives the rest of
 * its reserved cost bound back. A provider breaking off mid-stream (between events or inside one) ends the
 * caller's stream with a Messages API `error` event (it was a cut connection), and what it sent is charged. Runs a node's server over a Runtime built from a snapshot payload (no control plane).
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RuntimeHolder } from '../../../data-plane/config/runtime.js';
import { createLimiter, type GovernanceLimiter, type SpendEvent } from '../../../data-plane/limits/limiter.js';
import { createLogger } from '../../../data-plane/log.js';
import { createDataPlaneServer } from '../../../data-plane/node/data-plane-server.js';
import { UpstreamPool } from '../../../data-plane/upstream/pool.js';
import type { RequestRecord } from '../../../data-plane/pipeline/context.js';
import { llmKey, providerRuntime } from '../../support/provider-runtime.js';

const PROVIDER_KEY = 'sk-ant-stream-secret-abcdef0123';
const VIRTUAL_KEY = 'gk_streamingTestKey0123456789abcdefghijklmnop';
/** A second key without a budget, for a call made after the first key's budget is spent. */
const OTHER_KEY = 'gk_streamingOtherKey0123456789abcdefghijklmno';
/** A third key whose budget ($0.005) is under one call's cost bound (~$0.0061 for max_tokens 1000). */
const SMALL_BUDGET_KEY = 'gk_streamingSmallBudget0123456789abcdefghijk';
const PRICE = { model: 'claude-haiku-*', inputPerMTok: 0.8, outputPerMTok: 4, cacheWritePerMTok: 1, cacheReadPerMTok: 0.08 };
const USAGE = { input_tokens: 1234, cache_creation_input_tokens: 500, cache_read_input_tokens: 10_000, output_tokens: 1 };
const FINAL_OUTPUT = 777;

describe('/anthropic streaming', () => {
  let provider: Server;
  let providerUrl: string;
  let release: () => void = () => undefined;
  const seen: IncomingMessage[] = [];
  /** Provider answers whose connection closed before the provider finished them. */
  let cutOff = 0;
  let node: Server;
  let nodeUrl: string;
  let limiter: GovernanceLimiter;
  const events: SpendEvent[] = [];
  const records: RequestRecord[] = [];

  beforeAll(async () => {
    provider = createServer((req, res) => {
      seen.push(req);
      req.resume();
      res.once('close', () => {
        if (!res.writableFinished) cutOff++;
      });
      res.writeHead(200, { 'content-type': 'text/event-stream', 'request-id': 'req_1', 'set-cookie': 'provider=internal' });
      const start = `event: message_start\ndata: ${JSON.stringify({ type: 'message_start', message: { id: 'msg_1', model: 'claude-haiku-4-5', usage: USAGE } })}\n\n`;
      // `?break=1`: the provider's connection breaks right after message_start; `?break=mid`: in the middle
      // of the next event (its socket destroyed, as a provider or a proxy in its place dying does).
      if (req.url?.includes('break=1')) return void res.write(start, () => res.destroy());
      if (req.url?.includes('break=mid')) {
        const half = `event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hal`;
        return void res.write(start, () => setTimeout(() => res.write(half, () => setTimeout(() => res.socket?.destroy(), 10)), 10));
      }
      res.write(start);
      new Promise<void>((r) => (release = r)).then(() => {
        res.write(`event: content_block_delta\ndata: ${JSON.stringify({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'hi' } })}\n\n`);
        res.write(`event: message_delta\ndata: ${JSON.stringify({ type: 'message_delta', delta: { stop_reason: 'end_turn' }, usage: { output_tokens: FINAL_OUTPUT } })}\n\n`);
        res.end(`event: message_stop\ndata: {"type":"message_stop"}\n\n`);
      });
    });
    await new Promise<void>((r) => provider.listen(0, '127.0.0.1', () => r()));
    providerUrl = `http://127.0.0.1:${(provider.address() as AddressInfo).port}`;

    const keys = [
      llmKey('key_1', VIRTUAL_KEY, {
        name: 'k',
        limits: { budgets: [{ maxUsd: 0.02, period: 'MONTHLY' }], rateLimit: { requestsPerMinute: 100, tokensPerMinute: null }, fallback: 'FAIL_CLOSED' },
      }),
      llmKey('key_2', OTHER_KEY, { name: 'k2' }),
      llmKey('key_3', SMALL_BUDGET_KEY, { name: 'k3', limits: { budgets: [{ maxUsd: 0.005, period: 'MONTHLY' }], rateLimit: null, fallback: 'FAIL_CLOSED' } }),
    ];
    const holder = new RuntimeHolder();
    holder.set(providerRuntime({ baseUrl: providerUrl, apiKey: PROVIDER_KEY, keys, prices: [PRICE] }));
    const logger = createLogger('test-anthropic', { level: 'silent' });
    limiter = createLimiter({ spendSink: { report: (e) => events.push(e) } });
    node = createDataPlaneServer({ holder, pool: new UpstreamPool({ holder, logger }), logger, limiter, onRecord: (r) => records.push(r) });
    await new Promise<void>((r) => node.listen(0, '127.0.0.1', () => r()));
    nodeUrl = `http://127.0.0.1:${(node.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    node?.closeAllConnections();
    await new Promise((r) => node?.close(r));
    provider?.closeAllConnections();
    await new Promise((r) => provider?.close(r));
    await limiter?.close();
  });

  it('relays message_start before the provider sends the rest, then prices the whole stream', async () => {
    const res = await fetch(`${nodeUrl}/anthropic/v1/messages`, {
      method: 'POST',
      headers: { 'x-api-key': VIRTUAL_KEY, 'content-type': 'application/json', 'anthropic-beta': 'prompt-caching-2024-07-31' },
      body: JSON.stringify({ model: 'claude-haiku-4-5', max_tokens: 1000, stream: true, messages: [{ role: 'user', content: 'hi' }] }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('set-cookie')).toBeNull();
    expect(res.headers.get('request-id')).toBe('req_1');
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let received = '';
    // The provider is still holding the rest back: only a pass-through that does not buffer gets here.
    while (!received.includes('event: message_start')) received += decoder.decode((await reader.read()).value, { stream: true });
    expect(received).not.toContain('message_stop');
    expect(events).toEqual([]);
    release();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      received += decoder.decode(value, { stream: true });
    }
    expect(received).toContain('event: message_stop');

    const upstream = seen[0]!;
    expect(upstream.headers['x-api-key']).toBe(PROVIDER_KEY);
    expect(upstream.headers['anthropic-beta']).toBe('prompt-caching-2024-07-31');
    expect(JSON.stringify(upstream.headers)).not.toContain(VIRTUAL_KEY);

    const expected =
      Math.round(USAGE.input_tokens * 0.8 * 1000) + Math.round(FINAL_OUTPUT * 4 * 1000) + Math.round(USAGE.cache_creation_input_tokens * 1 * 1000) + Math.round(USAGE.cache_read_input_tokens * 0.08 * 1000);
    for (let i = 0; i < 100 && events.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      keyId: 'key_1',
      userId: 'user_1',
      kind: 'llm',
      model: 'claude-haiku-4-5',
      inputTokens: 1234,
      outputTokens: FINAL_OUTPUT,
      cacheCreationTokens: 500,
      cacheReadTokens: 10_000,
      costNanos: expected,
    });
  });

  it('refuses over budget with 402 before the provider sees the call', async () => {
    // One stream cost ~0.0052 USD: spend the 0.02 monthly budget through the same key.
    for (let i = 0; i < 10; i++) {
      const r = await fetch(`${nodeUrl}/anthropic/v1/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${VIRTUAL_KEY}` },
        body: JSON.stringify({ model: 'claude-haiku-4-5', stream: true, messages: [] }),
      });
      if (r.status === 402) {
        const body = (await r.json()) as { type: string; error: { type: string } };
        expect(body).toMatchObject({ type: 'budget_exceeded', error: { type: 'budget_exceeded' } });
        break;
      }
      const reading = r.text();
      release();
      await reading;
      for (let j = 0; j < 100 && events.length < i + 2; j++) await new Promise((res) => setTimeout(res, 5));
    }
    const calls = seen.length;
    const total = events.reduce((n, e) => n + e.costNanos, 0);
    expect(total).toBeGreaterThanOrEqual(20_000_000);
    const again = await fetch(`${nodeUrl}/anthropic/v1/messages`, { method: 'POST', headers: { authorization: `Bearer ${VIRTUAL_KEY}` }, body: JSON.stringify({ model: 'claude-haiku-4-5', messages: [] }) });
    expect(again.status).toBe(402);
    expect(seen.length).toBe(calls);
  });

  it('a caller that goes away mid-stream closes the provider request, and what it reported so far is settled', async () => {
    const caller = new AbortController();
    const before = seen.length;
    const res = await fetch(`${nodeUrl}/anthropic/v1/messages`, {
      method: 'POST',
      headers: { 'x-api-key': OTHER_KEY },
      body: JSON.stringify({ model: 'claude-haiku-4-5', max_tokens: 1000, stream: true, messages: [{ role: 'user', content: 'hi' }] }),
      signal: caller.signal,
    });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let received = '';
    while (!received.includes('event: message_start')) received += decoder.decode((await reader.read()).value, { stream: true });
    expect(seen.length).toBe(before + 1);
    // The provider is holding the rest back (never released): the caller leaves in the middle of the stream.
    caller.abort();
    for (let i = 0; i < 200 && cutOff === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(cutOff).toBe(1);
    for (let i = 0; i < 200 && !events.some((e) => e.keyId === 'key_2'); i++) await new Promise((r) => setTimeout(r, 10));
    expect(events.filter((e) => e.keyId === 'key_2')).toEqual([expect.objectContaining({ keyId: 'key_2', inputTokens: 1234, outputTokens: 1 })]);
    expect(records.filter((r) => r.keyId === 'key_2')).toEqual([expect.objectContaining({ outcome: 'upstream_error', reason: 'caller_gone', upstreamStatus: 200 })]);
  });

  it.each([
    ['between events', 'break=1'],
    ['inside an event', 'break=mid'],
  ])('a provider that breaks off mid-stream (%s): the caller\'s stream ends with an SSE error event; the record says so and what it reported is settled', async (_label, query) => {
    const ofKey2 = <T extends { keyId: string | null }>(list: T[]): T[] => list.filter((e) => e.keyId === 'key_2');
    const before = ofKey2(records).length;
    const spentBefore = ofKey2(events).length;
    const res = await fetch(`${nodeUrl}/anthropic/v1/messages?${query}`, {
      method: 'POST',
      headers: { 'x-api-key': OTHER_KEY },
      body: JSON.stringify({ model: 'claude-haiku-4-5', max_tokens: 1000, stream: true, messages: [{ role: 'user', content: 'hi' }] }),
    });
    expect(res.status).toBe(200);
    // The stream ends in order (it was cut before), as a client's SSE parser reads it.
    const text = await res.text();
    const parsed: EventSourceMessage[] = [];
    const parser = createParser({ onEvent: (e) => parsed.push(e) });
    parser.feed(text);
    expect(parsed.map((e) => e.event)).toEqual(['message_start', 'error']);
    expect(JSON.parse(parsed[1]!.data)).toEqual({ type: 'error', error: { type: 'api_error', message: 'the LLM provider "anthropic" broke off the answer' } });
    // Half an event is not glued to the error event.
    expect(text).not.toContain('"text":"hal');
    expect(text).not.toContain(PROVIDER_KEY);
    for (let i = 0; i < 200 && ofKey2(records).length === before; i++) await new Promise((r) => setTimeout(r, 10));
    expect(ofKey2(records).slice(before)).toEqual([expect.objectContaining({ outcome: 'upstream_error', reason: 'answer_broken', upstreamStatus: 200 })]);
    for (let i = 0; i < 200 && ofKey2(events).length === spentBefore; i++) await new Promise((r) => setTimeout(r, 10));
    expect(ofKey2(events).slice(spentBefore)).toEqual([expect.objectContaining({ inputTokens: 1234, outputTokens: 1 })]);
  });

  it('a budgeted call the caller leaves mid-stream is charged what was streamed, and the rest of its reservation is given back', async () => {
    const ofKey3 = (): SpendEvent[] => events.filter((e) => e.keyId === 'key_3');
    const streamed = Math.round(USAGE.input_tokens * 0.8 * 1000) + Math.round(1 * 4 * 1000) + Math.round(USAGE.cache_creation_input_tokens * 1 * 1000) + Math.round(USAGE.cache_read_input_tokens * 0.08 * 1000);
    let admitted = 0;
    for (let i = 0; i < 10; i++) {
      const caller = new AbortController();
      const res = await fetch(`${nodeUrl}/anthropic/v1/messages`, {
        method: 'POST',
        headers: { 'x-api-key': SMALL_BUDGET_KEY },
        body: JSON.stringify({ model: 'claude-haiku-4-5', max_tokens: 1000, stream: true, messages: [{ role: 'user', content: 'hi' }] }),
        signal: caller.signal,
      });
      if (res.status === 402) break;
      expect(res.status).toBe(200);
      admitted++;
      const reader = res.body!.getReader();
      let received = '';
      while (!received.includes('event: message_start')) received += new TextDecoder().decode((await reader.read()).value);
      caller.abort();
      for (let j = 0; j < 200 && ofKey3().length < admitted; j++) await new Promise((r) => setTimeout(r, 10));
    }
    // Each left after message_start (input and cache tokens, one output token): ~$0.0023 of a ~$0.0061 bound.
    // Had the bound stayed reserved, the $0.005 budget would have refused the second call; given back, the
    // real spend reaches it at the third.
    expect(admitted).toBe(Math.ceil(5_000_000 / streamed));
    expect(admitted).toBe(3);
    expect(ofKey3().map((e) => e.costNanos)).toEqual([streamed, streamed, streamed]);
  });
});
