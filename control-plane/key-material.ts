/**
 * The control plane's long-lived key material: the master key (secrets at rest), the snapshot signing
 * keys, and the shared node token (when enabled). Each comes from the environment when set, else from
 * a file in the data dir, generated on first start with a log line that says where (never the value).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateSigningKey, type StoredSigningKey } from '../data-plane/snapshot/sign.js';
import { issueToken, NODE_TOKEN_PREFIX } from './crypto/tokens.js';
import type { Logger } from './log.js';
import { parseSigningKeyFile, readSigningKeyFile, signingKeyPath, writeSecretFile, writeSigningKeyFile, type SigningKeyFile } from './signing-keys.js';

export interface KeyMaterial {
  masterKey: Uint8Array;
  /** Every key nodes should trust; `activeKid` is the one that signs. */
  signingKeys: StoredSigningKey[];
  activeKid: string;
  /**
   * The shared node token's plaintext (nodes present it, the control plane compares hashes), or null when
   * this control plane accepts enrolled nodes only.
   */
  nodeToken: string | null;
}

function decodeMasterKey(text: string): Uint8Array {
  const trimmed = text.trim();
  const bytes = /^[0-9a-fA-F]{64}$/.test(trimmed) ? Buffer.from(trimmed, 'hex') : Buffer.from(trimmed, 'base64');
  if (bytes.length !== 32) throw new Error('GATEHOUSE_MASTER_KEY must be 32 bytes, as 64 hex digits or base64');
  return new Uint8Array(bytes);
}

/**
 * `sharedNodeToken`: whether nodes may authenticate with one shared token (`npm start`, simple deployments;
 * weaker than per-node enrollment). When true and GATEHOUSE_NODE_TOKEN is unset, one is generated into the
 * data dir.
 */
export async function loadKeyMaterial(dataDir: string, env: NodeJS.ProcessEnv, log: Logger, sharedNodeToken = true): Promise<KeyMaterial> {
  mkdirSync(dataDir, { recursive: true });

  let masterKey: Uint8Array;
  const masterPath = join(dataDir, 'master.key');
  if (env.GATEHOUSE_MASTER_KEY) {
    masterKey = decodeMasterKey(env.GATEHOUSE_MASTER_KEY);
  } else if (existsSync(masterPath)) {
    masterKey = decodeMasterKey(readFileSync(masterPath, 'utf8'));
  } else {
    masterKey = new Uint8Array(randomBytes(32));
    writeSecretFile(masterPath, Buffer.from(masterKey).toString('base64') + '\n');
    log.warn({ path: masterPath }, 'generated a new master key for secrets at rest; back it up, or set GATEHOUSE_MASTER_KEY');
  }

  let signing: SigningKeyFile | null = env.GATEHOUSE_SIGNING_KEYS ? parseSigningKeyFile(env.GATEHOUSE_SIGNING_KEYS) : readSigningKeyFile(dataDir);
  if (!signing) {
    const key = await generateSigningKey();
    signing = { active: key.kid, keys: [key] };
    writeSigningKeyFile(dataDir, signing);
    log.warn({ path: signingKeyPath(dataDir), kid: key.kid }, 'generated a new Ed25519 snapshot signing key');
  }

  let nodeToken: string | null;
  const nodeTokenPath = join(dataDir, 'node-token');
  if (!sharedNodeToken) {
    nodeToken = null;
  } else if (env.GATEHOUSE_NODE_TOKEN) {
    nodeToken = env.GATEHOUSE_NODE_TOKEN;
  } else if (existsSync(nodeTokenPath)) {
    nodeToken = readFileSync(nodeTokenPath, 'utf8').trim();
  } else {
    nodeToken = issueToken(NODE_TOKEN_PREFIX).value;
    writeSecretFile(nodeTokenPath, nodeToken + '\n');
    log.warn({ path: nodeTokenPath }, 'generated a new node token; give it to data-plane nodes as GATEHOUSE_NODE_TOKEN');
  }

  return { masterKey, signingKeys: signing.keys, activeKid: signing.active, nodeToken };
}
