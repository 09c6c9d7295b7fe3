/**
 * The streamed-answer guardrail on its own: secrets split across many `text_delta`s (a private key over
 * dozens of small deltas, a token cut in half) are redacted whole; clean text passes unchanged and in
 * order; block ends the stream with an SSE error event and sends nothing of the secret.
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { SseSecretGuard } from '../../../data-plane/guardrail/llm.js';
import { SecretScanner } from '../../../data-plane/guardrail/scanner.js';

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const rand = (n: number): string => Array.from(randomBytes(n), (b) => ALNUM[b % ALNUM.length]).join('');

function sse(texts: string[]): string {
  const ev = (event: string, data: object) => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
  return (
    ev('message_start', { type: 'message_start', message: { id: 'm', usage: { input_tokens: 1, output_tokens: 1 } } }) +
    ev('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }) +
    texts.map((text) => ev('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text } })).join('') +
    ev('content_block_stop', { type: 'content_block_stop', index: 0 }) +
    ev('message_stop', { type: 'message_stop' })
  );
}

async function run(input: string, policy: 'redact' | 'block', chunk = 7): Promise<{ raw: string; text: string; guard: SseSecretGuard }> {
  const guard = new SseSecretGuard(new SecretScanner(), policy);
  const pieces: Buffer[] = [];
  for (let i = 0; i < input.length; i += chunk) pieces.push(Buffer.from(input.slice(i, i + chunk)));
  const out: string[] = [];
  await new Promise<void>((resolve, reject) => {
    Readable.from(pieces).pipe(guard).on('data', (c: Buffer | string) => out.push(String(c))).on('end', resolve).on('error', reject);
  });
  const raw = out.join('');
  const text = raw
    .split('\n')
    .filter((l) => l.startsWith('data: '))
    .map((l) => JSON.parse(l.slice(6)) as { type: string; delta?: { text?: string } })
    .filter((d) => d.type === 'content_block_delta')
    .map((d) => d.delta?.text ?? '')
    .join('');
  return { raw, text, guard };
}

const split = (s: string, n: number): string[] => Array.from({ length: Math.ceil(s.length / n) }, (_, i) => s.slice(i * n, i * n + n));

describe('SseSecretGuard', () => {
  it('redacts a private key spread over many small deltas, keeping the text around it in order', async () => {
    const pem = `-----BEGIN OPENSSH PRIVATE KEY-----\n${split(rand(600), 70).join('\n')}\n-----END OPENSSH PRIVATE KEY-----`;
    const prose = 'Here is the key you asked for:\n';
    const { text, raw, guard } = await run(sse(split(`${prose}${pem}\nDone. ${'more text '.repeat(60)}`, 9)), 'redact');
    expect(text).toBe(`${prose}[REDACTED:private-key]\nDone. ${'more text '.repeat(60)}`);
    expect(raw).not.toContain(pem.slice(40, 80));
    expect(guard.findings).toEqual([{ kind: 'private-key', where: 'response.content[0].text' }]);
    expect(raw).toContain('event: message_stop');
  });

  it('redacts a token cut in half between deltas and passes clean streams unchanged', async () => {
    const token = `ghp_${rand(36)}`;
    const { text } = await run(sse([`${'a '.repeat(200)}token: ${token.slice(0, 10)}`, `${token.slice(10)} end`]), 'redact');
    expect(text).toBe(`${'a '.repeat(200)}token: [REDACTED:github-pat] end`);
    const clean = split('Nothing secret here, just a long answer. '.repeat(30), 13);
    expect((await run(sse(clean), 'redact')).text).toBe(clean.join(''));
  });

  it('holds back a token longer than the fixed holdback until it ends: a long JWT leaks no part of itself', async () => {
    // ~800 characters: three times the fixed 256-character holdback, so only holding the growing token helps.
    const jwt = `eyJ${rand(60)}.eyJ${rand(650)}.${rand(86)}`;
    const prose = 'Your session token is ';
    const { text, raw, guard } = await run(sse(split(`${prose}${jwt} and it expires soon. ${'more text '.repeat(40)}`, 20)), 'redact');
    expect(text).toBe(`${prose}[REDACTED:jwt] and it expires soon. ${'more text '.repeat(40)}`);
    for (let i = 0; i + 24 <= jwt.length; i += 24) expect(raw).not.toContain(jwt.slice(i, i + 24));
    expect(guard.findings).toEqual([{ kind: 'jwt', where: 'response.content[0].text' }]);
  });

  it('block: ends the stream with a secret_detected error event and none of the secret', async () => {
    const token = `xoxb-${'1'.repeat(12)}-${'2'.repeat(13)}-${rand(24)}`;
    const { raw, guard } = await run(sse(split(`${'lead-in text '.repeat(40)}${token} trailing`, 11)), 'block');
    expect(raw).toContain('event: error');
    expect(raw).toContain('secret_detected');
    expect(raw).not.toContain(token.slice(-24));
    expect(raw).not.toContain('message_stop');
    expect(guard.findings.map((f) => f.kind)).toEqual(['slack-bot-token']);
  });
});
