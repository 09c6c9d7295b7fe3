/**
 * The node's millisecond settings from its environment (GATEHOUSE_*_MS), all read by one rule: unset or
 * blank is the default; a finite number of 0 or more (whitespace around it ignored) is that many
 * milliseconds; anything else refuses the start with `InvalidSettingError` naming the variable (main.ts
 * prints it as a usage error), rather than running on the default the operator did not mean. Before, each
 * setting was read its own way: `GATEHOUSE_DRAIN_MS=abc` was the default, a negative probe interval turned
 * probing off, and a blank linger with spaces was NaN.
 *
 * It does not decide what a setting does; a default that belongs to the component using the setting
 * (the pool's probe interval, the shipper's linger) stays there: the setting is then `undefined`.
 */

/** A millisecond setting that is not a number of 0 or more: the node does not start. */
export class InvalidSettingError extends Error {
  /** The environment variable at fault. */
  readonly variable: string;

  constructor(variable: string, value: string, min = 0) {
    // The value is echoed (bounded, quoted): a number of milliseconds is no secret, and seeing it helps.
    super(`${variable} must be a number of milliseconds, ${min} or more (got ${JSON.stringify(value.slice(0, 40))})`);
    this.name = 'InvalidSettingError';
    this.variable = variable;
  }
}

/**
 * `env[name]` as milliseconds by the rule above; `fallback` when unset or blank. `min` (default 0) is for a
 * setting that 0 would break (an interval: `setInterval` makes 0 every millisecond).
 */
export function msFromEnv(env: Record<string, string | undefined>, name: string, fallback: number, min?: number): number;
export function msFromEnv(env: Record<string, string | undefined>, name: string, fallback?: undefined, min?: number): number | undefined;
export function msFromEnv(env: Record<string, string | undefined>, name: string, fallback?: number, min = 0): number | undefined {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < min) throw new InvalidSettingError(name, raw, min);
  return value;
}

export interface NodeMsSettings {
  /** GATEHOUSE_DRAIN_MS: how long a stopping node lets requests in flight finish (default 10 s). */
  drainMs: number;
  /** GATEHOUSE_UPSTREAM_PROBE_MS: idle upstreams' probe interval (0: off); unset: the pool's default. */
  upstreamProbeMs: number | undefined;
  /** GATEHOUSE_AUDIT_LINGER_MS: how long an audit batch waits to fill; unset: the shipper's default. */
  auditLingerMs: number | undefined;
}

/**
 * Every millisecond setting of a node, read at once: `startNode` reads them before it takes anything,
 * and main.ts before it forks workers (a worker refused would be restarted for ever).
 */
export function nodeMsSettings(env: Record<string, string | undefined>): NodeMsSettings {
  return {
    // A rolling deploy's tool calls finish on the node that took them.
    drainMs: msFromEnv(env, 'GATEHOUSE_DRAIN_MS', 10_000),
    upstreamProbeMs: msFromEnv(env, 'GATEHOUSE_UPSTREAM_PROBE_MS'),
    auditLingerMs: msFromEnv(env, 'GATEHOUSE_AUDIT_LINGER_MS'),
  };
}
