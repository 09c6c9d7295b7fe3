/**
 * The audit `RecordSink`: turns each pipeline `RequestRecord` (answered, refused at any stage, denied,
 * failed upstream) into an audit event in the outbox. It runs after the answer is sent and only queues
 * (the outbox writes in batches, the shipper sends in the background), so it never delays a caller.
 *
 * A refused key appears by the prefix of its hash (`keyHashPrefix`), never by value; arguments are kept
 * only while content logging is on for that key and server (`contentLogging`), after the `redact` hook
 * (the guardrail) has had them. It does not decide what the pipeline records.
 */
import type { RequestRecord } from '../pipeline/context.js';
import type { RecordSink } from '../pipeline/record.js';
import type { GuardrailFinding } from '../snapshot/audit-protocol.js';
import type { AuditRecorder } from './recorder.js';

const ROUTE_PATHS: Record<RequestRecord['route'], string> = { mcp: '/mcp', mcp_server: '/mcp/{server}', anthropic: '/anthropic' };

export interface AuditSinkOptions {
  recorder: AuditRecorder;
  /** Whether arguments/results may be stored for this key and server (default: yes). */
  contentLogging?: (keyId: string | null, server: string | null) => boolean;
  /**
   * Redacts secrets from content before it is stored, saying what was found (the guardrail's scanner).
   * Called unless `alreadyRedacted` says the request path did it (a `redact` policy) for this key and server.
   */
  redact?: (value: unknown, where: string) => { value: unknown; findings: GuardrailFinding[] };
  alreadyRedacted?: (keyId: string | null, server: string | null) => boolean;
}

/** `value` as the event stores it, redacted by `redact`, its findings added to `findings` (kind and path once). */
function stored(value: unknown, where: string, redact: NonNullable<AuditSinkOptions['redact']>, findings: GuardrailFinding[]): unknown {
  const redacted = redact(value, where);
  for (const f of redacted.findings) if (!findings.some((g) => g.kind === f.kind && g.where === f.where)) findings.push(f);
  return redacted.value;
}

/** What went back, as JSON (its size is kept even when content is not); undefined if it has none. */
function toJson(value: unknown): string | undefined {
  try {
    return JSON.stringify(value);
  } catch {
    return undefined;
  }
}

export function createAuditSink(options: AuditSinkOptions): RecordSink {
  const { recorder } = options;
  return {
    record(record) {
      const content = options.contentLogging?.(record.keyId, record.server) ?? true;
      const findings: GuardrailFinding[] = record.guardrail ? [...record.guardrail] : [];
      const redact = options.redact && !options.alreadyRedacted?.(record.keyId, record.server) ? options.redact : null;
      const args = content && record.arguments !== undefined ? (redact ? stored(record.arguments, 'arguments', redact, findings) : record.arguments) : undefined;
      const resultJson = record.result !== undefined ? toJson(record.result) : undefined;
      // A result that is not JSON (it never reaches a caller as such) is left out rather than losing the event.
      let result = content && resultJson !== undefined ? (redact ? stored(record.result, 'result', redact, findings) : record.result) : undefined;
      // Stored as it went back (nothing redacted): the JSON just made is spliced into the event, not made again.
      const storedJson = result !== undefined && result === record.result ? resultJson : undefined;
      if (storedJson !== undefined) result = undefined;
      const usage = record.usage;
      // One object literal, every field always present (one shape for every event): the recorder stamps it
      // and the outbox serialises it. What does not apply is undefined, not null, so JSON leaves it out
      // (the protocol's optional members): ~80 bytes fewer per event to write, ship, parse and store.
      recorder.record(record.at, {
        id: undefined,
        time: undefined,
        node: undefined,
        route: ROUTE_PATHS[record.route],
        requestId: String(record.requestId),
        traceId: record.traceId,
        keyId: record.keyId,
        keyHashPrefix: record.keyHashPrefix ?? undefined,
        userId: record.userId,
        method: record.method ?? 'http',
        server: record.server,
        tool: record.tool,
        arguments: args,
        result,
        outcome: record.outcome,
        denyReason: record.error ? (record.reason ? `${record.error}: ${record.reason}` : record.error) : (record.reason ?? undefined),
        upstreamStatus: record.upstreamStatus,
        latencyMs: Math.round(record.latencyMs * 1000) / 1000,
        resultBytes: resultJson?.length,
        tokens:
          usage && (usage.inputTokens !== undefined || usage.outputTokens !== undefined)
            ? {
                input: usage.inputTokens ?? 0,
                output: usage.outputTokens ?? 0,
                ...(usage.cacheReadTokens !== undefined ? { cacheRead: usage.cacheReadTokens } : {}),
                ...(usage.cacheWriteTokens !== undefined ? { cacheWrite: usage.cacheWriteTokens } : {}),
              }
            : undefined,
        costUsd: usage?.costUsd ?? undefined,
        guardrail: findings.length > 0 ? findings : undefined,
      }, storedJson);
    },
  };
}
