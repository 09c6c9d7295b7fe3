/**
 * The node ↔ control-plane contract for credentials that are not in snapshots (SPEC §3): a server's shared
 * OAuth token and users' per-user OAuth tokens and header values. A node asks `POST /nodes/credentials`
 * (authenticated like every node route) for one (server, user); the control plane answers a compact JWE
 * sealed to the node's X25519 key (ECDH-ES+A256KW / A256GCM), so the values never travel or rest in
 * plaintext outside the node process that uses them. Refresh happens only on the control plane; a node
 * reports an upstream 401 by naming the generation it used.
 *
 * Imported by both planes; depends on neither.
 */
import { CompactEncrypt, compactDecrypt, importJWK, type JWK } from 'jose';
import { z } from 'zod';

export const NODE_CREDENTIALS_PATH = '/nodes/credentials';

export const CredentialRequestSchema = z.object({
  /** Server name. */
  server: z.string().min(1).max(200),
  /** The user whose credential is wanted (from the authenticated virtual key); null for a shared OAUTH token. */
  userId: z.string().min(1).max(200).nullable(),
  /** The generation an upstream answered 401 to: the control plane refreshes unless it already has a newer one. */
  rejectedGeneration: z.number().int().nonnegative().optional(),
});
export type CredentialRequest = z.infer<typeof CredentialRequestSchema>;

export const AuthRequiredKindSchema = z.enum(['oauth', 'headers']);
export type AuthRequiredKind = z.infer<typeof AuthRequiredKindSchema>;

export const CredentialAnswerSchema = z.discriminatedUnion('status', [
  z.object({
    status: z.literal('ok'),
    /** Header name (lower-case) → value to send upstream. */
    headers: z.record(z.string(), z.string()),
    /** Moves whenever the stored credential changes; reported back with an upstream 401. */
    generation: z.number().int(),
    /** How long the node may reuse this answer. */
    cacheMs: z.number().int().nonnegative(),
  }),
  z.object({
    /** The user must act: open `url` (one-time, bound to this user and server, 15 minutes). */
    status: z.literal('auth_required'),
    kind: AuthRequiredKindSchema,
    url: z.string(),
    /** For `headers`: the header names the form asks for. */
    requiredHeaderKeys: z.array(z.string()).optional(),
    /** Why (never connected, authorization refused, header keys changed), for the message. */
    reason: z.enum(['not_connected', 'needs_reauth', 'needs_update']),
  }),
  z.object({
    /** Nothing the caller can do now (the AS is unreachable, the shared credential needs an admin). */
    status: z.literal('unavailable'),
    message: z.string(),
    /** Worth retrying soon (a transient failure) rather than waiting for an admin. */
    retryable: z.boolean(),
  }),
]);
export type CredentialAnswer = z.infer<typeof CredentialAnswerSchema>;

/** The control plane seals an answer to the requesting node's X25519 public key. */
export async function sealCredentialAnswer(answer: CredentialAnswer, nodePublicJwk: JWK): Promise<string> {
  const key = await importJWK({ kty: 'OKP', crv: 'X25519', x: nodePublicJwk.x }, 'ECDH-ES+A256KW');
  return new CompactEncrypt(new TextEncoder().encode(JSON.stringify(answer)))
    .setProtectedHeader({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM', cty: 'gatehouse-credential+json' })
    .encrypt(key);
}

/** The node opens it with its private key; anything else (wrong key, tampered, wrong shape) throws. */
export async function openCredentialAnswer(jwe: string, nodePrivateJwk: JWK): Promise<CredentialAnswer> {
  const key = await importJWK(nodePrivateJwk, 'ECDH-ES+A256KW');
  const { plaintext } = await compactDecrypt(jwe, key, { keyManagementAlgorithms: ['ECDH-ES+A256KW'], contentEncryptionAlgorithms: ['A256GCM'] });
  return CredentialAnswerSchema.parse(JSON.parse(new TextDecoder().decode(plaintext)));
}
