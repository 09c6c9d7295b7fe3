/**
 * Developer tool (not part of `npm run bench`): node CPU per audit event on the request path's side, in
 * process: the guardrail (redact) on arguments and result, the audit sink, the recorder and the outbox
 * (on disk, in a temp dir), for the bench's tools/call, split by step. Steadier than a load test on a
 * shared box, since it counts only this process's CPU.
 *
 * Usage: node --import tsx bench/dev/audit-record.ts [events=200000]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditOutbox } from '../../data-plane/audit/outbox.js';
import { createAuditRecorder } from '../../data-plane/audit/recorder.js';
import { createAuditSink } from '../../data-plane/audit/sink.js';
import { AuditSettingsIndex, createContentGuard } from '../../data-plane/guardrail/policy.js';
import { SecretScanner, scanValue } from '../../data-plane/guardrail/scanner.js';
import { createLogger } from '../../data-plane/log.js';
import type { RequestRecord } from '../../data-plane/pipeline/context.js';

const total = Number(process.argv[2] ?? 200_000);
const dir = mkdtempSync(join(tmpdir(), 'gh-audit-record-'));
const logger = createLogger('bench', { level: 'warn' });
const outbox = new AuditOutbox({ dir, logger });
const recorder = createAuditRecorder(outbox, 'bench-node');
const settings = new AuditSettingsIndex([{ scope: 'server', target: 'bench', contentLogging: true, guardrail: 'redact' }], 'off');
const scanner = new SecretScanner();
const guard = createContentGuard(() => settings, scanner);
const sink = createAuditSink({
  recorder,
  contentLogging: (keyId, server) => settings.contentLogging(keyId, server),
  redact: (value, where) => scanValue(scanner, value, where),
  alreadyRedacted: (keyId, server) => settings.policy(keyId, server) === 'redact',
});

const record = (i: number): RequestRecord => ({
  route: 'mcp',
  requestId: i,
  at: Date.now(),
  latencyMs: 1.2345,
  keyId: 'key_0123456789abcdef',
  keyHashPrefix: null,
  userId: 'user_0123456789',
  method: 'tools/call',
  server: 'bench',
  tool: 'echo',
  arguments: { text: 'hello' },
  outcome: 'ok',
  error: null,
  reason: null,
  credentialIdentity: 'shared',
  usage: null,
  upstreamStatus: 200,
  result: { content: [{ type: 'text', text: 'ok' }] },
  guardrail: undefined,
  traceId: '0af7651916cd43dd8448eb211c80319c',
  trace: undefined,
  upstreamSpanId: undefined,
  stages: undefined,
});

const cpu = (): number => {
  const u = process.cpuUsage();
  return u.user + u.system;
};
async function step(label: string, fn: (i: number) => void): Promise<void> {
  for (let i = 0; i < 20_000; i++) fn(i);
  await outbox.flush();
  const c0 = cpu();
  for (let i = 0; i < total; i++) {
    fn(i);
    // Let the outbox's timers and writes run as they would between requests.
    if (i % 100 === 99) await new Promise<void>((resolve) => setImmediate(resolve));
  }
  await outbox.flush();
  console.log(`${label.padEnd(40)} ${((cpu() - c0) / total).toFixed(2)} µs/event`);
}

await step('guardrail: arguments + result', () => {
  guard.request('key_0123456789abcdef', 'bench', { text: 'hello' }, 'arguments');
  guard.response('key_0123456789abcdef', 'bench', { content: [{ type: 'text', text: 'ok' }] }, 'result');
});
await step('record objects only (baseline)', (i) => void record(i));
await step('sink → recorder → outbox (disk)', (i) => sink.record(record(i)));
await outbox.close();
rmSync(dir, { recursive: true, force: true });
