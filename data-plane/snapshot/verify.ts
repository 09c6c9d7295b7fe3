/**
 * Verifying snapshots (node side of the contract): signature, key id, format, and no rollback.
 * Pure functions over a `TrustStore`; the node decides what to do with a refusal (log it, keep the
 * last good snapshot). Nothing here touches the network or the disk.
 */
import type { KeyObject } from 'node:crypto';
import { decodeHeader, ed25519PublicKey, verifyFlattened } from './jws.js';
import { SnapshotError } from './errors.js';
import {
  PublicJwkSchema,
  SNAPSHOT_FORMAT,
  SignedSnapshotSchema,
  SnapshotDeltaSchema,
  SnapshotPayloadSchema,
  type PublicJwk,
  type SnapshotDelta,
  type SnapshotPayload,
} from './schema.js';

/** The Ed25519 public keys a node accepts snapshots from, by key id. */
export class TrustStore {
  private constructor(private readonly keys: ReadonlyMap<string, KeyObject>) {}

  static async fromJwks(jwks: readonly unknown[]): Promise<TrustStore> {
    const keys = new Map<string, KeyObject>();
    for (const raw of jwks) {
      const jwk: PublicJwk = PublicJwkSchema.parse(raw);
      keys.set(jwk.kid, ed25519PublicKey(jwk));
    }
    if (keys.size === 0) throw new SnapshotError('malformed', 'a trust store needs at least one key');
    return new TrustStore(keys);
  }

  get(kid: string): KeyObject | undefined {
    return this.keys.get(kid);
  }

  kids(): string[] {
    return [...this.keys.keys()];
  }
}

export interface VerifyOptions {
  /** The version the node already runs; anything older is refused (equal is accepted as a no-op). */
  currentVersion: number | null;
}

/** Signature, key id and format of any signed message from the control plane; returns its parsed JSON. */
function verifySigned(signed: unknown, trust: TrustStore): Record<string, unknown> {
  const parsed = SignedSnapshotSchema.safeParse(signed);
  if (!parsed.success) throw new SnapshotError('malformed', 'snapshot is not a flattened JWS');
  const jws = parsed.data;

  const header = decodeHeader(jws);
  if (!header) throw new SnapshotError('malformed', 'snapshot protected header is not valid');
  if (header.alg !== 'EdDSA') throw new SnapshotError('bad_signature', `snapshot algorithm ${String(header.alg)} is not accepted`);
  // RFC 7515 §4.1.11: a header naming extensions we do not implement must be refused.
  if (header.crit !== undefined) throw new SnapshotError('malformed', 'snapshot header has unsupported critical extensions');
  const kid = typeof header.kid === 'string' ? header.kid : '';
  const key = trust.get(kid);
  if (!key) throw new SnapshotError('unknown_key_id', `snapshot signed by unknown key id "${kid}"`);

  let payloadBytes: Buffer | null;
  try {
    payloadBytes = verifyFlattened(jws, key);
  } catch {
    payloadBytes = null;
  }
  if (!payloadBytes) throw new SnapshotError('bad_signature', `snapshot signature does not verify with key "${kid}"`);

  let json: unknown;
  try {
    json = JSON.parse(payloadBytes.toString('utf8'));
  } catch {
    throw new SnapshotError('malformed', 'snapshot payload is not JSON');
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new SnapshotError('malformed', 'snapshot payload is not an object');
  const object = json as Record<string, unknown>;
  if (object.format !== SNAPSHOT_FORMAT) {
    throw new SnapshotError('unsupported_format', `snapshot format ${String(object.format)} is not supported`);
  }
  return object;
}

/** Checks a signed whole snapshot and returns its payload, or throws a `SnapshotError` saying why not. */
export async function verifySnapshot(
  signed: unknown,
  trust: TrustStore,
  options: VerifyOptions,
): Promise<SnapshotPayload> {
  const payload = SnapshotPayloadSchema.safeParse(verifySigned(signed, trust));
  if (!payload.success) throw new SnapshotError('malformed', 'snapshot payload does not match the schema');

  if (options.currentVersion !== null && payload.data.version < options.currentVersion) {
    throw new SnapshotError(
      'rollback',
      `snapshot version ${payload.data.version} is older than applied version ${options.currentVersion}`,
    );
  }
  return payload.data;
}

/**
 * Checks a signed delta: as for a snapshot, and it must apply on top of exactly `currentVersion`
 * (`gap` otherwise: the node then needs a whole snapshot) and move forward (`rollback` otherwise).
 */
export async function verifyDelta(signed: unknown, trust: TrustStore, options: VerifyOptions): Promise<SnapshotDelta> {
  const delta = SnapshotDeltaSchema.safeParse(verifySigned(signed, trust));
  if (!delta.success) throw new SnapshotError('malformed', 'snapshot delta does not match the schema');
  if (delta.data.version <= delta.data.baseVersion) {
    throw new SnapshotError('rollback', `delta to version ${delta.data.version} does not move forward from ${delta.data.baseVersion}`);
  }
  if (options.currentVersion !== null && delta.data.version <= options.currentVersion) {
    throw new SnapshotError('rollback', `delta to version ${delta.data.version} is not newer than applied version ${options.currentVersion}`);
  }
  if (delta.data.baseVersion !== options.currentVersion) {
    throw new SnapshotError('gap', `delta from version ${delta.data.baseVersion} does not apply to version ${String(options.currentVersion)}`);
  }
  return delta.data;
}
