/**
 * Structured JSON logs for the control plane (pino). Credentials are redacted by path; code must still
 * never pass a secret value as a log field or inside a message.
 */
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

export interface LoggerOptions {
  level?: string;
  /** Where lines go (stdout by default); tests pass a stream to collect and search them. */
  destination?: DestinationStream;
}

export function createLogger(name: string, options: LoggerOptions = {}): Logger {
  return pino(
    {
      name,
      level: options.level ?? process.env.LOG_LEVEL ?? 'info',
      redact: {
        paths: ['req.headers.authorization', 'req.headers["x-api-key"]', 'req.headers.cookie', 'headers.authorization'],
        censor: '[redacted]',
      },
    },
    options.destination ?? pino.destination(1),
  );
}
