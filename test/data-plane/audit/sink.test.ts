/**
 * The audit sink turns a pipeline record into the event the outbox stores: the result as it went back
 * (spliced in as the JSON the sink measured, or the guardrail's redacted copy), its size even when content
 * logging is off, and nothing for a result that is not JSON. The stored line must parse as the protocol's
 * event whichever way the result got into it.
 */
import { describe, expect, it } from 'vitest';
import { AuditOutbox, batchLines } from '../../../data-plane/audit/outbox.js';
import { createAuditRecorder } from '../../../data-plane/audit/recorder.js';
import { createAuditSink } from '../../../data-plane/audit/sink.js';
import { SecretScanner, scanValue } from '../../../data-plane/guardrail/scanner.js';
import { createLogger } from '../../../data-plane/log.js';
import type { RequestRecord } from '../../../data-plane/pipeline/context.js';
import { AuditEventSchema, type AuditEvent } from '../../../data-plane/snapshot/audit-protocol.js';
import { LogCapture } from '../../support/log-capture.js';

const base = (over: Partial<RequestRecord>): RequestRecord => ({
  route: 'mcp',
  requestId: 7,
  at: Date.UTC(2026, 11, 1),
  latencyMs: 1.5,
  keyId: 'key-1',
  keyHashPrefix: null,
  userId: 'user-1',
  method: 'tools/call',
  server: 'docs',
  tool: 'search',
  arguments: { q: 'x' },
  outcome: 'ok',
  error: null,
  reason: null,
  credentialIdentity: 'shared',
  usage: null,
  upstreamStatus: 200,
  result: undefined,
  guardrail: undefined,
  traceId: undefined,
  trace: undefined,
  upstreamSpanId: undefined,
  stages: undefined,
  ...over,
});

async function events(records: RequestRecord[], contentLogging = true, maxEventBytes?: number): Promise<{ events: AuditEvent[]; lines: string[]; dropped: number }> {
  const outbox = new AuditOutbox({ dir: null, logger: createLogger('sink-test', { destination: new LogCapture() }), ...(maxEventBytes ? { maxEventBytes } : {}) });
  const scanner = new SecretScanner();
  const sink = createAuditSink({
    recorder: createAuditRecorder(outbox, 'node-1'),
    contentLogging: () => contentLogging,
    redact: (value, where) => scanValue(scanner, value, where),
    alreadyRedacted: () => false,
  });
  for (const record of records) sink.record(record);
  await outbox.flush();
  const batch = await outbox.nextBatch(100, 1 << 24);
  const lines = batch ? batchLines(batch) : [];
  const dropped = outbox.snapshot().dropped;
  await outbox.close();
  return { events: lines.map((line) => AuditEventSchema.parse(JSON.parse(line))), lines, dropped };
}

describe('audit sink', () => {
  const result = { content: [{ type: 'text', text: 'héllo "quoted" \n line ✓ 🚀' }], structuredContent: { n: 1, nested: [null, true, 2.5] } };

  it('stores the result as it went back, with its size', async () => {
    const { events: [event], lines } = await events([base({ result })]);
    expect(event!.result).toEqual(result);
    expect(event!.resultBytes).toBe(JSON.stringify(result).length);
    expect(event!.arguments).toEqual({ q: 'x' });
    // One result member, in a line that is one JSON text; members that do not apply are left out, not null.
    expect(lines[0]!.match(/"result":/g)).toHaveLength(1);
    expect(lines[0]).not.toMatch(/"(keyHashPrefix|traceId|denyReason|tokens|costUsd|guardrail)":/);
  });

  it('stores the redacted copy when the result holds a secret, and says what was found', async () => {
    const token = `ghp_${'A1b2C3d4E5'.repeat(3)}abcdef`;
    const leaky = { content: [{ type: 'text', text: `your token is ${token}` }] };
    const { events: [event], lines } = await events([base({ result: leaky })]);
    expect(lines[0]).not.toContain(token);
    expect(JSON.stringify(event!.result)).toContain('[REDACTED:');
    expect(event!.resultBytes).toBe(JSON.stringify(leaky).length);
    expect(event!.guardrail?.some((f) => f.where.startsWith('result'))).toBe(true);
  });

  it('keeps the size but not the content when content logging is off', async () => {
    const { events: [event] } = await events([base({ result })], false);
    expect(event!.result).toBeUndefined();
    expect(event!.arguments).toBeUndefined();
    expect(event!.resultBytes).toBe(JSON.stringify(result).length);
  });

  it('records a result that is not JSON without it, and a huge one as truncated', async () => {
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    const huge = { content: [{ type: 'text', text: 'x'.repeat(300_000) }] };
    const { events: out, dropped } = await events([base({ result: circular, requestId: 1 }), base({ result: huge, requestId: 2 })], true, 256 * 1024);
    expect(dropped).toBe(0);
    expect(out.map((e) => e.requestId)).toEqual(['1', '2']);
    expect(out[0]!.result).toBeUndefined();
    expect(out[0]!.resultBytes).toBeUndefined();
    expect(out[1]!.result).toEqual({ truncated: true, bytes: expect.any(Number) });
    expect(out[1]!.arguments).toBeUndefined();
  });
});
