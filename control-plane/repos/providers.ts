/**
 * LLM providers (SPEC §2; `anthropic` first): base URL, API key (sealed with secret-box, or `env.NAME`
 * resolved on each node) and the model price table nodes charge usage with. `upsertProvider` creates or
 * updates by name; every write bumps the config version (providers are in snapshots, change-tracked by
 * 0012_governance). Reads show the key's redacted preview or reference, never its value, and the base URL
 * with any credential in it as `***` (kept whole and sealed beside it: url-secrets.ts, 0021_url_secrets).
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { ModelPriceSchema, type ModelPrice } from '../../data-plane/snapshot/schema.js';
import { isCountableUsd, MAX_USD } from '../../data-plane/snapshot/budget-window.js';
import { displaySecret, parseEnvRef, storeSecret, type SecretBox, type StoredSecret } from '../crypto/secret-box.js';
import type { ProviderRow } from '../db/schema.js';
import { bumpConfigVersion } from './config-state.js';
import { InputError, IssueList } from './errors.js';
import { inTransaction, nowIso, type Db } from './transaction.js';
import { carriesCredential, containsRedaction, keptSealedUrl, sameStoredUrl, shownUrl, storeUrl, urlProblem, type StoredUrl } from './url-secrets.js';

export const PROVIDER_KINDS = ['ANTHROPIC'] as const;
export type ProviderKind = (typeof PROVIDER_KINDS)[number];

export interface Provider {
  id: string;
  name: string;
  kind: ProviderKind;
  /** URL or `env.NAME`; credential-bearing parts show as `***` (url-secrets.ts). */
  baseUrl: string;
  /** `sk-a…x9f2` or `env.NAME`: never the value. */
  apiKeyPreview: string;
  prices: ModelPrice[];
  createdAt: string;
  updatedAt: string;
}

export interface UpsertProviderInput {
  name: string;
  kind?: ProviderKind | null;
  /** Required when creating. */
  baseUrl?: string | null;
  /** A value (sealed at rest) or `env.NAME`; required when creating, absent keeps the stored one. */
  apiKey?: string | null;
  /** Replaces the whole table when given. */
  prices?: readonly ModelPrice[] | null;
}

/** The AAD of a provider's API key: binds the ciphertext to its row. */
export function providerApiKeyAad(id: string): string {
  return `providers:${id}:api_key`;
}

const StoredSecretSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('enc'), ciphertext: z.string(), preview: z.string() }),
  z.object({ kind: z.literal('env'), name: z.string() }),
]);

/** The AAD of a provider's sealed credential-bearing base URL (0021_url_secrets). */
export function providerBaseUrlAad(id: string): string {
  return `providers:${id}:base_url`;
}

export function parseProviderApiKey(json: string): StoredSecret {
  return StoredSecretSchema.parse(JSON.parse(json));
}

export function parsePrices(json: string): ModelPrice[] {
  return z.array(ModelPriceSchema).parse(JSON.parse(json));
}

