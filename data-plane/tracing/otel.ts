/**
 * OpenTelemetry spans for the pipeline, exported over OTLP/HTTP when an endpoint is configured
 * (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, or `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`); when neither is
 * set, nothing here is loaded (the SDK is imported lazily) and the pipeline reads no clocks for it.
 *
 * It is a `RecordSink`: after a request is answered, each record becomes a SERVER span (the request, a
 * child of the caller's `traceparent` when it sent one) with CLIENT/INTERNAL child spans for the stages the
 * pipeline timed (limits, credentials, forward). The forward span gets exactly the span id the upstream
 * received as its parent in `traceparent`, so the upstream's own spans hang under it in the same trace.
 * Spans carry no key value, argument or result: ids, names, outcome and the deny reason only.
 */
import type { IdGenerator, Span, TracerProvider } from '@opentelemetry/sdk-trace';
import type { Logger } from '../log.js';
import type { RequestRecord } from '../pipeline/context.js';
import type { RecordSink } from '../pipeline/record.js';
import { newSpanId } from './trace-context.js';

export interface OtelSink extends RecordSink {
  /** Exports what is buffered and stops. */
  shutdown(): Promise<void>;
}

/** The OTLP traces URL from the standard environment variables, or null (tracing off). */
export function otlpTracesUrl(env: Record<string, string | undefined>): string | null {
  if (env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) return env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
  if (env.OTEL_EXPORTER_OTLP_ENDPOINT) return `${env.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/+$/, '')}/v1/traces`;
  return null;
}

/**
 * Ids for spans made after the fact: the next trace id / span id may be set just before a (synchronous)
 * `startSpan`, so a span gets the id the wire already carries; otherwise random like the SDK's own.
 */
class PresetIds implements IdGenerator {
  nextTraceId: string | null = null;
  nextSpanId: string | null = null;

  generateTraceId(): string {
    const id = this.nextTraceId ?? `${newSpanId()}${newSpanId()}`;
    this.nextTraceId = null;
    return id;
  }

  generateSpanId(): string {
    const id = this.nextSpanId ?? newSpanId();
    this.nextSpanId = null;
    return id;
  }
}

export async function createOtelSink(env: Record<string, string | undefined>, nodeId: string, logger: Logger): Promise<OtelSink | null> {
  const url = otlpTracesUrl(env);
  if (url === null) return null;
  const api = await import('@opentelemetry/api');
  const { TracerProvider: Provider, BatchSpanProcessor } = await import('@opentelemetry/sdk-trace');
  const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http');
  const { resourceFromAttributes } = await import('@opentelemetry/resources');
  const ids = new PresetIds();
  const provider: TracerProvider = new Provider({
    idGenerator: ids,
    resource: resourceFromAttributes({ 'service.name': env.OTEL_SERVICE_NAME ?? 'gatehouse-node', 'service.instance.id': nodeId }),
    spanProcessors: [new BatchSpanProcessor({ exporter: new OTLPTraceExporter({ url }), scheduledDelayMillis: 1000 })],
  });
  const tracer = provider.getTracer('gatehouse');
  logger.info({ url }, 'OpenTelemetry spans are exported over OTLP/HTTP');

  const start = (name: string, kind: number, startTime: number, attributes: Record<string, string | number>, parent: ReturnType<typeof api.context.active>, spanId?: string, traceId?: string): Span => {
    ids.nextSpanId = spanId ?? null;
    ids.nextTraceId = traceId ?? null;
    return tracer.startSpan(name, { kind, startTime, attributes }, parent) as Span;
  };

  return {
    record(record: RequestRecord) {
      const trace = record.trace;
      if (!trace) return;
      const attributes: Record<string, string | number> = { 'gatehouse.route': record.route, 'gatehouse.outcome': record.outcome, 'gatehouse.node': nodeId };
      if (record.method) attributes['rpc.method'] = record.method;
      if (record.server) attributes['gatehouse.server'] = record.server;
      if (record.tool) attributes['gatehouse.tool'] = record.tool;
      if (record.keyId) attributes['gatehouse.key_id'] = record.keyId;
      if (record.error) attributes['gatehouse.error'] = record.error;
      // A caller's trace: our request span is the child of its span. One started here: ours is the root.
      const parent = trace.local
        ? api.ROOT_CONTEXT
        : api.trace.setSpanContext(api.ROOT_CONTEXT, { traceId: trace.traceId, spanId: trace.parentId, traceFlags: api.TraceFlags.SAMPLED, isRemote: true });
      const root = start(`${record.route} ${record.method ?? ''}`.trim(), api.SpanKind.SERVER, record.at, attributes, parent, trace.local ? trace.parentId : undefined, trace.local ? trace.traceId : undefined);
      if (record.outcome !== 'ok') root.setStatus({ code: api.SpanStatusCode.ERROR, message: record.error ?? record.outcome });
      const rootContext = api.trace.setSpan(api.ROOT_CONTEXT, root);
      for (const s of record.stages ?? []) {
        const forward = s.name === 'forward';
        const child = start(`gatehouse.${s.name}`, forward ? api.SpanKind.CLIENT : api.SpanKind.INTERNAL, s.start, {}, rootContext, forward ? record.upstreamSpanId : undefined);
        child.end(s.end);
      }
      root.end(record.at + record.latencyMs);
    },
    async shutdown() {
      await provider.shutdown();
    },
  };
}
