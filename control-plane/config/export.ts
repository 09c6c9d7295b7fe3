/**
 * `exportConfig`: the stored configuration as a document that `applyConfig` reads back as a no-op, in
 * Gatehouse's camelCase shape, entries sorted by name so exports diff cleanly. Secrets appear only as
 * references: an `env.NAME` value as itself, a sealed value as `{stored: "<preview>"}`, which apply reads
 * as "keep the value stored under this name" (a sealed value cannot leave the control plane). It reads
 * only; it never opens a secret.
 */
import { listAllAccessProfiles, type AccessProfile } from '../repos/access-profiles.js';
import { parsePrices, parseProviderApiKey } from '../repos/providers.js';
import type { Kysely } from 'kysely';
import { displaySecret, type StoredSecret } from '../crypto/secret-box.js';
import type { Database } from '../db/schema.js';
import { listAllMcpServers, type McpServer } from '../repos/mcp-servers.js';
import { listAllUsers } from '../repos/users.js';
import { listAllVirtualKeys } from '../repos/virtual-keys.js';
import { DOCUMENT_VERSION, STORED_MARKER_KEY } from './document.js';

export type SecretReference = string | { [STORED_MARKER_KEY]: string };

export interface ExportedServer {
  name: string;
  connectionType: string;
  connectionString?: string;
  stdio?: { command: string; args: string[]; env: Array<{ name: string; value: SecretReference }> };
  authType: string;
  headers: Array<{ name: string; value: SecretReference }>;
  perUserHeaderKeys: string[];
  toolsToExecute: string[];
  allowedExtraHeaders: string[];
  toolTimeoutMs: number;
  disabled: boolean;
}

export interface ExportedKey {
  name: string;
  user: string;
  servers: Array<{ server: string; tools: string[] }>;
  expiresAt?: string;
  revoked?: true;
  allowNoServers?: true;
  budgets?: Array<{ maxUsd: number; period: string }>;
  rateLimit?: { requestsPerMinute?: number; tokensPerMinute?: number };
}

export interface ConfigDocument {
  version: number;
  mcpServers: ExportedServer[];
  users: Array<{ email: string; name?: string }>;
  virtualKeys: ExportedKey[];
  /** Present when any exists. */
  accessProfiles?: ExportedProfile[];
  /** Present when any exists; API keys as references only. */
  providers?: ExportedProvider[];
}

export interface ExportedProvider {
  name: string;
  baseUrl: string;
  apiKey: SecretReference;
  prices: Array<{ model: string; inputPerMTok: number; outputPerMTok: number; cacheWritePerMTok: number; cacheReadPerMTok: number }>;
}

export interface ExportedProfile {
  name: string;
  description?: string;
  servers: Array<{ server: string; tools: string[] }>;
  budgets?: Array<{ maxUsd: number; period: string }>;
  rateLimit?: { requestsPerMinute?: number; tokensPerMinute?: number };
  limitsFallback?: 'LOCAL_ALLOWANCE';
  keyLifetimeDays?: number;
}

function exportRateLimit(limit: { requestsPerMinute: number | null; tokensPerMinute: number | null } | null): { rateLimit?: { requestsPerMinute?: number; tokensPerMinute?: number } } {
  if (limit === null) return {};
  return {
    rateLimit: {
      ...(limit.requestsPerMinute !== null ? { requestsPerMinute: limit.requestsPerMinute } : {}),
      ...(limit.tokensPerMinute !== null ? { tokensPerMinute: limit.tokensPerMinute } : {}),
    },
  };
}

