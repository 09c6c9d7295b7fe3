/** Collects pino's JSON lines in memory so a test can search every log line a component wrote. */
import type { DestinationStream } from 'pino';

export class LogCapture implements DestinationStream {
  readonly lines: string[] = [];

  write(line: string): void {
    for (const l of line.split('\n')) if (l.trim()) this.lines.push(l);
  }

  text(): string {
    return this.lines.join('\n');
  }

  has(pattern: RegExp): boolean {
    return this.lines.some((l) => pattern.test(l));
  }
}
