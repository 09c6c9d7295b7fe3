/**
 * The audit contract between the planes: the shape of one audit event as a node records it, the batch a
 * node posts to the control plane (`POST /nodes/audit`, authenticated like every node route), and the
 * answer. Both planes import it; it depends on neither's storage or API types.
 *
 * Delivery is at least once and idempotent on `id`: a node resends a batch until it gets a 200, and the
 * control plane stores each id once (`duplicates` counts the ones it already had). Nothing here carries a
 * secret: a failed authentication names the key by `keyHashPrefix` (a prefix of the key's hash), never by
 * its value, and guardrail findings say what kind of secret was found and where, never the value.
 */
import { z } from 'zod';

export const NODE_AUDIT_PATH = '/nodes/audit';

/** A batch holds at most this many events, and its body at most this many bytes. */
export const AUDIT_BATCH_MAX_EVENTS = 1000;
export const AUDIT_BATCH_MAX_BYTES = 8 * 1024 * 1024;

/** What became of a request. Open-ended on purpose (a newer node may add one); the known ones are listed. */
export const AUDIT_OUTCOMES = ['ok', 'tool_error', 'upstream_error', 'denied', 'invalid', 'blocked', 'error'] as const;

const short = z.string().max(200);

/** One secret the guardrail found: its kind (e.g. `github-pat`) and where (e.g. `arguments.token`), never the value. */
export const GuardrailFindingSchema = z.object({ kind: short, where: z.string().max(500) });
export type GuardrailFinding = z.infer<typeof GuardrailFindingSchema>;

export const AuditEventSchema = z.object({
  /** Unique per event (UUID): the idempotency key of delivery. */
  id: z.string().min(8).max(64).regex(/^[A-Za-z0-9_-]+$/),
  /** When the request arrived at the node (ISO-8601). */
  time: z.iso.datetime({ offset: true }),
  /** The node that served it; the control plane overwrites it with the authenticated node id. */
  node: short,
  requestId: short.nullish(),
  /** W3C trace id (32 hex) of the request, when it had or got one. */
  traceId: z.string().regex(/^[0-9a-f]{32}$/).nullish(),
  /** `/mcp`, `/mcp/{server}`, `/anthropic`. */
  route: short.nullish(),
  keyId: short.nullish(),
  /** First characters of the presented key's hash, for refused keys that match no key (never the value). */
  keyHashPrefix: z.string().max(16).nullish(),
  userId: short.nullish(),
  /** JSON-RPC method, or `POST /v1/messages` style for HTTP routes. */
  method: short,
  server: short.nullish(),
  tool: short.nullish(),
  /** Tool arguments / LLM request (secrets redacted); absent when content logging is off for the key or server. */
  arguments: z.unknown().optional(),
  /** Tool result / LLM response (secrets redacted); absent when content logging is off. */
  result: z.unknown().optional(),
  outcome: z.string().min(1).max(64),
  denyReason: z.string().max(500).nullish(),
  upstreamStatus: z.number().int().nullish(),
  latencyMs: z.number().nonnegative(),
  resultBytes: z.number().int().nonnegative().nullish(),
  tokens: z
    .object({
      input: z.number().int().nonnegative(),
      output: z.number().int().nonnegative(),
      cacheRead: z.number().int().nonnegative().optional(),
      cacheWrite: z.number().int().nonnegative().optional(),
    })
    .nullish(),
  costUsd: z.number().nonnegative().nullish(),
  guardrail: z.array(GuardrailFindingSchema).max(100).nullish(),
});
export type AuditEvent = z.infer<typeof AuditEventSchema>;

export const AuditBatchSchema = z.object({ events: z.array(z.unknown()).min(1).max(AUDIT_BATCH_MAX_EVENTS) });
export type AuditBatch = { events: AuditEvent[] };

/**
 * The answer to a batch. `rejected` lists events that will never be accepted (they do not parse); the
 * node drops them (and counts them) instead of resending them forever.
 */
export const AuditIngestResultSchema = z.object({
  accepted: z.number().int().nonnegative(),
  duplicates: z.number().int().nonnegative(),
  rejected: z.array(z.object({ index: z.number().int().nonnegative(), reason: z.string() })),
});
export type AuditIngestResult = z.infer<typeof AuditIngestResultSchema>;