function exportProfile(p: AccessProfile): ExportedProfile {
  return {
    name: p.name,
    ...(p.description !== null ? { description: p.description } : {}),
    servers: p.servers.map((g) => ({ server: g.server, tools: g.tools })),
    ...(p.budgets.length > 0 ? { budgets: p.budgets.map((b) => ({ maxUsd: b.maxUsd, period: b.period })) } : {}),
    ...exportRateLimit(p.rateLimit),
    ...(p.limitsFallback === 'LOCAL_ALLOWANCE' ? { limitsFallback: 'LOCAL_ALLOWANCE' as const } : {}),
    ...(p.keyLifetimeDays !== null ? { keyLifetimeDays: p.keyLifetimeDays } : {}),
  };
}

function reference(secret: StoredSecret): SecretReference {
  return secret.kind === 'env' ? displaySecret(secret) : { [STORED_MARKER_KEY]: secret.preview };
}

function entries(map: Record<string, StoredSecret>): Array<{ name: string; value: SecretReference }> {
  return Object.entries(map).map(([name, secret]) => ({ name, value: reference(secret) }));
}

function exportServer(s: McpServer): ExportedServer {
  return {
    name: s.name,
    connectionType: s.connectionType,
    ...(s.connectionString !== null ? { connectionString: s.connectionString } : {}),
    ...(s.stdio ? { stdio: { command: s.stdio.command, args: s.stdio.args, env: entries(s.stdio.env) } } : {}),
    authType: s.authType,
    headers: entries(s.headers),
    perUserHeaderKeys: s.perUserHeaderKeys,
    toolsToExecute: s.toolsToExecute,
    allowedExtraHeaders: s.allowedExtraHeaders,
    toolTimeoutMs: s.toolTimeoutMs,
    disabled: s.disabled,
  };
}

const byText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

export async function exportConfig(db: Kysely<Database>): Promise<ConfigDocument> {
  // One transaction, so the three reads see one state of the configuration.
  return db.transaction().execute(async (trx) => {
    const servers = await listAllMcpServers(trx);
    const users = await listAllUsers(trx);
    const keys = await listAllVirtualKeys(trx);
    const profiles = await listAllAccessProfiles(trx);
    const providers = await trx.selectFrom('providers').selectAll().orderBy('name').execute();
    const emails = new Map(users.map((u) => [u.id, u.email]));
    return {
      version: DOCUMENT_VERSION,
      mcpServers: servers.map(exportServer).sort((a, b) => byText(a.name, b.name)),
      users: users.map((u) => ({ email: u.email, ...(u.name !== null ? { name: u.name } : {}) })).sort((a, b) => byText(a.email, b.email)),
      virtualKeys: keys
        .map(
          (k): ExportedKey => ({
            name: k.name,
            user: emails.get(k.userId) ?? k.userId,
            servers: k.servers.map((g) => ({ server: g.server, tools: g.tools })),
            ...(k.expiresAt !== null ? { expiresAt: k.expiresAt } : {}),
            ...(k.revokedAt !== null ? { revoked: true as const } : {}),
            ...(k.servers.length === 0 ? { allowNoServers: true as const } : {}),
            ...(k.budgets.length > 0 ? { budgets: k.budgets.map((b) => ({ maxUsd: b.maxUsd, period: b.period })) } : {}),
            ...(k.rateLimit !== null
              ? {
                  rateLimit: {
                    ...(k.rateLimit.requestsPerMinute !== null ? { requestsPerMinute: k.rateLimit.requestsPerMinute } : {}),
                    ...(k.rateLimit.tokensPerMinute !== null ? { tokensPerMinute: k.rateLimit.tokensPerMinute } : {}),
                  },
                }
              : {}),
          }),
        )
        .sort((a, b) => byText(`${a.user}/${a.name}`, `${b.user}/${b.name}`)),
      ...(profiles.length > 0 ? { accessProfiles: profiles.map(exportProfile).sort((a, b) => byText(a.name, b.name)) } : {}),
      ...(providers.length > 0
        ? { providers: providers.map((p) => ({ name: p.name, baseUrl: p.base_url, apiKey: reference(parseProviderApiKey(p.api_key)), prices: parsePrices(p.prices) })) }
        : {}),
    };
  });
}
