/**
 * The snapshot contract: everything a data-plane node receives from the control plane.
 *
 * This module (with the rest of `data-plane/snapshot/`) is the only data-plane code the control plane
 * imports, and it imports neither plane's storage or API types. A node refuses any payload that does not
 * parse here and keeps serving its last good one. Bump `SNAPSHOT_FORMAT` for any incompatible change.
 *
 * Secrets never appear here in plaintext: a secret is a `sealed` value (AES-256-GCM under a per-snapshot
 * data key that is wrapped separately for each node, see `seal.ts`) or an `env` reference that the node
 * resolves from its own environment.
 */
import { z } from 'zod';
import { ENV_NAME_PATTERN } from './rules.js';

export const SNAPSHOT_FORMAT = 1 as const;

/** base64url(iv ‖ ciphertext ‖ tag), AES-256-GCM under the snapshot's data key; AAD is the `aad` string. */
export const SealedValueSchema = z.object({ kind: z.literal('sealed'), ciphertext: z.string(), aad: z.string() });
export type SealedValue = z.infer<typeof SealedValueSchema>;

/** A configuration value: a non-secret literal, a reference to the node's environment, or a sealed secret. */
export const ValueRefSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('plain'), value: z.string() }),
  z.object({ kind: z.literal('env'), name: z.string().regex(ENV_NAME_PATTERN) }),
  SealedValueSchema,
]);
export type ValueRef = z.infer<typeof ValueRefSchema>;

export const ConnectionTypeSchema = z.enum(['HTTP', 'SSE', 'STDIO']);
export type ConnectionType = z.infer<typeof ConnectionTypeSchema>;

export const AuthTypeSchema = z.enum(['NONE', 'HEADERS', 'OAUTH', 'PER_USER_OAUTH', 'PER_USER_HEADERS']);
export type AuthType = z.infer<typeof AuthTypeSchema>;

/** MCP server names become tool-name prefixes (`{server}-{tool}`), so no hyphen is allowed. */
export const SERVER_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;

export const ServerEntrySchema = z.object({
  id: z.string(),
  name: z.string().regex(SERVER_NAME_PATTERN),
  connectionType: ConnectionTypeSchema,
  /** URL for HTTP and SSE servers (`plain` or `env`); null for STDIO. */
  url: ValueRefSchema.nullable(),
  stdio: z
    .object({
      command: z.string(),
      args: z.array(z.string()),
      env: z.record(z.string(), ValueRefSchema),
    })
    .nullable(),
  authType: AuthTypeSchema,
  /** Header name → value injected on every upstream request (HEADERS auth). */
  headers: z.record(z.string(), ValueRefSchema),
  perUserHeaderKeys: z.array(z.string()),
  /** `["*"]` = every tool, `[]` = none (deny by default). */
  toolsToExecute: z.array(z.string()),
  /** Lower-cased caller header names that may be forwarded to this server. */
  allowedExtraHeaders: z.array(z.string()),
  toolTimeoutMs: z.number().int().positive(),
  disabled: z.boolean(),
  /** USD per call of each (unprefixed) tool, charged to the caller's budgets (issue 7); absent = free. */
  toolPricing: z.record(z.string(), z.number().nonnegative()).optional(),
});
export type ServerEntry = z.infer<typeof ServerEntrySchema>;

export const KeyServerGrantSchema = z.object({
  /** Server name. */
  server: z.string(),
  /** `["*"]` = every tool the server allows, otherwise the tool names (unprefixed). */
  tools: z.array(z.string()),
});
export type KeyServerGrant = z.infer<typeof KeyServerGrantSchema>;

/**
 * Budget periods: fixed UTC calendar windows (minute, hour, day, ISO week from Monday, month), so every
 * node and the control plane agree on which window a request falls in without coordinating.
 */
export const BUDGET_PERIODS = ['MINUTELY', 'HOURLY', 'DAILY', 'WEEKLY', 'MONTHLY'] as const;
export const BudgetPeriodSchema = z.enum(BUDGET_PERIODS);
export type BudgetPeriod = z.infer<typeof BudgetPeriodSchema>;

export const BudgetSchema = z.object({ maxUsd: z.number().positive(), period: BudgetPeriodSchema });
export type Budget = z.infer<typeof BudgetSchema>;

export const RateLimitSchema = z.object({
  requestsPerMinute: z.number().int().positive().nullable(),
  tokensPerMinute: z.number().int().positive().nullable(),
});
export type RateLimit = z.infer<typeof RateLimitSchema>;

