/**
 * Storage of upstream OAuth state (0011_oauth): registered clients per (server, issuer), credentials
 * (the shared one of an OAUTH server, or one user's), and pending authorization flows found by the hash
 * of their state. Token values go in and out only sealed (secret-box, AAD naming the row and field);
 * callers open them. It does no HTTP and decides nothing about refresh (control-plane/oauth/ does).
 */
import { randomUUID } from 'node:crypto';
import type { Selectable } from 'kysely';
import type { OAuthClientsTable, OAuthCredentialStatus, OAuthCredentialsTable, OAuthFlowsTable, ServerOAuthSettingsTable } from '../db/schema.js';
import type { SecretBox } from '../crypto/secret-box.js';
import { inTransaction, nowIso, type Db } from './transaction.js';
import { carriesCredential, containsRedaction, keptSealedUrl, openStoredUrl, storeUrl } from './url-secrets.js';

export type OAuthClientRow = Selectable<OAuthClientsTable>;
export type OAuthCredentialRow = Selectable<OAuthCredentialsTable>;
export type OAuthFlowRow = Selectable<OAuthFlowsTable>;
export type ServerOAuthSettingsRow = Selectable<ServerOAuthSettingsTable>;

/** The unique owner key of a credential: the user's id, or '' for a server's shared credential. */
export function ownerKey(userId: string | null): string {
  return userId ?? '';
}

// ---- AAD strings: whoever opens a value must use the same one. ----

export function credentialAad(credentialId: string, field: 'access_token' | 'refresh_token'): string {
  return `oauth_credentials:${credentialId}:${field}`;
}

export function clientSecretAad(clientRowId: string): string {
  return `oauth_clients:${clientRowId}:client_secret`;
}

export function flowVerifierAad(stateHash: string): string {
  return `oauth_flows:${stateHash}:code_verifier`;
}

export function flowStartUrlAad(stateHash: string): string {
  return `oauth_flows:${stateHash}:start_url`;
}

export function flowResourceAad(stateHash: string): string {
  return `oauth_flows:${stateHash}:resource`;
}

export function credentialResourceAad(credentialId: string): string {
  return `oauth_credentials:${credentialId}:resource`;
}

export function settingsSecretAad(serverId: string): string {
  return `server_oauth_settings:${serverId}:client_secret`;
}

/** The URL fields of a server's OAuth settings, each kept by url-secrets.ts's rule (0021_url_secrets). */
export const SETTINGS_URL_FIELDS = ['authorize_url', 'token_url', 'registration_url', 'resource'] as const;
export type SettingsUrlField = (typeof SETTINGS_URL_FIELDS)[number];
type SettingsUrlColumns = { [F in SettingsUrlField]: string | null } & { [F in SettingsUrlField as `${F}_secret`]: string | null };

export function settingsUrlAad(serverId: string, field: SettingsUrlField): string {
  return `server_oauth_settings:${serverId}:${field}`;
}

// ---- Resource indicators of flows and credentials (0022_oauth_resource_secrets) ----

/** A resource indicator's columns: url-secrets.ts's rule (text that is no URL is kept as given, as before). */
export function resourceColumns(box: SecretBox, whole: string, aad: string): { resource: string; resource_secret: string | null } {
  if (!carriesCredential(whole)) return { resource: whole, resource_secret: null };
  const stored = storeUrl(box, whole, aad);
  return { resource: stored.shown, resource_secret: stored.sealed };
}

/** The flow's whole resource indicator, in this process only (to send to the AS): never log or show it. */
export function openFlowResource(box: SecretBox, flow: Pick<OAuthFlowRow, 'state_hash' | 'resource' | 'resource_secret'>): string {
  return openStoredUrl(box, { shown: flow.resource, sealed: flow.resource_secret }, flowResourceAad(flow.state_hash));
}

