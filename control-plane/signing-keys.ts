/**
 * The snapshot signing key file (`<data dir>/signing-keys.json`) and the three steps of rotating a key
 * without downtime (SPEC §3). Every snapshot lists all keys in the file as `trustedKeys`, and nodes adopt
 * that list from any snapshot they verify, so:
 *   1. `add`      — a new key joins the file; the next snapshots (still signed by the old key) teach nodes to trust it.
 *   2. `activate` — once every node has applied such a snapshot, the new key signs.
 *   3. `retire`   — the old key leaves the file; nodes stop trusting it with the next snapshot.
 * A running control plane picks a change up on restart (nodes keep serving meanwhile).
 */
import { chmodSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { generateSigningKey, type StoredSigningKey } from '../data-plane/snapshot/sign.js';

export const SigningKeyFileSchema = z.object({
  active: z.string(),
  keys: z.array(z.object({ kid: z.string(), privateJwk: z.record(z.string(), z.unknown()) })).min(1),
});
export type SigningKeyFile = { active: string; keys: StoredSigningKey[] };

export function signingKeyPath(dataDir: string): string {
  return join(dataDir, 'signing-keys.json');
}

export function parseSigningKeyFile(text: string): SigningKeyFile {
  const parsed = SigningKeyFileSchema.parse(JSON.parse(text));
  if (!parsed.keys.some((k) => k.kid === parsed.active)) throw new Error(`active signing key ${parsed.active} is not among the signing keys`);
  return parsed as SigningKeyFile;
}

export function readSigningKeyFile(dataDir: string): SigningKeyFile | null {
  const path = signingKeyPath(dataDir);
  return existsSync(path) ? parseSigningKeyFile(readFileSync(path, 'utf8')) : null;
}

/** Writes a file only its owner can read, atomically (a crash leaves the old file or the new one). */
export function writeSecretFile(path: string, content: string): void {
  writeFileSync(`${path}.tmp`, content, { mode: 0o600 });
  chmodSync(`${path}.tmp`, 0o600);
  renameSync(`${path}.tmp`, path);
}

export function writeSigningKeyFile(dataDir: string, file: SigningKeyFile): void {
  writeSecretFile(signingKeyPath(dataDir), JSON.stringify(file, null, 2) + '\n');
}

function requireFile(dataDir: string): SigningKeyFile {
  const file = readSigningKeyFile(dataDir);
  if (!file) throw new Error(`no signing key file at ${signingKeyPath(dataDir)}`);
  return file;
}

/** Step 1: adds a new (not yet active) key and returns its kid. */
export async function addSigningKey(dataDir: string): Promise<string> {
  const file = requireFile(dataDir);
  const key = await generateSigningKey();
  writeSigningKeyFile(dataDir, { ...file, keys: [...file.keys, key] });
  return key.kid;
}

/** Step 2: makes `kid` the signing key. */
export function activateSigningKey(dataDir: string, kid: string): void {
  const file = requireFile(dataDir);
  if (!file.keys.some((k) => k.kid === kid)) throw new Error(`no signing key ${kid}`);
  writeSigningKeyFile(dataDir, { ...file, active: kid });
}

/** Step 3: removes `kid`, which must not be the active key. */
export function retireSigningKey(dataDir: string, kid: string): void {
  const file = requireFile(dataDir);
  if (file.active === kid) throw new Error(`${kid} is the active signing key; activate another first`);
  if (!file.keys.some((k) => k.kid === kid)) throw new Error(`no signing key ${kid}`);
  writeSigningKeyFile(dataDir, { ...file, keys: file.keys.filter((k) => k.kid !== kid) });
}