/**
 * While the shared counters (Redis) are unreachable: FAIL_CLOSED refuses the key's requests;
 * LOCAL_ALLOWANCE lets each node admit up to a bounded share of the limits from its own counters.
 */
export const LimitsFallbackSchema = z.enum(['FAIL_CLOSED', 'LOCAL_ALLOWANCE']);
export type LimitsFallback = z.infer<typeof LimitsFallbackSchema>;

/** A key's limits (issue 7). Absent on keys without any, and on snapshots from older control planes. */
export const KeyLimitsEntrySchema = z.object({
  budgets: z.array(BudgetSchema),
  rateLimit: RateLimitSchema.nullable(),
  fallback: LimitsFallbackSchema,
});
export type KeyLimitsEntry = z.infer<typeof KeyLimitsEntrySchema>;

/** USD per million tokens of each kind, for models matching `model` (exact, or a prefix ending in `*`). */
export const ModelPriceSchema = z.object({
  model: z.string().min(1),
  inputPerMTok: z.number().nonnegative(),
  outputPerMTok: z.number().nonnegative(),
  cacheWritePerMTok: z.number().nonnegative(),
  cacheReadPerMTok: z.number().nonnegative(),
});
export type ModelPrice = z.infer<typeof ModelPriceSchema>;

/** An LLM provider nodes pass `/{name}/...` through to, with its API key (sealed or `env`) injected. */
export const ProviderEntrySchema = z.object({
  id: z.string(),
  name: z.string(),
  kind: z.literal('ANTHROPIC'),
  baseUrl: ValueRefSchema,
  apiKey: ValueRefSchema,
  prices: z.array(ModelPriceSchema),
});
export type ProviderEntry = z.infer<typeof ProviderEntrySchema>;

export const KeyEntrySchema = z.object({
  id: z.string(),
  name: z.string(),
  /** base64url(SHA-256(key value)); the value itself is never stored or shipped. */
  hash: z.string(),
  userId: z.string(),
  servers: z.array(KeyServerGrantSchema),
  /** ISO-8601 instant, or null for no expiry. */
  expiresAt: z.string().nullable(),
  revoked: z.boolean(),
  /** Optional so old and new nodes and control planes interoperate; absent = no limits. */
  limits: KeyLimitsEntrySchema.optional(),
});
export type KeyEntry = z.infer<typeof KeyEntrySchema>;

export const UserEntrySchema = z.object({
  id: z.string(),
  email: z.string(),
  /** Budgets over all of the user's keys (issue 7); absent = none. */
  budgets: z.array(BudgetSchema).optional(),
});
export type UserEntry = z.infer<typeof UserEntrySchema>;

/** An Ed25519 public key in JWK form, with the `kid` nodes look it up by. */
export const PublicJwkSchema = z.object({
  kty: z.literal('OKP'),
  crv: z.literal('Ed25519'),
  x: z.string(),
  kid: z.string(),
});
export type PublicJwk = z.infer<typeof PublicJwkSchema>;

/** Ids of session secrets: they appear in every sealed session id, so they stay short and URL-safe. */
export const SESSION_SECRET_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/** One session secret: 32+ random bytes (base64url), sealed like every secret in the snapshot. */
export const SessionSecretEntrySchema = z.object({
  id: z.string().regex(SESSION_SECRET_ID_PATTERN),
  secret: SealedValueSchema,
});
export type SessionSecretEntry = z.infer<typeof SessionSecretEntrySchema>;

/**
 * The secrets nodes derive the sealed-MCP-session key from (`data-plane/session/`): `current` seals new
 * session ids, `current` and `previous` open them, so a rotation (new current, old one kept as previous)
 * breaks no live session. The control plane keeps them stable across snapshot versions.
 */
export const SessionSecretsSchema = z.object({
  current: SessionSecretEntrySchema,
  previous: SessionSecretEntrySchema.nullable(),
});
export type SessionSecrets = z.infer<typeof SessionSecretsSchema>;

/** The AAD a session secret is sealed with: binds the value to its id, so secrets cannot be swapped. */
export function sessionSecretAad(id: string): string {
  return `session-secret:${id}`;
}

/** The guardrail's policy: `off`, `redact` (replace each secret with `[REDACTED:<kind>]`), `block` (refuse). */
export const GuardrailPolicySchema = z.enum(['off', 'redact', 'block']);
export type GuardrailPolicy = z.infer<typeof GuardrailPolicySchema>;

