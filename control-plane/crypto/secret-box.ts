/**
 * Secrets at rest: AES-256-GCM under the control plane's master key (node:crypto; a dozen lines did not
 * justify a dependency). The stored form is `enc:v1:base64url(iv ‖ ciphertext ‖ tag)`; the AAD names the
 * row and field, so a ciphertext copied into another row does not open.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { parseEnvRef } from '../../data-plane/snapshot/rules.js';

const PREFIX = 'enc:v1:';

export class SecretBox {
  constructor(private readonly masterKey: Uint8Array) {
    if (masterKey.length !== 32) throw new Error('master key must be 32 bytes');
  }

  seal(plaintext: string, aad: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.masterKey, iv);
    cipher.setAAD(Buffer.from(aad, 'utf8'));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return PREFIX + Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64url');
  }

  open(stored: string, aad: string): string {
    if (!stored.startsWith(PREFIX)) throw new Error('not a sealed secret');
    const raw = Buffer.from(stored.slice(PREFIX.length), 'base64url');
    const decipher = createDecipheriv('aes-256-gcm', this.masterKey, raw.subarray(0, 12));
    decipher.setAAD(Buffer.from(aad, 'utf8'));
    decipher.setAuthTag(raw.subarray(raw.length - 16));
    // A wrong key or AAD throws here; callers report it without echoing the stored value.
    return Buffer.concat([decipher.update(raw.subarray(12, raw.length - 16)), decipher.final()]).toString('utf8');
  }
}

/** How a secret configuration value is kept in a JSON column: sealed, or a reference resolved on the node. */
export type StoredSecret =
  | { kind: 'enc'; ciphertext: string; preview: string }
  | { kind: 'env'; name: string };

/** `env.NAME` → the variable name, else null: the one syntax both planes use (`data-plane/snapshot/rules.ts`). */
export { parseEnvRef };

/**
 * What reads show instead of a secret: `sk-a…x9f2` for long values, `••••` for short ones (where four
 * characters from each end would give most of it away).
 */
export function redactedPreview(value: string): string {
  return value.length >= 16 ? `${value.slice(0, 4)}…${value.slice(-4)}` : '••••';
}

export function storeSecret(box: SecretBox, value: string, aad: string): StoredSecret {
  const envName = parseEnvRef(value);
  if (envName) return { kind: 'env', name: envName };
  return { kind: 'enc', ciphertext: box.seal(value, aad), preview: redactedPreview(value) };
}

/** The read-side view of a stored secret: its preview, or the `env.NAME` reference. */
export function displaySecret(secret: StoredSecret): string {
  return secret.kind === 'env' ? `env.${secret.name}` : secret.preview;
}