function toProvider(row: ProviderRow): Provider {
  return {
    id: row.id,
    name: row.name,
    kind: row.kind,
    baseUrl: row.base_url,
    apiKeyPreview: displaySecret(parseProviderApiKey(row.api_key)),
    prices: parsePrices(row.prices),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

const PROVIDER_NAME = /^[a-z][a-z0-9_-]{0,39}$/;

function normaliseBaseUrl(raw: string, issues: IssueList): string {
  const value = raw.trim();
  if (parseEnvRef(value)) return value;
  const problem = urlProblem(value, { requireHttps: false });
  if (problem === 'credentials') {
    // The one rule for every stored URL (url-secrets.ts): apiKey is the write-only place for a key.
    issues.add('INVALID_URL', 'baseUrl', 'baseUrl must not embed credentials; pass the key as apiKey');
  } else if (problem !== null) {
    issues.add('INVALID_URL', 'baseUrl', 'baseUrl must be an http(s) URL or env.NAME');
    return value;
  }
  return value.replace(/\/+$/, '');
}

function storedBaseUrl(row: Pick<ProviderRow, 'base_url' | 'base_url_secret'>): StoredUrl {
  return { shown: row.base_url, sealed: row.base_url_secret };
}

/**
 * Column values for a checked base URL: a credential-bearing one stored redacted with its whole text
 * sealed; the redacted form given back unchanged keeps the sealed URL, and `***` with other changes is
 * refused (the real value is then unknown).
 */
function baseUrlColumns(box: SecretBox, id: string, value: string, current: ProviderRow | undefined, issues: IssueList): { base_url: string; base_url_secret: string | null } {
  if (parseEnvRef(value)) return { base_url: value, base_url_secret: null };
  const kept = keptSealedUrl(current ? storedBaseUrl(current) : null, value);
  if (kept !== null) return { base_url: value, base_url_secret: kept };
  if (containsRedaction(value)) {
    issues.add('INVALID_URL', 'baseUrl', 'baseUrl contains *** (a hidden part as reads show it): give the whole URL, or the stored value unchanged');
    return { base_url: value, base_url_secret: null };
  }
  const stored = storeUrl(box, value, providerBaseUrlAad(id));
  return { base_url: stored.shown, base_url_secret: stored.sealed };
}

/**
 * What a plan shows for a base URL given in a document, or null when it is what is stored (the redacted
 * form given back, or a whole URL equal to the sealed one, compared by opening it as for the API key).
 */
export function plannedBaseUrl(box: SecretBox, row: ProviderRow, given: string): string | null {
  const value = given.trim().replace(/\/+$/, '');
  if (sameStoredUrl(box, storedBaseUrl(row), value, providerBaseUrlAad(row.id))) return null;
  return parseEnvRef(value) || containsRedaction(value) ? value : shownUrl(value);
}

/** The base URL nodes connect to, in this process only (sealed again for the snapshot): never show it. */
export function baseUrlText(box: SecretBox, row: Pick<ProviderRow, 'id' | 'base_url' | 'base_url_secret'>): string {
  return row.base_url_secret === null ? row.base_url : box.open(row.base_url_secret, providerBaseUrlAad(row.id));
}

function normalisePrices(prices: readonly ModelPrice[], issues: IssueList): ModelPrice[] {
  if (!issues.withinListLimit(prices, 'prices')) return [];
  const out: ModelPrice[] = [];
  const priced = new Set<string>();
  prices.forEach((p, i) => {
    const model = p.model.trim();
    if (model.length === 0 || model.length > 200 || (model.includes('*') && !/^[^*]*\*$/.test(model))) {
      issues.add('INVALID_VALUE', `prices.${i}.model`, 'model must be a model name, or a prefix ending in "*"');
      return;
    }
    for (const field of ['inputPerMTok', 'outputPerMTok', 'cacheWritePerMTok', 'cacheReadPerMTok'] as const) {
      if (!isCountableUsd(p[field], false)) {
        issues.add('INVALID_VALUE', `prices.${i}.${field}`, `${field} must be from 0 to ${MAX_USD} (USD per million tokens)`);
        return;
      }
    }
    // A Set, not a scan of `out` per price (see normaliseToolList: lists are caller input).
    if (priced.has(model)) {
      issues.add('DUPLICATE', `prices.${i}.model`, `model "${model}" is priced twice`);
      return;
    }
    priced.add(model);
    out.push({ model, inputPerMTok: p.inputPerMTok, outputPerMTok: p.outputPerMTok, cacheWritePerMTok: p.cacheWritePerMTok, cacheReadPerMTok: p.cacheReadPerMTok });
  });
  return out;
}

export async function getProviderByName(db: Db, name: string): Promise<Provider | null> {
  const row = await db.selectFrom('providers').selectAll().where('name', '=', name.trim()).executeTakeFirst();
  return row ? toProvider(row) : null;
}

export async function listProviders(db: Db): Promise<Provider[]> {
  const rows = await db.selectFrom('providers').selectAll().orderBy('name').execute();
  return rows.map(toProvider);
}

/** Creates the provider named `input.name`, or updates the fields given. */
export async function upsertProvider(db: Db, box: SecretBox, input: UpsertProviderInput): Promise<Provider> {
  const issues = new IssueList();
  const name = input.name.trim();
  if (!PROVIDER_NAME.test(name)) issues.add('INVALID_NAME', 'name', 'name must be 1-40 lower-case letters, digits, "_" or "-", starting with a letter (e.g. anthropic)');
  const baseUrl = input.baseUrl != null ? normaliseBaseUrl(input.baseUrl, issues) : undefined;
  const prices = input.prices != null ? normalisePrices(input.prices, issues) : undefined;
  if (input.apiKey != null && input.apiKey.trim().length === 0) issues.add('REQUIRED', 'apiKey', 'apiKey must not be empty');
  issues.throwIfAny();

  return inTransaction(db, async (trx) => {
    await bumpConfigVersion(trx);
    const existing = await trx.selectFrom('providers').selectAll().where('name', '=', name).executeTakeFirst();
    const at = nowIso();
    if (!existing) {
      if (baseUrl === undefined) issues.add('REQUIRED', 'baseUrl', 'baseUrl is required for a new provider');
      if (input.apiKey == null) issues.add('REQUIRED', 'apiKey', 'apiKey is required for a new provider (a value or env.NAME)');
      issues.throwIfAny();
      const id = randomUUID();
      const urlColumns = baseUrlColumns(box, id, baseUrl!, undefined, issues);
      issues.throwIfAny();
      const row: ProviderRow = {
        id,
        name,
        kind: input.kind ?? 'ANTHROPIC',
        ...urlColumns,
        api_key: JSON.stringify(storeSecret(box, input.apiKey!.trim(), providerApiKeyAad(id))),
        prices: JSON.stringify(prices ?? []),
        created_at: at,
        updated_at: at,
      };
      await trx.insertInto('providers').values(row).execute();
      return toProvider(row);
    }
    const urlColumns = baseUrl !== undefined ? baseUrlColumns(box, existing.id, baseUrl, existing, issues) : {};
    issues.throwIfAny();
    await trx
      .updateTable('providers')
      .set({
        ...(input.kind != null ? { kind: input.kind } : {}),
        ...urlColumns,
        ...(input.apiKey != null ? { api_key: JSON.stringify(storeSecret(box, input.apiKey.trim(), providerApiKeyAad(existing.id))) } : {}),
        ...(prices !== undefined ? { prices: JSON.stringify(prices) } : {}),
        updated_at: at,
      })
      .where('id', '=', existing.id)
      .execute();
    const updated = await getProviderByName(trx, name);
    if (!updated) throw new Error('provider vanished inside its own transaction');
    return updated;
  });
}

export async function deleteProvider(db: Db, name: string): Promise<Provider> {
  return inTransaction(db, async (trx) => {
    await bumpConfigVersion(trx);
    const current = await getProviderByName(trx, name);
    if (!current) throw new InputError('NOT_FOUND', 'name', `no provider named "${name}"`);
    await trx.deleteFrom('providers').where('id', '=', current.id).execute();
    return current;
  });
}

/**
 * Seals the credential-bearing base URLs of rows written before 0021_url_secrets (stored and shown whole
 * then), so reads stop showing them and snapshots carry them sealed. Idempotent; run at startup, where the
 * master key is at hand. Returns how many rows it sealed.
 */
export async function sealProviderBaseUrls(db: Db, box: SecretBox): Promise<number> {
  const rows = await db.selectFrom('providers').select(['id', 'base_url']).where('base_url_secret', 'is', null).execute();
  const found = rows.filter((row) => parseEnvRef(row.base_url) === null && carriesCredential(row.base_url));
  if (found.length === 0) return 0;
  await inTransaction(db, async (trx) => {
    // Providers are in snapshots: nodes get the sealed form with the next version.
    await bumpConfigVersion(trx);
    for (const row of found) {
      const stored = storeUrl(box, row.base_url, providerBaseUrlAad(row.id));
      await trx.updateTable('providers').set({ base_url: stored.shown, base_url_secret: stored.sealed }).where('id', '=', row.id).where('base_url_secret', 'is', null).execute();
    }
  });
  return found.length;
}
