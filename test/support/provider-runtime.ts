/**
 * What a node runs for `/anthropic` tests: a snapshot payload with the `anthropic` provider at a base URL
 * (a stand-in's) and its API key sealed under the data key as the control plane ships it, and the virtual
 * keys given (by default one, `key_1` of `user_1`, no servers), turned into a Runtime by the real
 * `buildRuntime`. No signing: tests hand the runtime to a RuntimeHolder themselves.
 */
import { buildRuntime, type Runtime } from '../../data-plane/config/runtime.js';
import { hashKey } from '../../data-plane/snapshot/key-hash.js';
import type { KeyEntry, ModelPrice, SnapshotPayload } from '../../data-plane/snapshot/schema.js';
import { generateDataKey, sealValue } from '../../data-plane/snapshot/seal.js';

/** Every Claude model at one USD per million tokens of each kind. */
export const FLAT_PRICES: ModelPrice[] = [{ model: 'claude-*', inputPerMTok: 1, outputPerMTok: 1, cacheWritePerMTok: 1, cacheReadPerMTok: 1 }];

/** A key entry of `user_1` for the virtual key text `key`, with no servers (an LLM-only key). */
export function llmKey(id: string, key: string, extra: Partial<KeyEntry> = {}): KeyEntry {
  return { id, name: id, hash: hashKey(key), userId: 'user_1', servers: [], expiresAt: null, revoked: false, ...extra };
}

export interface ProviderRuntimeOptions {
  /** The provider's base URL (the stand-in's). */
  baseUrl: string;
  /** The provider's API key, sealed into the payload. */
  apiKey: string;
  /** The virtual keys: one key text (`key_1`, no limits), or entries (llmKey). */
  keys: string | KeyEntry[];
  prices?: ModelPrice[];
}

export function providerSnapshot(options: ProviderRuntimeOptions): { payload: SnapshotPayload; dataKey: Uint8Array } {
  const dataKey = generateDataKey();
  const payload: SnapshotPayload = {
    format: 1,
    version: 1,
    issuedAt: new Date().toISOString(),
    trustedKeys: [{ kty: 'OKP', crv: 'Ed25519', x: 'AAAA', kid: 'k' }],
    servers: [],
    keys: typeof options.keys === 'string' ? [llmKey('key_1', options.keys, { name: 'k' })] : options.keys,
    users: [{ id: 'user_1', email: 'dev@example.com' }],
    sessionSecrets: null,
    providers: [
      {
        id: 'p1',
        name: 'anthropic',
        kind: 'ANTHROPIC',
        baseUrl: { kind: 'plain', value: options.baseUrl },
        apiKey: sealValue(dataKey, options.apiKey, 'provider:anthropic:api_key'),
        prices: options.prices ?? FLAT_PRICES,
      },
    ],
  };
  return { payload, dataKey };
}

export function providerRuntime(options: ProviderRuntimeOptions): Runtime {
  const { payload, dataKey } = providerSnapshot(options);
  return buildRuntime(payload, dataKey, {}).runtime;
}
