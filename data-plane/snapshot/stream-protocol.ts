/**
 * The node ↔ control-plane wire protocol around snapshots: paths, headers and message shapes.
 *
 * A node opens `GET {controlPlane}/nodes/stream` (Server-Sent Events) with its node token and X25519
 * public key; the control plane sends an `snapshot` event with the current envelope at once and again on
 * every change. The node posts `NodeReport`s to `/nodes/report` after each apply, periodically, and soon
 * after an upstream's health changes.
 */
import { z } from 'zod';

export const NODE_STREAM_PATH = '/nodes/stream';
export const NODE_REPORT_PATH = '/nodes/report';
/** A node presents its public keys here (with a one-time enrollment token, or to await an admin's approval). */
export const NODE_ENROLL_PATH = '/nodes/enroll';
/** The cached whole snapshot, for a node compacting its state dir (same envelope as the stream's). */
export const NODE_SNAPSHOT_PATH = '/nodes/snapshot';
export const NODE_JWKS_PATH = '/nodes/jwks';
/** The snapshot version a reconnecting node runs: it then receives only what changed since. */
export const NODE_VERSION_HEADER = 'x-gatehouse-node-version';
/**
 * The signing key ids the node trusts, sorted and comma-separated. When they differ from the control
 * plane's set (a key rotation), the node gets a whole snapshot, which carries the new set, whatever its version.
 */
export const NODE_TRUST_HEADER = 'x-gatehouse-node-kids';
/** base64url(JSON of the node's public X25519 JWK). */
export const NODE_KEY_HEADER = 'x-gatehouse-node-key';
export const NODE_ID_HEADER = 'x-gatehouse-node-id';
export const SNAPSHOT_EVENT = 'snapshot';
/** SSE event carrying a `DeltaEnvelope` (keys and users changed since the version the node runs). */
export const DELTA_EVENT = 'delta';

/**
 * How a node last found one upstream server: `reachable` (it answered; a tool's own error counts),
 * `credentials_refused` (it answered 401/403 to the server's shared credential: it is up, the credential is
 * the problem), `unreachable` (no connection, or an answer that is not MCP), `timeout` (no answer in time).
 */
export const UPSTREAM_STATUSES = ['reachable', 'credentials_refused', 'unreachable', 'timeout'] as const;
export type UpstreamStatus = (typeof UPSTREAM_STATUSES)[number];
/**
 * The most bytes one `NodeReport` may be (its JSON, UTF-8): the control plane refuses a larger one with 413
 * `payload_too_large`, and a node trims its report to fit (catalogs go first, health stays; `node/report-size.ts`).
 */
export const MAX_NODE_REPORT_BYTES = 256 * 1024;
/** The most servers one report carries health for (a node with more reports the first ones). */
export const MAX_REPORTED_UPSTREAMS = 2_000;
/** The longest `reason` a node sends (nodes cut theirs shorter; the control plane refuses longer). */
export const MAX_UPSTREAM_REASON = 300;

export const UpstreamHealthSchema = z.object({
  server: z.string().min(1).max(200),
  status: z.enum(UPSTREAM_STATUSES),
  /** Short and scrubbed on the node: no URL, header value or other secret. Null when reachable. */
  reason: z.string().max(MAX_UPSTREAM_REASON).nullable(),
  /** When the node last observed this status (a call, a catalog fetch or a probe). */
  at: z.iso.datetime({ offset: true }),
});
export type UpstreamHealth = z.infer<typeof UpstreamHealthSchema>;

export const NodeReportSchema = z.object({
  nodeId: z.string().min(1).max(200),
  appliedVersion: z.number().int().nullable(),
  /** `env.NAME` references this node could not resolve, with the servers they make unavailable. */
  missingEnv: z.array(z.object({ name: z.string(), servers: z.array(z.string()) })),
  /** The last snapshot this node refused, if any (code and message from `SnapshotError`). */
  lastRejection: z.object({ code: z.string(), message: z.string(), at: z.string() }).nullable(),
  health: z.enum(['OK', 'DEGRADED']),
  startedAt: z.string(),
  /** Tool catalogs this node has fetched from upstreams (their own tool names), so operators can see them. */
  catalogs: z
    .array(
      z.object({
        server: z.string().max(200),
        tools: z.array(z.object({ name: z.string().max(500), description: z.string().max(10_000).nullable() })).max(5_000),
      }),
    )
    .max(2_000)
    .optional(),
  /** Upstream health per server this node has talked to (optional: nodes older than it still validate). */
  upstreams: z.array(UpstreamHealthSchema).max(MAX_REPORTED_UPSTREAMS).optional(),
});
export type NodeReport = z.infer<typeof NodeReportSchema>;

/** `POST /nodes/enroll` body: the node's public keys (never a private one). */
export const NodeEnrollmentSchema = z.object({
  nodeId: z.string().regex(/^[A-Za-z0-9._:-]{1,200}$/),
  identityJwk: z.looseObject({ kty: z.literal('OKP'), crv: z.literal('Ed25519'), x: z.string().min(1).max(100) }),
  sealingJwk: z.looseObject({ kty: z.literal('OKP'), crv: z.literal('X25519'), x: z.string().min(1).max(100) }),
});
export type NodeEnrollment = z.infer<typeof NodeEnrollmentSchema>;

/** `POST /nodes/enroll` answer. */
export const NodeEnrollmentResultSchema = z.object({
  nodeId: z.string(),
  status: z.enum(['PENDING', 'APPROVED']),
  fingerprint: z.string(),
});
export type NodeEnrollmentResult = z.infer<typeof NodeEnrollmentResultSchema>;

/**
 * Spend (issue 7): nodes `POST` batches of priced calls here (idempotent per `requestId`: a batch retried
 * after a lost answer counts once), and `GET ?keyId=&from=&to=` (epoch ms) the spend persisted in a budget
 * window, to seed shared counters after a Redis or node restart.
 */
export const NODE_SPEND_PATH = '/nodes/spend';

export const SpendReportSchema = z.object({
  requestId: z.string().min(1).max(200),
  keyId: z.string().min(1).max(200),
  userId: z.string().min(1).max(200),
  kind: z.enum(['llm', 'tool']),
  model: z.string().max(200).nullable(),
  inputTokens: z.number().int().nonnegative(),
  outputTokens: z.number().int().nonnegative(),
  cacheCreationTokens: z.number().int().nonnegative(),
  cacheReadTokens: z.number().int().nonnegative(),
  /** nano-USD (1e-9 USD). */
  costNanos: z.number().int().nonnegative(),
  at: z.iso.datetime({ offset: true }),
});
export type SpendReport = z.infer<typeof SpendReportSchema>;

export const SpendBatchSchema = z.object({ events: z.array(SpendReportSchema).max(1000) });
export type SpendBatch = z.infer<typeof SpendBatchSchema>;