/** The credential's whole resource indicator, in this process only (to refresh with): never log or show it. */
export function openCredentialResource(box: SecretBox, row: Pick<OAuthCredentialRow, 'id' | 'resource' | 'resource_secret'>): string {
  return openStoredUrl(box, { shown: row.resource, sealed: row.resource_secret }, credentialResourceAad(row.id));
}

/**
 * Seals the credential-bearing resource indicators of flows and credentials written before
 * 0022_oauth_resource_secrets (stored whole then). Idempotent; run at startup, where the master key is at
 * hand. Neither table is in snapshots, and a credential's generation stays (its tokens did not change).
 * Returns how many rows it sealed.
 */
export async function sealOAuthResources(db: Db, box: SecretBox): Promise<number> {
  const flows = (await db.selectFrom('oauth_flows').select(['state_hash', 'resource']).where('resource_secret', 'is', null).execute()).filter((row) =>
    carriesCredential(row.resource),
  );
  const credentials = (await db.selectFrom('oauth_credentials').select(['id', 'resource']).where('resource_secret', 'is', null).execute()).filter((row) =>
    carriesCredential(row.resource),
  );
  if (flows.length + credentials.length === 0) return 0;
  await inTransaction(db, async (trx) => {
    // Neither row's resource is ever rewritten (a new authorization is a new row): a sealed one is left alone.
    for (const row of flows) {
      const columns = resourceColumns(box, row.resource, flowResourceAad(row.state_hash));
      await trx.updateTable('oauth_flows').set(columns).where('state_hash', '=', row.state_hash).where('resource_secret', 'is', null).execute();
    }
    for (const row of credentials) {
      const columns = resourceColumns(box, row.resource, credentialResourceAad(row.id));
      await trx.updateTable('oauth_credentials').set(columns).where('id', '=', row.id).where('resource_secret', 'is', null).execute();
    }
  });
  return flows.length + credentials.length;
}

// ---- Settings ----

export async function getServerOAuthSettings(db: Db, serverId: string): Promise<ServerOAuthSettingsRow | null> {
  return (await db.selectFrom('server_oauth_settings').selectAll().where('server_id', '=', serverId).executeTakeFirst()) ?? null;
}

/**
 * Column values for the settings' URLs (checked http(s) URLs, or null): a credential-bearing one is stored
 * redacted with its whole text sealed; the redacted form given back unchanged keeps the sealed URL. Returns
 * the fields holding `***` with other changes (the real value is then unknown: the caller refuses them).
 */
export function settingsUrlColumns(
  box: SecretBox,
  serverId: string,
  current: ServerOAuthSettingsRow | null,
  given: { [F in SettingsUrlField]: string | null },
): { columns: SettingsUrlColumns; redacted: SettingsUrlField[] } {
  const columns = {} as SettingsUrlColumns;
  const redacted: SettingsUrlField[] = [];
  for (const field of SETTINGS_URL_FIELDS) {
    const value = given[field];
    const kept = current ? keptSealedUrl({ shown: current[field] ?? '', sealed: current[`${field}_secret`] }, value) : null;
    if (value === null) {
      columns[field] = null;
      columns[`${field}_secret`] = null;
    } else if (kept !== null) {
      columns[field] = value;
      columns[`${field}_secret`] = kept;
    } else {
      if (containsRedaction(value)) redacted.push(field);
      const stored = storeUrl(box, value, settingsUrlAad(serverId, field));
      columns[field] = stored.shown;
      columns[`${field}_secret`] = stored.sealed;
    }
  }
  return { columns, redacted };
}

/** The settings with their whole URLs, in this process only (to run a flow with): never log or show them. */
export function openSettingsUrls(box: SecretBox, row: ServerOAuthSettingsRow): ServerOAuthSettingsRow {
  const opened = { ...row };
  for (const field of SETTINGS_URL_FIELDS) {
    const shown = row[field];
    if (shown !== null) opened[field] = openStoredUrl(box, { shown, sealed: row[`${field}_secret`] }, settingsUrlAad(row.server_id, field));
  }
  return opened;
}

