/**
 * Structured JSON logs for the data plane (pino), with credentials redacted by path.
 *
 * Redaction is the safety net, not the policy: code on the request path logs ids (key id, user id, server
 * name), never a key value, a header value or a resolved secret. Any object logged under a `headers` field
 * has every value replaced, as do fields named like credentials.
 */
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

export const REDACTED = '[redacted]';

/** Paths pino censors (fast-redact syntax). `*` matches one level, so nested header bags are covered explicitly. */
export const REDACT_PATHS: readonly string[] = [
  'headers.*',
  '*.headers.*',
  '*.*.headers.*',
  'authorization',
  '*.authorization',
  '["x-api-key"]',
  '*["x-api-key"]',
  'cookie',
  '*.cookie',
  'token',
  '*.token',
  'secret',
  '*.secret',
  'password',
  '*.password',
  'env',
  '*.env',
];

export interface LoggerOptions {
  level?: string;
  /** Where lines go (stdout by default); tests pass a stream to read them back. */
  destination?: DestinationStream;
  base?: Record<string, unknown>;
}

export function createLogger(name: string, options: LoggerOptions = {}): Logger {
  const config = {
    name,
    level: options.level ?? process.env.LOG_LEVEL ?? 'info',
    ...(options.base ? { base: options.base } : {}),
    redact: { paths: [...REDACT_PATHS], censor: REDACTED },
  };
  return options.destination ? pino(config, options.destination) : pino(config);
}
