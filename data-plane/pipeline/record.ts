/**
 * The record stage's hook: every `RequestRecord` (answered, refused, denied, failed) goes to every
 * `RecordSink` after the answer has been handed to the socket. A sink must not block (queue and ship in
 * the background, e.g. the audit shipper in `data-plane/audit/`) and should not throw; one that throws is
 * logged and the others still run, and the caller's answer is never affected.
 */
import type { Logger } from '../log.js';
import type { RequestRecord } from './context.js';

export interface RecordSink {
  record(record: RequestRecord): void;
}

/** Delivers records to each sink in turn, isolating the sinks from the request and from each other. */
export function deliverRecords(sinks: readonly RecordSink[], records: readonly RequestRecord[], logger: Logger): void {
  for (const record of records) {
    for (const sink of sinks) {
      try {
        sink.record(record);
      } catch (error) {
        logger.error({ err: error, route: record.route }, 'record sink threw');
      }
    }
  }
}
