/**
 * Test harness for the data plane: builds snapshots with the real contract functions (sign, seal,
 * verify), turns them into a Runtime with `buildRuntime`, and runs a node's HTTP server on an ephemeral
 * port with a real `UpstreamPool`. Also an MCP SDK client against the node's `/mcp`.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { buildRuntime, RuntimeHolder, type BuildRuntimeResult } from '../../data-plane/config/runtime.js';
import { createDataPlaneServer, type DataPlaneServerOptions } from '../../data-plane/node/data-plane-server.js';
import { createLogger, type Logger } from '../../data-plane/log.js';
import { hashKey } from '../../data-plane/snapshot/key-hash.js';
import { sessionSecretAad, type KeyEntry, type ServerEntry, type SessionSecretEntry, type SnapshotPayload, type ValueRef } from '../../data-plane/snapshot/schema.js';
import { generateDataKey, sealValue } from '../../data-plane/snapshot/seal.js';
import { generateSigningKey, importSigningKey, signSnapshot, type SigningKey } from '../../data-plane/snapshot/sign.js';
import { TrustStore, verifySnapshot } from '../../data-plane/snapshot/verify.js';
import { UpstreamPool, type UpstreamPoolOptions } from '../../data-plane/upstream/pool.js';
import { SHARED_IDENTITY, userIdentity, type CredentialSource } from '../../data-plane/pipeline/credentials.js';
import { TEST_METRICS_TOKEN } from '../support/node-metrics.js';

/** A value in a test server spec: `{secret}` is sealed, `{env}` is an env reference, a string is plain. */
export type TestValue = string | { secret: string } | { env: string };

export interface TestServer {
  name: string;
  connectionType?: ServerEntry['connectionType'];
  url?: TestValue | null;
  stdio?: { command: string; args: string[]; env: Record<string, TestValue> } | null;
  authType?: ServerEntry['authType'];
  headers?: Record<string, TestValue>;
  toolsToExecute?: string[];
  allowedExtraHeaders?: string[];
  toolTimeoutMs?: number;
  disabled?: boolean;
}

export interface TestKey {
  name: string;
  servers: { server: string; tools: string[] }[];
  expiresAt?: string | null;
  revoked?: boolean;
  userId?: string;
}

export interface TestConfig {
  version?: number;
  servers: TestServer[];
  keys: TestKey[];
  /** Users (default: one, `user_1`). */
  users?: { id: string; email: string }[];
  /** Session secrets (id → base64url secret), sealed into the snapshot; none by default. */
  sessionSecrets?: { current: { id: string; secret: string }; previous?: { id: string; secret: string } };
}

export interface BuiltSnapshot {
  payload: SnapshotPayload;
  dataKey: Uint8Array;
  /** Key name → plaintext value (what a developer would hold). */
  keyValues: Record<string, string>;
}

let signing: { key: SigningKey; trust: TrustStore } | null = null;

async function signingMaterial(): Promise<{ key: SigningKey; trust: TrustStore }> {
  if (!signing) {
    const key = await importSigningKey(await generateSigningKey('test-kid'));
    signing = { key, trust: await TrustStore.fromJwks([key.publicJwk]) };
  }
  return signing;
}

export function newKeyValue(): string {
  return `gk_${randomBytes(32).toString('base64url')}`;
}

/**
 * Builds a payload the way the control plane would (secrets sealed under a fresh data key), signs it,
 * and returns what `verifySnapshot` accepts, so tests exercise the real contract end to end.
 * `keyValues` may pin key values across versions (so a key survives a config change).
 */
export async function buildSnapshot(config: TestConfig, keyValues: Record<string, string> = {}): Promise<BuiltSnapshot> {
  const dataKey = generateDataKey();
  const values: Record<string, string> = { ...keyValues };
  const ref = (value: TestValue, aad: string): ValueRef => {
    if (typeof value === 'string') return { kind: 'plain', value };
    if ('secret' in value) return sealValue(dataKey, value.secret, aad);
    return { kind: 'env', name: value.env };
  };

  const servers: ServerEntry[] = config.servers.map((s) => {
    const id = `srv_${s.name}`;
    const type = s.connectionType ?? 'HTTP';
    return {
      id,
      name: s.name,
      connectionType: type,
      url: s.url === undefined || s.url === null ? null : ref(s.url, `server:${id}:url`),
      stdio: s.stdio
        ? {
            command: s.stdio.command,
            args: s.stdio.args,
            env: Object.fromEntries(Object.entries(s.stdio.env).map(([k, v]) => [k, ref(v, `server:${id}:env:${k}`)])),
          }
        : null,
      authType: s.authType ?? (s.headers && Object.keys(s.headers).length > 0 ? 'HEADERS' : 'NONE'),
      headers: Object.fromEntries(Object.entries(s.headers ?? {}).map(([k, v]) => [k, ref(v, `server:${id}:header:${k}`)])),
      perUserHeaderKeys: [],
      toolsToExecute: s.toolsToExecute ?? ['*'],
      allowedExtraHeaders: s.allowedExtraHeaders ?? [],
      toolTimeoutMs: s.toolTimeoutMs ?? 5_000,
      disabled: s.disabled ?? false,
    };
  });

  const keys: KeyEntry[] = config.keys.map((k) => {
    const value = (values[k.name] ??= newKeyValue());
    return {
      id: `key_${k.name}`,
      name: k.name,
      hash: hashKey(value),
      userId: k.userId ?? 'user_1',
      servers: k.servers,
      expiresAt: k.expiresAt ?? null,
      revoked: k.revoked ?? false,
    };
  });

  const { key, trust } = await signingMaterial();
  const unsigned: SnapshotPayload = {
    format: 1,
    version: config.version ?? 1,
    issuedAt: new Date().toISOString(),
    trustedKeys: [key.publicJwk],
    servers,
    keys,
    users: config.users ?? [{ id: 'user_1', email: 'dev@example.com' }],
    sessionSecrets: config.sessionSecrets
      ? {
          current: sealSessionSecret(dataKey, config.sessionSecrets.current),
          previous: config.sessionSecrets.previous ? sealSessionSecret(dataKey, config.sessionSecrets.previous) : null,
        }
      : null,
  };
  const signed = await signSnapshot(unsigned, key);
  const payload = await verifySnapshot(signed, trust, { currentVersion: null });
  return { payload, dataKey, keyValues: values };
}