/**
 * Seals the credential-bearing URLs of settings written before 0021_url_secrets (stored and shown whole
 * then). Idempotent; run at startup, where the master key is at hand. Settings are not in snapshots, so
 * no config version bump. Returns how many rows it sealed.
 */
export async function sealSettingsUrls(db: Db, box: SecretBox): Promise<number> {
  const rows = await db.selectFrom('server_oauth_settings').selectAll().execute();
  const found = rows.filter((row) => SETTINGS_URL_FIELDS.some((field) => row[`${field}_secret`] === null && row[field] !== null && carriesCredential(row[field])));
  if (found.length === 0) return 0;
  await inTransaction(db, async (trx) => {
    for (const row of found) {
      const update: Partial<SettingsUrlColumns> = {};
      for (const field of SETTINGS_URL_FIELDS) {
        const whole = row[field];
        if (whole === null || row[`${field}_secret`] !== null || !carriesCredential(whole)) continue;
        const stored = storeUrl(box, whole, settingsUrlAad(row.server_id, field));
        update[field] = stored.shown;
        update[`${field}_secret`] = stored.sealed;
      }
      await trx.updateTable('server_oauth_settings').set(update).where('server_id', '=', row.server_id).where('updated_at', '=', row.updated_at).execute();
    }
  });
  return found.length;
}

export async function upsertServerOAuthSettings(db: Db, row: Omit<ServerOAuthSettingsRow, 'updated_at'>): Promise<void> {
  const values = { ...row, updated_at: nowIso() };
  await db
    .insertInto('server_oauth_settings')
    .values(values)
    .onConflict((oc) => oc.column('server_id').doUpdateSet({ ...values }))
    .execute();
}

// ---- Clients ----

export async function findOAuthClient(db: Db, serverId: string, issuer: string): Promise<OAuthClientRow | null> {
  return (await db.selectFrom('oauth_clients').selectAll().where('server_id', '=', serverId).where('issuer', '=', issuer).executeTakeFirst()) ?? null;
}

export async function getOAuthClient(db: Db, id: string): Promise<OAuthClientRow | null> {
  return (await db.selectFrom('oauth_clients').selectAll().where('id', '=', id).executeTakeFirst()) ?? null;
}

/** Stores a client; a concurrent registration for the same (server, issuer) wins and is returned instead. */
export async function saveOAuthClient(db: Db, row: Omit<OAuthClientRow, 'created_at'>): Promise<OAuthClientRow> {
  await db
    .insertInto('oauth_clients')
    .values({ ...row, created_at: nowIso() })
    .onConflict((oc) => oc.columns(['server_id', 'issuer']).doNothing())
    .execute();
  const stored = await findOAuthClient(db, row.server_id, row.issuer);
  if (!stored) throw new Error('OAuth client row vanished after insert');
  return stored;
}

export async function deleteOAuthClient(db: Db, id: string): Promise<void> {
  await db.deleteFrom('oauth_clients').where('id', '=', id).execute();
}

// ---- Credentials ----

/**
 * The owner's credential. With `forUpdate`, the row stays locked until the caller's transaction ends
 * (PostgreSQL `SELECT … FOR UPDATE`): a second replica refreshing the same credential waits there, then
 * reads what the first one stored.
 */
export async function findCredential(db: Db, serverId: string, userId: string | null, options: { forUpdate?: boolean } = {}): Promise<OAuthCredentialRow | null> {
  let query = db.selectFrom('oauth_credentials').selectAll().where('server_id', '=', serverId).where('owner_key', '=', ownerKey(userId));
  if (options.forUpdate) query = query.forUpdate();
  return (await query.executeTakeFirst()) ?? null;
}

