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

const TimeSchema = AuditEventSchema.shape.time;
const ID = /^[A-Za-z0-9_-]+$/;
const TRACE_ID = /^[0-9a-f]{32}$/;

/**
 * The members `isPlainEvent` checks, written out: a member added to the schema later is not among them,
 * so events carrying it go through the schema until the quick check learns it.
 */
export const PLAIN_EVENT_MEMBERS: ReadonlySet<string> = new Set([
  'id', 'time', 'node', 'requestId', 'traceId', 'route', 'keyId', 'keyHashPrefix', 'userId', 'method', 'server', 'tool',
  'arguments', 'result', 'outcome', 'denyReason', 'upstreamStatus', 'latencyMs', 'resultBytes', 'tokens', 'costUsd', 'guardrail',
]);

function nullishShort(v: unknown, max: number): boolean {
  return v === null || v === undefined || (typeof v === 'string' && v.length <= max);
}

/**
 * What nodes send, `Date.prototype.toISOString()` of a date in years 0000–9999 (`YYYY-MM-DDTHH:mm:ss.sssZ`),
 * is checked digit by digit, including the days of the month (a `Date` round trip cost ~1 µs); any other
 * spelling is left to the schema.
 */
function validTime(v: string): boolean {
  return isIsoUtcMillis(v) || TimeSchema.safeParse(v).success;
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function isIsoUtcMillis(v: string): boolean {
  if (v.length !== 24 || v[4] !== '-' || v[7] !== '-' || v[10] !== 'T' || v[13] !== ':' || v[16] !== ':' || v[19] !== '.' || v[23] !== 'Z') return false;
  const year = digits(v, 0, 4);
  const month = digits(v, 5, 2);
  const day = digits(v, 8, 2);
  if (year < 0 || month < 1 || month > 12 || day < 1) return false;
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  if (day > (month === 2 && leap ? 29 : DAYS_IN_MONTH[month - 1]!)) return false;
  const hour = digits(v, 11, 2);
  const minute = digits(v, 14, 2);
  const second = digits(v, 17, 2);
  return hour >= 0 && hour <= 23 && minute >= 0 && minute <= 59 && second >= 0 && second <= 59 && digits(v, 20, 3) >= 0;
}

/** The decimal number `v[from, from + count)` spells, or -1 if any of it is not an ASCII digit. */
function digits(v: string, from: number, count: number): number {
  let n = 0;
  for (let i = from; i < from + count; i++) {
    const d = v.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}

export type ParsedAuditEvent = { ok: true; event: AuditEvent; exact: boolean } | { ok: false; reason: string };

/**
 * `AuditEventSchema.safeParse`, quicker for the events nodes send: a plain object whose members are all
 * the schema's, with plain values the schema accepts, is the event as it is (`exact`: the candidate object
 * itself, nothing stripped or copied). Anything else (an unknown member, token counts, findings, a value
 * the plain checks refuse) goes through the schema, which decides. The control plane checks every event
 * of every batch; the schema's generic walk was ~3.5 µs of that per event.
 */
export function parseAuditEvent(candidate: unknown): ParsedAuditEvent {
  if (isPlainEvent(candidate)) return { ok: true, event: candidate, exact: true };
  const parsed = AuditEventSchema.safeParse(candidate);
  if (parsed.success) return { ok: true, event: parsed.data, exact: false };
  return { ok: false, reason: parsed.error.issues[0]?.path.join('.') || 'invalid event' };
}

/** Every member one the schema has, and each value one the schema accepts as it is (written out: ~10× quicker than a table of checks). */
function isPlainEvent(candidate: unknown): candidate is AuditEvent {
  if (typeof candidate !== 'object' || candidate === null || Array.isArray(candidate)) return false;
  for (const key in candidate) if (!PLAIN_EVENT_MEMBERS.has(key)) return false;
  const e = candidate as Record<string, unknown>;
  return (
    typeof e.id === 'string' && e.id.length >= 8 && e.id.length <= 64 && ID.test(e.id) &&
    typeof e.time === 'string' && validTime(e.time) &&
    typeof e.node === 'string' && e.node.length <= 200 &&
    nullishShort(e.requestId, 200) &&
    (e.traceId === null || e.traceId === undefined || (typeof e.traceId === 'string' && TRACE_ID.test(e.traceId))) &&
    nullishShort(e.route, 200) &&
    nullishShort(e.keyId, 200) &&
    nullishShort(e.keyHashPrefix, 16) &&
    nullishShort(e.userId, 200) &&
    typeof e.method === 'string' && e.method.length <= 200 &&
    nullishShort(e.server, 200) &&
    nullishShort(e.tool, 200) &&
    typeof e.outcome === 'string' && e.outcome.length >= 1 && e.outcome.length <= 64 &&
    nullishShort(e.denyReason, 500) &&
    (e.upstreamStatus === null || e.upstreamStatus === undefined || Number.isSafeInteger(e.upstreamStatus)) &&
    typeof e.latencyMs === 'number' && Number.isFinite(e.latencyMs) && e.latencyMs >= 0 &&
    (e.resultBytes === null || e.resultBytes === undefined || (Number.isSafeInteger(e.resultBytes) && (e.resultBytes as number) >= 0)) &&
    // Token counts and guardrail findings are left to the schema whenever present.
    (e.tokens === null || e.tokens === undefined) &&
    (e.costUsd === null || e.costUsd === undefined || (typeof e.costUsd === 'number' && Number.isFinite(e.costUsd) && e.costUsd >= 0)) &&
    (e.guardrail === null || e.guardrail === undefined)
  );
}

export const AuditBatchSchema = z.object({ events: z.array(z.unknown()).min(1).max(AUDIT_BATCH_MAX_EVENTS) });
export type AuditBatch = { events: AuditEvent[] };

/**
 * How a node lays out a batch: plain JSON (`{"events":[…]}`, so any JSON reader takes it), with every
 * event on a line of its own, each but the last followed by a comma:
 *
 *     {"events":[
 *     {…event…},
 *     {…event…}
 *     ]}
 *
 * A control plane that knows the layout parses each line alone and keeps its text: an event it accepts
 * as sent is stored as that text, not serialised again (~2 µs per event). Anything else is read as the
 * JSON it is.
 */
const BATCH_HEAD = '{"events":[\n';
const BATCH_TAIL = '\n]}';

/** The batch body for events given as JSON lines, each ending in a newline (how the node's outbox holds them). */
export function encodeAuditBatch(lines: Buffer): Buffer {
  if (lines.length === 0) return Buffer.from('{"events":[]}');
  let count = 0;
  for (let nl = lines.indexOf(0x0a); nl !== -1; nl = lines.indexOf(0x0a, nl + 1)) count += 1;
  // Every newline stays; a comma goes before each but the last, which the tail replaces.
  const body = Buffer.allocUnsafe(BATCH_HEAD.length + lines.length - 1 + (count - 1) + BATCH_TAIL.length);
  let at = body.write(BATCH_HEAD, 0, 'latin1');
  let start = 0;
  for (let nl = lines.indexOf(0x0a); nl !== -1; start = nl + 1, nl = lines.indexOf(0x0a, start)) {
    at += lines.copy(body, at, start, nl);
    if (nl + 1 < lines.length) {
      body[at++] = 0x2c;
      body[at++] = 0x0a;
    }
  }
  body.write(BATCH_TAIL, at, 'latin1');
  return body;
}

/** A body as read: the JSON it holds (a batch, for `AuditBatchSchema` to check) and, where the layout gave them, each event's own text. */
export interface DecodedAuditBatch {
  body: unknown;
  /** `texts[i]`: the text of `body.events[i]` as sent; empty when the body was read as one JSON text. */
  texts: string[];
}

/**
 * Reads a batch body: line by line when it has the layout above, else as one JSON text. Null when it is
 * not JSON at all; the caller checks the result against `AuditBatchSchema`.
 */
export function decodeAuditBatch(text: string): DecodedAuditBatch | null {
  const byLines = text.startsWith(BATCH_HEAD) && text.endsWith(BATCH_TAIL) ? decodeLines(text) : null;
  if (byLines) return byLines;
  try {
    return { body: JSON.parse(text) as unknown, texts: [] };
  } catch {
    return null;
  }
}

function decodeLines(text: string): DecodedAuditBatch | null {
  const events: unknown[] = [];
  const texts: string[] = [];
  const end = text.length - BATCH_TAIL.length;
  let start = BATCH_HEAD.length;
  // An empty batch is read as JSON (and refused by the schema).
  if (start >= end) return null;
  for (;;) {
    // The tail starts with a newline, so one is always found, at `end` at the latest.
    const nl = text.indexOf('\n', start);
    const last = nl === end;
    // Each line but the last ends in the comma; anything else is not this layout.
    if (!last && text.charCodeAt(nl - 1) !== 0x2c) return null;
    const line = text.slice(start, last ? end : nl - 1);
    try {
      events.push(JSON.parse(line));
    } catch {
      return null;
    }
    texts.push(line);
    // One event more than a batch may hold is enough for the schema to refuse it.
    if (last || events.length > AUDIT_BATCH_MAX_EVENTS) break;
    start = nl + 1;
  }
  return { body: { events }, texts };
}

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