function sealSessionSecret(dataKey: Uint8Array, entry: { id: string; secret: string }): SessionSecretEntry {
  return { id: entry.id, secret: sealValue(dataKey, entry.secret, sessionSecretAad(entry.id)) };
}

/** Log lines captured in memory (so tests can also assert nothing secret was logged). */
export class LogCapture {
  readonly lines: string[] = [];
  readonly stream = new Writable({
    write: (chunk: Buffer, _encoding, done) => {
      this.lines.push(chunk.toString('utf8'));
      done();
    },
  });
  text(): string {
    return this.lines.join('');
  }
}

export interface TestNode {
  url: string;
  mcpUrl: string;
  holder: RuntimeHolder;
  pool: UpstreamPool;
  logs: LogCapture;
  logger: Logger;
  server: Server;
  /** Builds a Runtime from a snapshot and swaps it in, as the node process does on a push. */
  apply(snapshot: BuiltSnapshot, env?: Record<string, string | undefined>): BuildRuntimeResult;
  close(): Promise<void>;
}

export async function startTestNode(
  options: {
    pool?: Partial<Omit<UpstreamPoolOptions, 'holder' | 'logger'>>;
    now?: () => number;
    maxBodyBytes?: number;
    allowedOrigins?: string[];
    /** The token `/metrics` wants (default TEST_METRICS_TOKEN); null: none configured. */
    metricsToken?: string | null;
    /** Pipeline hooks (limits, credentials, record sinks). */
    hooks?: Pick<DataPlaneServerOptions, 'limiter' | 'credentials' | 'sinks' | 'onRecord' | 'guard'>;
  } = {},
): Promise<TestNode> {
  const logs = new LogCapture();
  const logger = createLogger('test-node', { level: 'debug', destination: logs.stream });
  const holder = new RuntimeHolder();
  // connectTimeoutMs bounds the SDK connections only (stdio and legacy SSE upstreams): a stdio fixture is a
  // node process loading tsx and the SDK, which in a full parallel run on two cores took over 5 s to answer
  // `initialize` (pooled.test.ts failed that way under load, passing alone).
  const pool = new UpstreamPool({ holder, logger, backoff: { initialMs: 50, maxMs: 200 }, connectTimeoutMs: 20_000, ...options.pool });
  const server = createDataPlaneServer({
    holder,
    pool,
    logger,
    ...(options.now ? { now: options.now } : {}),
    ...(options.maxBodyBytes ? { maxBodyBytes: options.maxBodyBytes } : {}),
    ...(options.allowedOrigins ? { allowedOrigins: options.allowedOrigins } : {}),
    metricsToken: options.metricsToken === undefined ? TEST_METRICS_TOKEN : options.metricsToken,
    ...options.hooks,
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    mcpUrl: `${url}/mcp`,
    holder,
    pool,
    logs,
    logger,
    server,
    apply(snapshot, env = {}) {
      const built = buildRuntime(snapshot.payload, snapshot.dataKey, env);
      holder.set(built.runtime);
      return built;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await pool.close();
    },
  };
}

/** An MCP SDK client connected to the node's `/mcp` with a virtual key (and optional extra headers). */
export async function connectClient(mcpUrl: string, keyValue: string | null, headers: Record<string, string> = {}): Promise<Client> {
  const client = new Client({ name: `test-${randomUUID().slice(0, 8)}`, version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(mcpUrl), {
    requestInit: { headers: { ...(keyValue === null ? {} : { Authorization: `Bearer ${keyValue}` }), ...headers } },
  });
  await client.connect(transport);
  return client;
}

/** The text of the first content block of a tool result. */
export function resultText(result: unknown): string {
  const content = (result as { content?: { type: string; text?: string }[] }).content ?? [];
  return content[0]?.text ?? '';
}

/** The `_meta` a client on MCP 2026-07-28 puts on every request (basic §request metadata). */
export const MODERN_META = {
  'io.modelcontextprotocol/protocolVersion': '2026-07-28',
  'io.modelcontextprotocol/clientCapabilities': {},
  'io.modelcontextprotocol/clientInfo': { name: 'modern-test', version: '1.0.0' },
} as const;

/** POSTs a raw body to `/mcp` (for HTTP-level assertions the SDK client would hide). */
export async function postMcp(mcpUrl: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(mcpUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

/**
 * A credentials stage for tests: `perUserServer` gets each caller's own token (`x-user-token:
 * token-of-<user id>`, identity `user:<id>`); every other server its configured headers (identity `shared`).
 */
export function perUserTokens(perUserServer: string): CredentialSource {
  return {
    resolve(server, caller) {
      if (server.name !== perUserServer) return { headers: server.headers, identity: SHARED_IDENTITY };
      return { headers: { 'x-user-token': `token-of-${caller.user.id}` }, identity: userIdentity(caller.user.id) };
    },
  };
}