export interface TokenFields {
  issuer: string;
  /** Whole: stored by resourceColumns under the credential's id. */
  resource: string;
  /** Already sealed (use credentialAad with the credential id). */
  accessToken: string;
  refreshToken: string | null;
  tokenType: string;
  expiresAt: string | null;
  scopes: string[];
}

/** A new id for a credential row, so callers can seal its tokens under the row's AAD before writing. */
export function newCredentialId(): string {
  return randomUUID();
}

/**
 * Replaces the owner's credential (a new authorization): the new row's id is `id`, tokens sealed under it
 * (by the caller), the resource indicator by url-secrets.ts's rule (here).
 */
export async function replaceCredential(db: Db, box: SecretBox, id: string, serverId: string, userId: string | null, fields: TokenFields): Promise<void> {
  const now = nowIso();
  await db.deleteFrom('oauth_credentials').where('server_id', '=', serverId).where('owner_key', '=', ownerKey(userId)).execute();
  await db
    .insertInto('oauth_credentials')
    .values({
      id,
      server_id: serverId,
      user_id: userId,
      owner_key: ownerKey(userId),
      issuer: fields.issuer,
      ...resourceColumns(box, fields.resource, credentialResourceAad(id)),
      access_token: fields.accessToken,
      refresh_token: fields.refreshToken,
      token_type: fields.tokenType,
      expires_at: fields.expiresAt,
      scopes: JSON.stringify(fields.scopes),
      status: 'CONNECTED',
      last_error: null,
      created_at: now,
      updated_at: now,
    })
    .execute();
}

/** Stores refreshed tokens in place (same row id, so the same AAD), moving the generation. */
export async function storeRefreshedTokens(
  db: Db,
  id: string,
  fields: Pick<TokenFields, 'accessToken' | 'refreshToken' | 'tokenType' | 'expiresAt' | 'scopes'>,
): Promise<void> {
  await db
    .updateTable('oauth_credentials')
    .set((eb) => ({
      access_token: fields.accessToken,
      refresh_token: fields.refreshToken,
      token_type: fields.tokenType,
      expires_at: fields.expiresAt,
      scopes: JSON.stringify(fields.scopes),
      status: 'CONNECTED' as OAuthCredentialStatus,
      last_error: null,
      generation: eb('generation', '+', 1),
      updated_at: nowIso(),
    }))
    .where('id', '=', id)
    .execute();
}

export async function markCredential(db: Db, id: string, status: OAuthCredentialStatus, lastError: string | null): Promise<void> {
  await db
    .updateTable('oauth_credentials')
    .set((eb) => ({ status, last_error: lastError, generation: eb('generation', '+', 1), updated_at: nowIso() }))
    .where('id', '=', id)
    .execute();
}

/** Records a transient failure without touching status or tokens (a blip never locks anyone out). */
export async function noteCredentialError(db: Db, id: string, lastError: string): Promise<void> {
  await db.updateTable('oauth_credentials').set({ last_error: lastError }).where('id', '=', id).execute();
}

export async function deleteCredential(db: Db, serverId: string, userId: string | null): Promise<boolean> {
  const result = await db.deleteFrom('oauth_credentials').where('server_id', '=', serverId).where('owner_key', '=', ownerKey(userId)).executeTakeFirst();
  return Number(result.numDeletedRows) > 0;
}

export async function listUserCredentials(db: Db, userId: string): Promise<OAuthCredentialRow[]> {
  return db.selectFrom('oauth_credentials').selectAll().where('user_id', '=', userId).orderBy('created_at').execute();
}

export async function listServerCredentials(db: Db, serverId: string): Promise<OAuthCredentialRow[]> {
  return db.selectFrom('oauth_credentials').selectAll().where('server_id', '=', serverId).where('user_id', 'is not', null).orderBy('created_at').execute();
}

// ---- Flows ----