/** Audit settings for one key (`scope: key`, `target`: key id) or one server (`scope: server`, `target`: name). */
export const AuditSettingEntrySchema = z.object({
  scope: z.enum(['key', 'server']),
  target: z.string(),
  /** Arguments and results are stored in the audit trail (default); false keeps only the rest of the event. */
  contentLogging: z.boolean(),
  guardrail: GuardrailPolicySchema,
});
export type AuditSettingEntry = z.infer<typeof AuditSettingEntrySchema>;

export const SnapshotPayloadSchema = z.object({
  format: z.literal(SNAPSHOT_FORMAT),
  /** Strictly increasing across every control-plane replica (it comes from the database). */
  version: z.number().int().nonnegative(),
  issuedAt: z.string(),
  /**
   * The signing keys nodes should trust from this snapshot on. Listing a new key here (signed by a key
   * the node already trusts) is how signing keys rotate without downtime.
   */
  trustedKeys: z.array(PublicJwkSchema).min(1),
  servers: z.array(ServerEntrySchema),
  /** Keys as objects (snapshots before the key table; still accepted). */
  keys: z.array(KeyEntrySchema).default([]),
  /**
   * Keys in compact form (`key-table.ts`): grant lists validated here, rows cell by cell as the node builds
   * its runtime (a schema walk over 700,000 cells would allocate per cell). A snapshot may carry both.
   */
  keyTable: z
    .object({
      grants: z.array(z.array(KeyServerGrantSchema)),
      rows: z.custom<Array<string | number | null>>((v) => Array.isArray(v), { message: 'rows must be an array' }),
    })
    .optional(),
  users: z.array(UserEntrySchema),
  /** Limits of the keys in `keyTable`, by key id (keys without limits are absent). */
  keyLimits: z.record(z.string(), KeyLimitsEntrySchema).optional(),
  /** LLM providers (issue 7); older snapshots have none. */
  providers: z.array(ProviderEntrySchema).optional(),
  /** Null until a control plane that issues them publishes (older snapshots parse as null). */
  sessionSecrets: SessionSecretsSchema.nullable().default(null),
  /** Per key / per server audit content logging and guardrail policy (issue 8); older snapshots have none. */
  auditSettings: z.array(AuditSettingEntrySchema).optional(),
});
export type SnapshotPayload = z.infer<typeof SnapshotPayloadSchema>;

/**
 * A change to the keys and users of the snapshot at `baseVersion`, producing `version`. Changes to servers
 * (or to the signing keys) always travel as a whole snapshot: they carry sealed values, which need a data
 * key, whereas keys and users hold no secret. A node applies a delta only on top of exactly `baseVersion`;
 * anything else is a gap, and the node asks for a whole snapshot by reconnecting.
 */
export const SnapshotDeltaSchema = z.object({
  format: z.literal(SNAPSHOT_FORMAT),
  kind: z.literal('delta'),
  baseVersion: z.number().int().nonnegative(),
  version: z.number().int().positive(),
  issuedAt: z.string(),
  trustedKeys: z.array(PublicJwkSchema).min(1),
  /** Keys added or changed (a revocation is an upsert with `revoked: true`). */
  upsertKeys: z.array(KeyEntrySchema),
  /** Ids of keys deleted (or whose user was deleted). */
  removeKeyIds: z.array(z.string()),
  upsertUsers: z.array(UserEntrySchema),
  removeUserIds: z.array(z.string()),
});
export type SnapshotDelta = z.infer<typeof SnapshotDeltaSchema>;

/** A JWS in flattened JSON serialization (RFC 7515 §7.2.2); `alg` is EdDSA and `kid` is required. */
export const SignedSnapshotSchema = z.object({
  protected: z.string(),
  payload: z.string(),
  signature: z.string(),
});
export type SignedSnapshot = z.infer<typeof SignedSnapshotSchema>;

/**
 * What travels to one node: the signed snapshot (identical for every node) and its data key wrapped for
 * that node's X25519 public key as a compact JWE (ECDH-ES+A256KW, A256GCM). This is also what a node
 * keeps on disk, so neither the wire nor the disk holds a usable secret without the node's private key.
 */
export const SnapshotEnvelopeSchema = z.object({
  snapshot: SignedSnapshotSchema,
  dataKey: z.string(),
});
export type SnapshotEnvelope = z.infer<typeof SnapshotEnvelopeSchema>;

/** What travels for a delta: only the signed delta (it holds no sealed value, so no data key). */
export const DeltaEnvelopeSchema = z.object({ delta: SignedSnapshotSchema });
export type DeltaEnvelope = z.infer<typeof DeltaEnvelopeSchema>;
