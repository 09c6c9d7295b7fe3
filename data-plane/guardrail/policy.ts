/**
 * What the node does about content, per key and per server, from the snapshot's `auditSettings`: whether
 * arguments/results go into the audit trail (off when either the key or the server says so) and the
 * guardrail policy (the stricter of the key's and the server's: block > redact > off; `defaultPolicy` for
 * neither). `ContentGuard` applies the policy on the request path: redact returns the redacted value,
 * block returns a `secret_detected` refusal naming the kinds and where, never a value.
 *
 * It does not find secrets (scanner.ts does) or record anything (the audit sink does).
 */
import { GatewayError, GuardrailMessage } from '../errors.js';
import type { GuardrailFinding } from '../snapshot/audit-protocol.js';
import type { AuditSettingEntry, GuardrailPolicy } from '../snapshot/schema.js';
import { scanValue, SCAN_LIMIT_KIND, SecretScanner, type ScanOptions } from './scanner.js';

const STRICTNESS: Record<GuardrailPolicy, number> = { off: 0, redact: 1, block: 2 };

export class AuditSettingsIndex {
  private readonly keys = new Map<string, AuditSettingEntry>();
  private readonly servers = new Map<string, AuditSettingEntry>();

  constructor(
    entries: readonly AuditSettingEntry[] = [],
    readonly defaultPolicy: GuardrailPolicy = 'off',
  ) {
    for (const e of entries) (e.scope === 'key' ? this.keys : this.servers).set(e.target, e);
  }

  contentLogging(keyId: string | null, server: string | null): boolean {
    return (keyId === null || this.keys.get(keyId)?.contentLogging !== false) && (server === null || this.servers.get(server)?.contentLogging !== false);
  }

  policy(keyId: string | null, server: string | null): GuardrailPolicy {
    let policy = this.defaultPolicy;
    for (const p of [keyId === null ? undefined : this.keys.get(keyId)?.guardrail, server === null ? undefined : this.servers.get(server)?.guardrail]) {
      if (p !== undefined && STRICTNESS[p] > STRICTNESS[policy]) policy = p;
    }
    return policy;
  }
}

/** The value to use (redacted where the policy says so) and what was found; `error` when the policy blocks it. */
export interface GuardOutcome {
  value: unknown;
  findings: GuardrailFinding[];
  error?: GatewayError;
}

export interface ContentGuard {
  /** The policy for this key and server (routes that guard streams apply it themselves, see llm.ts). */
  policy(keyId: string | null, server: string | null): GuardrailPolicy;
  readonly scanner: SecretScanner;
  /** Tool arguments / an LLM request, before they go upstream. */
  request(keyId: string | null, server: string | null, value: unknown, where: string): GuardOutcome;
  /** A tool result / an LLM response, before it goes back to the caller. */
  response(keyId: string | null, server: string | null, value: unknown, where: string): GuardOutcome;
  /**
   * Whether any policy but `off` applies to this key and server: a route that streams answers through
   * unread (`/mcp/{server}`) reads them only when this is true. Absent: assume it applies.
   */
  active?(keyId: string | null, server: string | null): boolean;
}

export function createContentGuard(settings: () => AuditSettingsIndex, scanner = new SecretScanner(), options: ScanOptions = {}): ContentGuard {
  const apply = (direction: 'request' | 'response', keyId: string | null, server: string | null, value: unknown, where: string): GuardOutcome => {
    const policy = settings().policy(keyId, server);
    if (policy === 'off' || value === undefined) return { value, findings: [] };
    const scanned = scanValue(scanner, value, where, options);
    const secrets = scanned.findings.filter((f) => f.kind !== SCAN_LIMIT_KIND);
    if (policy === 'block' && secrets.length > 0) {
      const kinds = [...new Set(secrets.map((f) => f.kind))];
      const error = new GatewayError('secret_detected', {
        message: GuardrailMessage.blocked(direction, kinds, secrets[0]!.where),
        data: { type: 'secret_detected', kinds, where: secrets.map((f) => f.where).slice(0, 20) },
        reason: `${direction}: ${kinds.join(',')}`,
      });
      return { value, findings: scanned.findings, error };
    }
    return scanned;
  };
  return {
    policy: (keyId, server) => settings().policy(keyId, server),
    scanner,
    request: (keyId, server, value, where) => apply('request', keyId, server, value, where),
    response: (keyId, server, value, where) => apply('response', keyId, server, value, where),
    active: (keyId, server) => settings().policy(keyId, server) !== 'off',
  };
}
