/**
 * The secrets guardrail's detection on real-looking samples of each kind it promises (cloud keys,
 * GitHub/Slack/Anthropic/OpenAI tokens, private keys, JWTs, Gatehouse's own gk_/gha_ tokens, high-entropy
 * values in key-like fields) and look-alikes that must not trigger; redaction replaces just the secret;
 * findings name kind and path, never the value; and the cost stays bounded on large inputs.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { defaultRules, translateGoRegex } from '../../../data-plane/guardrail/rules.js';
import { scanValue, SecretScanner, shannonEntropy } from '../../../data-plane/guardrail/scanner.js';

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
/** Random characters from `alphabet` (samples are built at run time, so no credential-shaped literal is committed). */
const rand = (n: number, alphabet = ALNUM): string => Array.from(randomBytes(n), (b) => alphabet[b % alphabet.length]).join('');

export const SAMPLES: Record<string, string> = {
  'aws-access-token': `AKIA${rand(16, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567')}`,
  'github-pat': `ghp_${rand(36)}`,
  'github-fine-grained-pat': `github_pat_${rand(82)}`,
  'github-oauth': `gho_${rand(36)}`,
  'slack-bot-token': `xoxb-${rand(12, '0123456789')}-${rand(13, '0123456789')}-${rand(24)}`,
  'slack-webhook-url': `https://hooks.slack.com/services/${rand(44)}`,
  'anthropic-api-key': `sk-ant-api03-${rand(93)}AA`,
  'openai-api-key': `sk-proj-${rand(74)}T3BlbkFJ${rand(74)}`,
  'gcp-api-key': `AIza${rand(35)}`,
  'stripe-access-token': `sk_live_${rand(24)}`,
  'private-key': `-----BEGIN RSA PRIVATE KEY-----\n${rand(64)}\n${rand(64)}\n-----END RSA PRIVATE KEY-----`,
  jwt: `eyJ${rand(30)}.eyJ${rand(40)}.${rand(43)}`,
  'gatehouse-virtual-key': `gk_${rand(43)}`,
  'gatehouse-admin-token': `gha_${rand(43)}`,
};

const LOOK_ALIKES = [
  'AKIAIOSFODNN7EXAMPLE',
  `ghp_${'a'.repeat(36)}`,
  'ghp_tooShort123',
  'sk-ant-api03-notakey',
  'the key to success is monkey business, they say',
  'commit 3f786850e387550fdab836ed7e6dc881de23001b fixed it',
  'request 5b6f0c2e-8a3d-4c1e-9f7a-2d4b6e8c0a1f finished',
  '-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----',
  'gk_short',
  'https://hooks.slack.com/services/',
];

describe('secret scanner', () => {
  const scanner = new SecretScanner();

  it('loads the gitleaks rules (translated from RE2) and Gatehouse\'s own', () => {
    const ids = defaultRules().rules.map((r) => r.id);
    for (const kind of Object.keys(SAMPLES)) expect(ids).toContain(kind);
    expect(translateGoRegex('\\b(LTAI(?i)[a-z0-9]{20})\\z')).toEqual({ source: '\\b(LTAI[a-z0-9]{20})$', ignoreCase: true });
    expect(translateGoRegex('(?-i:[Aa]pi)(?P<x>a)')).toEqual({ source: '(?:[Aa]pi)(?<x>a)', ignoreCase: false });
  });

  for (const [kind, sample] of Object.entries(SAMPLES)) {
    it(`finds and redacts ${kind}`, () => {
      const text = `config: ${sample}\nthanks`;
      const { value, findings } = scanValue(scanner, { note: text }, 'arguments');
      expect(findings.map((f) => f.kind)).toContain(kind);
      expect(findings[0]!.where).toBe('arguments.note');
      expect(JSON.stringify(findings)).not.toContain(sample);
      const redacted = (value as { note: string }).note;
      expect(redacted).not.toContain(sample.replace(/^-----BEGIN RSA PRIVATE KEY-----\n/, '').slice(0, 40));
      expect(redacted).toMatch(/^config: .*\[REDACTED:[a-z0-9-]+\]/s);
      expect(redacted.endsWith('thanks')).toBe(true);
    });
  }

  it('leaves look-alikes alone', () => {
    for (const text of LOOK_ALIKES) {
      const { value, findings } = scanValue(scanner, { text }, 'result');
      expect({ text, findings }).toEqual({ text, findings: [] });
      expect(value).toEqual({ text });
    }
  });

  it('flags high-entropy values in key-like fields only', () => {
    const secret = rand(32);
    const { value, findings } = scanValue(
      scanner,
      { client_secret: secret, apiKey: `Bearer ${rand(40)}`, token_count: 1234, password: 'hunter2', api_key_name: 'production-east', sessionId: rand(32), nested: [{ accessToken: rand(24) }] },
      'arguments',
    );
    expect(findings).toEqual([
      { kind: 'high-entropy-secret', where: 'arguments.client_secret' },
      { kind: 'high-entropy-secret', where: 'arguments.apiKey' },
      { kind: 'high-entropy-secret', where: 'arguments.nested[0].accessToken' },
    ]);
    expect(value).toMatchObject({ client_secret: '[REDACTED:high-entropy-secret]', apiKey: 'Bearer [REDACTED:high-entropy-secret]', password: 'hunter2', api_key_name: 'production-east' });
  });

  it('finds every occurrence, the same on every scan (the rules\' regexes are shared between scans)', () => {
    const a = SAMPLES['github-pat']!;
    const b = SAMPLES['gatehouse-virtual-key']!;
    const value = { text: `first ${a} then ${b} and ${a}`, list: ['clean', `x ${b}`] };
    for (let i = 0; i < 3; i++) {
      const { value: out, findings } = scanValue(scanner, value, 'result');
      expect(findings).toEqual([
        { kind: 'github-pat', where: 'result.text' },
        { kind: 'gatehouse-virtual-key', where: 'result.text' },
        { kind: 'gatehouse-virtual-key', where: 'result.list[1]' },
      ]);
      expect(out).toEqual({ text: 'first [REDACTED:github-pat] then [REDACTED:gatehouse-virtual-key] and [REDACTED:github-pat]', list: ['clean', 'x [REDACTED:gatehouse-virtual-key]'] });
    }
  });

  it('returns the same object when nothing is found (no copying on the clean path)', () => {
    const clean = { a: ['x', { b: 'y' }], n: 1 };
    expect(scanValue(scanner, clean, 'arguments').value).toBe(clean);
  });

  it('bounds its cost on large inputs and still finds a secret across a window boundary', () => {
    const secret = SAMPLES['github-pat']!;
    const filler = 'lorem ipsum dolor sit amet, key they monkey '.repeat(1500); // ~66 KB: the secret straddles the first window's end
    const big = filler.slice(0, 65_530) + secret + filler;
    // The bound is on bytes scanned (asserted by the scan-limit finding), not on wall time: this box is shared.
    const found = scanValue(scanner, { text: big }, 'result');
    expect(found.findings).toEqual([{ kind: 'github-pat', where: 'result.text' }]);
    const huge = 'x '.repeat(4 * 1024 * 1024);
    const limited = scanValue(scanner, { text: huge }, 'result', { maxScanBytes: 1024 * 1024 });
    expect(limited.findings).toEqual([{ kind: 'scan-limit', where: 'result' }]);
  });

  it('computes Shannon entropy', () => {
    expect(shannonEntropy('aaaa')).toBe(0);
    expect(shannonEntropy('abcd')).toBe(2);
  });
});