/** Stores a pending flow; `resource` is whole, stored by url-secrets.ts's rule (resourceColumns). */
export async function insertFlow(
  db: Db,
  box: SecretBox,
  row: Omit<OAuthFlowRow, 'created_at' | 'used_at' | 'browser_binding' | 'start_link_hash' | 'start_url' | 'start_link_used_at' | 'resource_secret'> & {
    browser_binding?: string | null;
    start_link_hash?: string | null;
    start_url?: string | null;
  },
): Promise<void> {
  const resource = resourceColumns(box, row.resource, flowResourceAad(row.state_hash));
  await db.insertInto('oauth_flows').values({ ...row, ...resource, created_at: nowIso(), used_at: null }).execute();
}

/** The flow for this state while it can still complete (unused, unexpired), without spending it. */
export async function findOpenFlow(db: Db, stateHash: string): Promise<OAuthFlowRow | null> {
  const row = await db
    .selectFrom('oauth_flows')
    .selectAll()
    .where('state_hash', '=', stateHash)
    .where('used_at', 'is', null)
    .where('expires_at', '>', nowIso())
    .executeTakeFirst();
  return row ?? null;
}

/**
 * Spends a flow: marks it used if it was unused and unexpired, in one statement, so two callbacks with
 * the same state cannot both proceed. Returns the flow only to the one that spent it.
 */
export async function spendFlow(db: Db, stateHash: string): Promise<OAuthFlowRow | null> {
  const now = nowIso();
  const result = await db
    .updateTable('oauth_flows')
    .set({ used_at: now })
    .where('state_hash', '=', stateHash)
    .where('used_at', 'is', null)
    .where('expires_at', '>', now)
    .executeTakeFirst();
  if (Number(result.numUpdatedRows) !== 1) return null;
  return (await db.selectFrom('oauth_flows').selectAll().where('state_hash', '=', stateHash).executeTakeFirst()) ?? null;
}

export type SpentStartLink = { ok: true; flow: OAuthFlowRow } | { ok: false; reason: 'invalid' | 'used' | 'expired' };

/** What spending a start link now would say, without spending it (its GET only shows a page). */
export async function peekStartLink(db: Db, linkHash: string): Promise<{ ok: true } | { ok: false; reason: 'invalid' | 'used' | 'expired' }> {
  const row = await db
    .selectFrom('oauth_flows')
    .select(['start_link_used_at', 'used_at', 'expires_at'])
    .where('start_link_hash', '=', linkHash)
    .executeTakeFirst();
  if (!row) return { ok: false, reason: 'invalid' };
  if (row.start_link_used_at !== null || row.used_at !== null) return { ok: false, reason: 'used' };
  return row.expires_at > nowIso() ? { ok: true } : { ok: false, reason: 'expired' };
}

/**
 * Spends an admin flow's one-time start link and binds the flow to the browser that opened it, in one
 * conditional update (replicas race safely: exactly one spends it).
 */
export async function spendStartLink(db: Db, linkHash: string, bindingHash: string): Promise<SpentStartLink> {
  const now = nowIso();
  const result = await db
    .updateTable('oauth_flows')
    .set({ start_link_used_at: now, browser_binding: bindingHash })
    .where('start_link_hash', '=', linkHash)
    .where('start_link_used_at', 'is', null)
    .where('used_at', 'is', null)
    .where('expires_at', '>', now)
    .executeTakeFirst();
  const row = await db.selectFrom('oauth_flows').selectAll().where('start_link_hash', '=', linkHash).executeTakeFirst();
  if (!row) return { ok: false, reason: 'invalid' };
  if (Number(result.numUpdatedRows) === 1) return { ok: true, flow: row };
  return { ok: false, reason: row.start_link_used_at !== null || row.used_at !== null ? 'used' : 'expired' };
}

/** Drops flows that expired more than a day ago (called opportunistically when a flow starts). */
export async function pruneFlows(db: Db): Promise<void> {
  const horizon = new Date(Date.now() - 86_400_000).toISOString();
  await db.deleteFrom('oauth_flows').where('expires_at', '<', horizon).execute();
}
