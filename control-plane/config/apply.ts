/**
 * `applyConfig`: makes the stored configuration match a document, declaratively and in one transaction.
 * Each entry is planned against what is stored (field by field, secrets compared by opening them), and only
 * entries that differ are written through the repositories, so applying the same document twice changes
 * nothing and bumps no version. Every problem in the whole document is collected with its JSON path; if
 * there is any, or on a dry run, the transaction is rolled back. With `prune`, entities a present section
 * no longer names are deleted (sections the document leaves out are not touched).
 *
 * It does not publish snapshots (the caller does after commit) and never returns a secret, except the
 * values of keys it created, once, in the result.
 */
import type { Kysely } from 'kysely';
import type { KeyServerGrant } from '../../data-plane/snapshot/schema.js';
import type { SecretBox } from '../crypto/secret-box.js';
import type { Database } from '../db/schema.js';
import { currentConfigVersion, lockConfig } from '../repos/config-state.js';
import { InputError, IssueList } from '../repos/errors.js';
import {
  createMcpServer,
  deleteMcpServer,
  describeMcpServer,
  listAllMcpServers,
  planMcpServer,
  updateMcpServer,
  DEFAULT_TOOL_TIMEOUT_MS,
  type CreateMcpServerInput,
  type FieldChange,
  type McpServer,
} from '../repos/mcp-servers.js';
import { serializeGrants } from '../repos/key-grants.js';
import { grantToolWarnings, serverToolWarnings, type InputWarning } from '../repos/tool-warnings.js';
import type { Trx } from '../repos/transaction.js';
import { createUser, deleteUser, listAllUsers, updateUser, type User } from '../repos/users.js';
import {
  createVirtualKey,
  deleteVirtualKey,
  listAllVirtualKeys,
  normaliseExpiry,
  normaliseGrants,
  resolveGrantServers,
  revokeVirtualKey,
  updateVirtualKey,
  type VirtualKey,
} from '../repos/virtual-keys.js';
import { parseEnvRef, redactedPreview } from '../crypto/secret-box.js';
import { parsePrices, parseProviderApiKey, plannedBaseUrl, providerApiKeyAad, upsertProvider, type UpsertProviderInput } from '../repos/providers.js';
import { readConfigDocument, type DesiredKey, type DesiredProfile, type DesiredProvider, type DesiredServer, type DesiredUser, type FieldPaths } from './document.js';
import { createAccessProfile, listAllAccessProfiles, updateAccessProfile, type AccessProfile } from '../repos/access-profiles.js';
import { keyLimitsForRepository } from './key-limits.js';

export type ConfigEntityKind = 'MCP_SERVER' | 'USER' | 'VIRTUAL_KEY' | 'ACCESS_PROFILE' | 'PROVIDER';
export type ConfigChangeAction = 'CREATE' | 'UPDATE' | 'DELETE' | 'REVOKE';

export interface ConfigChange {
  kind: ConfigEntityKind;
  action: ConfigChangeAction;
  /** Server name, user email, or `email/key name`. */
  name: string;
  /** Where the entry is in the document; null for a deletion by prune. */
  path: string | null;
  fields: FieldChange[];
}

/** A key created by this apply: its value, shown this once. */
export interface AppliedKey {
  id: string;
  name: string;
  user: string;
  key: string;
}

export interface ApplyOptions {
  dryRun?: boolean;
  prune?: boolean;
  now?: Date;
}

export interface ApplyResult {
  dryRun: boolean;
  /** Whether changes were committed (false for a dry run, and when there was nothing to change). */
  applied: boolean;
  changes: ConfigChange[];
  keys: AppliedKey[];
  /** Paths are from the document's root, as for errors. */
  warnings: InputWarning[];
  /** After the apply (unchanged by a dry run). */
  configVersion: number;
}

/** Thrown to roll a dry run back once it has planned everything; carries the result out. */
class DryRunRollback extends Error {
  constructor(readonly result: ApplyResult) {
    super('dry run');
  }
}

/** Keys are identified by owner and name. */
function keyLabel(email: string, name: string): string {
  return `${email}/${name}`;
}

/** Runs a repository write; its input problems are reported at document paths instead of thrown. */
async function attempt<T>(issues: IssueList, paths: FieldPaths, work: () => Promise<T>): Promise<T | undefined> {
  try {
    return await work();
  } catch (error) {
    if (!(error instanceof InputError)) throw error;
    for (const issue of error.issues) issues.add(issue.code, paths.resolve(issue.field), issue.message);
    return undefined;
  }
}

function mapped(local: IssueList, paths: FieldPaths, into: IssueList): boolean {
  for (const issue of local.all) into.add(issue.code, paths.resolve(issue.field), issue.message);
  return !local.isEmpty;
}

function warningsAt(warnings: readonly InputWarning[], paths: FieldPaths): InputWarning[] {
  return warnings.map((w) => ({ ...w, field: paths.resolve(w.field) }));
}

/** The document's server as a full replacement: fields it leaves out take their defaults. */
function fullServerInput(input: CreateMcpServerInput): CreateMcpServerInput {
  return {
    ...input,
    authType: input.authType ?? 'NONE',
    headers: input.headers ?? [],
    perUserHeaderKeys: input.perUserHeaderKeys ?? [],
    toolsToExecute: input.toolsToExecute ?? [],
    allowedExtraHeaders: input.allowedExtraHeaders ?? [],
    toolTimeoutMs: input.toolTimeoutMs ?? DEFAULT_TOOL_TIMEOUT_MS,
    disabled: input.disabled ?? false,
  };
}

interface Run {
  trx: Trx;
  box: SecretBox;
  issues: IssueList;
  changes: ConfigChange[];
  keys: AppliedKey[];
  warnings: InputWarning[];
  prune: boolean;
  now: Date;
}

/** Reports entries that name the same entity twice (by `identity`); returns the first of each. */
function unique<T extends { path: string }>(entries: readonly T[], identity: (e: T) => string, what: string, issues: IssueList): T[] {
  const seen = new Map<string, T>();
  for (const e of entries) {
    const id = identity(e);
    const first = seen.get(id);
    if (first) issues.add('DUPLICATE', e.path, `${what} is already given at ${first.path}`);
    else seen.set(id, e);
  }
  return [...seen.values()];
}

/**
 * Access profiles by name: created, or updated field by field (an update rewrites the keys allocated from
 * the profile, as the mutation does). Not pruned: a profile keys follow cannot be deleted anyway.
 */
async function applyProfiles(run: Run, desired: readonly DesiredProfile[], stored: readonly AccessProfile[]): Promise<void> {
  const byName = new Map(stored.map((p) => [p.name, p]));
  for (const d of unique(desired, (p) => p.name, 'this access profile', run.issues)) {
    const limits = keyLimitsForRepository(d.limits, run.issues);
    const current = byName.get(d.name);
    const fields: FieldChange[] = [];
    const text = (v: unknown): string | null => (v === null || v === undefined ? null : JSON.stringify(v));
    if (!current) {
      const created = await attempt(run.issues, d.paths, () =>
        createAccessProfile(run.trx, {
          name: d.name,
          description: d.description,
          servers: d.servers,
          keyLifetimeDays: d.keyLifetimeDays,
          limitsFallback: d.limitsFallback,
          allowNoServers: d.servers.length === 0,
          ...limits,
        }),
      );
      if (created) {
        fields.push({ field: 'servers', before: null, after: grantsText(created.servers) });
        if (created.budgets.length > 0) fields.push({ field: 'budgets', before: null, after: text(created.budgets) });
        if (created.rateLimit) fields.push({ field: 'rateLimit', before: null, after: text(created.rateLimit) });
        run.changes.push({ kind: 'ACCESS_PROFILE', action: 'CREATE', name: d.name, path: d.path, fields });
      }
      continue;
    }
    const grants = await resolveGrantServers(run.trx, normaliseGrants(d.servers, true, new IssueList()), new IssueList());
    const update: Parameters<typeof updateAccessProfile>[1] = { id: current.id };
    if (serializeGrants(grants) !== serializeGrants(current.servers)) {
      fields.push({ field: 'servers', before: grantsText(current.servers), after: grantsText(grants) });
      update.servers = d.servers;
      update.allowNoServers = d.servers.length === 0;
    }
    if (limits.budgets !== undefined && text(limits.budgets) !== text(current.budgets)) {
      fields.push({ field: 'budgets', before: text(current.budgets), after: text(limits.budgets) });
      update.budgets = limits.budgets;
    }
    if (limits.rateLimit !== undefined && text(limits.rateLimit) !== text(current.rateLimit)) {
      fields.push({ field: 'rateLimit', before: text(current.rateLimit), after: text(limits.rateLimit) });
      update.rateLimit = limits.rateLimit;
    }
    if (d.keyLifetimeDays !== current.keyLifetimeDays) {
      fields.push({ field: 'keyLifetimeDays', before: text(current.keyLifetimeDays), after: text(d.keyLifetimeDays) });
      update.keyLifetimeDays = d.keyLifetimeDays;
    }
    if (d.limitsFallback !== current.limitsFallback) {
      fields.push({ field: 'limitsFallback', before: current.limitsFallback, after: d.limitsFallback });
      update.limitsFallback = d.limitsFallback;
    }
    if ((d.description ?? null) !== current.description) {
      fields.push({ field: 'description', before: current.description, after: d.description });
      update.description = d.description;
    }
    if (fields.length === 0) continue;
    const updated = await attempt(run.issues, d.paths, () => updateAccessProfile(run.trx, update));
    if (updated) run.changes.push({ kind: 'ACCESS_PROFILE', action: 'UPDATE', name: d.name, path: d.path, fields });
  }
}

/** How a provider key shows in a change: its `env.NAME`, or a redacted preview; never the value. */
function keyShown(value: string): string {
  return parseEnvRef(value) ? value : redactedPreview(value);
}

/** Providers by name: created, or updated in the fields that differ (the API key compared by opening it). */
async function applyProviders(run: Run, desired: readonly DesiredProvider[]): Promise<void> {
  for (const d of unique(desired, (p) => p.name, 'this provider', run.issues)) {
    const row = await run.trx.selectFrom('providers').selectAll().where('name', '=', d.name).executeTakeFirst();
    const fields: FieldChange[] = [];
    if (!row) {
      const created = await attempt(run.issues, d.paths, () => upsertProvider(run.trx, run.box, { name: d.name, baseUrl: d.baseUrl, apiKey: d.apiKey, prices: d.prices }));
      if (created) {
        fields.push({ field: 'baseUrl', before: null, after: created.baseUrl }, { field: 'apiKey', before: null, after: created.apiKeyPreview });
        run.changes.push({ kind: 'PROVIDER', action: 'CREATE', name: d.name, path: d.path, fields });
      }
      continue;
    }
    const update: UpsertProviderInput = { name: d.name };
    // Shown redacted (url-secrets.ts); a whole URL equal to the sealed one is no change.
    const baseUrl = plannedBaseUrl(run.box, row, d.baseUrl);
    if (baseUrl !== null) {
      fields.push({ field: 'baseUrl', before: row.base_url, after: baseUrl });
      update.baseUrl = d.baseUrl;
    }
    if (JSON.stringify(d.prices) !== JSON.stringify(parsePrices(row.prices))) {
      fields.push({ field: 'prices', before: row.prices, after: JSON.stringify(d.prices) });
      update.prices = d.prices;
    }
    if (d.apiKey !== null) {
      const stored = parseProviderApiKey(row.api_key);
      const env = parseEnvRef(d.apiKey.trim());
      let same: boolean;
      if (stored.kind === 'env') same = env === stored.name;
      else {
        try {
          same = env === null && run.box.open(stored.ciphertext, providerApiKeyAad(row.id)) === d.apiKey.trim();
        } catch {
          same = false;
        }
      }
      if (!same) {
        fields.push({ field: 'apiKey', before: stored.kind === 'env' ? `env.${stored.name}` : stored.preview, after: keyShown(d.apiKey.trim()) });
        update.apiKey = d.apiKey;
      }
    }
    if (fields.length === 0) continue;
    const updated = await attempt(run.issues, d.paths, () => upsertProvider(run.trx, run.box, update));
    if (updated) run.changes.push({ kind: 'PROVIDER', action: 'UPDATE', name: d.name, path: d.path, fields });
  }
}

async function applyUsers(run: Run, desired: readonly DesiredUser[], stored: readonly User[]): Promise<void> {
  const byEmail = new Map(stored.map((u) => [u.email, u]));
  for (const d of unique(desired, (u) => u.email, 'this user', run.issues)) {
    const current = byEmail.get(d.email);
    if (!current) {
      const user = await attempt(run.issues, d.paths, () => createUser(run.trx, { email: d.email, name: d.name }));
      if (user) run.changes.push({ kind: 'USER', action: 'CREATE', name: user.email, path: d.path, fields: [{ field: 'name', before: null, after: user.name }] });
    } else if ((d.name?.trim() || null) !== current.name) {
      const user = await attempt(run.issues, d.paths, () => updateUser(run.trx, { id: current.id, name: d.name ?? '' }));
      if (user) {
        run.changes.push({ kind: 'USER', action: 'UPDATE', name: user.email, path: d.path, fields: [{ field: 'name', before: current.name, after: user.name }] });
      }
    }
  }
}

async function applyServers(run: Run, desired: readonly DesiredServer[], stored: readonly McpServer[]): Promise<Set<string>> {
  const byName = new Map(stored.map((s) => [s.name.toLowerCase(), s]));
  const named = new Set<string>();
  for (const d of unique(desired, (s) => s.input.name.trim().toLowerCase(), 'this server', run.issues)) {
    const current = byName.get(d.input.name.trim().toLowerCase()) ?? null;
    if (current) named.add(current.id);
    const input = fullServerInput(d.input);
    const local = new IssueList();
    const fields = planMcpServer(run.box, current, input, local);
    if (mapped(local, d.paths, run.issues)) continue;
    if (current === null) {
      const server = await attempt(run.issues, d.paths, () => createMcpServer(run.trx, run.box, input));
      if (server) run.changes.push({ kind: 'MCP_SERVER', action: 'CREATE', name: server.name, path: d.path, fields });
      continue;
    }
    run.warnings.push(...warningsAt(serverToolWarnings({ ...current, toolsToExecute: [...(input.toolsToExecute ?? [])] }), d.paths));
    if (fields.length === 0) continue;
    const server = await attempt(run.issues, d.paths, () =>
      updateMcpServer(run.trx, run.box, { ...input, name: current.name, newName: input.name }),
    );
    if (server) run.changes.push({ kind: 'MCP_SERVER', action: 'UPDATE', name: server.name, path: d.path, fields });
  }
  return named;
}

async function pruneServers(run: Run, stored: readonly McpServer[], named: ReadonlySet<string>, keys: readonly VirtualKey[]): Promise<void> {
  for (const server of stored) {
    if (named.has(server.id)) continue;
    await deleteMcpServer(run.trx, server.name);
    const granted = keys.filter((k) => k.servers.some((g) => g.server === server.name)).length;
    const fields = describeMcpServer(server);
    if (granted > 0) fields.push({ field: 'grants', before: `granted by ${granted} key(s), which lose it`, after: null });
    run.changes.push({ kind: 'MCP_SERVER', action: 'DELETE', name: server.name, path: null, fields });
  }
}

function grantsText(grants: readonly KeyServerGrant[]): string {
  return grants.map((g) => `${g.server}:${g.tools.join(',')}`).join(' ') || '(none)';
}

async function applyKeys(run: Run, desired: readonly DesiredKey[], stored: readonly VirtualKey[]): Promise<Set<string>> {
  const users = new Map((await listAllUsers(run.trx)).map((u) => [u.email, u]));
  const servers = await listAllMcpServers(run.trx);
  // Keys by owner and name, so a document of many keys is matched in one pass over what is stored.
  const byOwnerAndName = new Map<string, VirtualKey[]>();
  for (const k of stored) {
    const id = `${k.userId}\n${k.name}`;
    byOwnerAndName.set(id, [...(byOwnerAndName.get(id) ?? []), k]);
  }
  const named = new Set<string>();
  for (const d of unique(desired, (k) => keyLabel(k.user, k.name), 'this key (same user and name)', run.issues)) {
    const local = new IssueList();
    const user = users.get(d.user);
    if (!user) local.add('NOT_FOUND', 'user', `no user with email "${d.user}": add it under users, or create it first`);
    const limits = keyLimitsForRepository(d.limits, run.issues);
    const matches = user ? (byOwnerAndName.get(`${user.id}\n${d.name}`) ?? []) : [];
    if (matches.length > 1) {
      local.add('AMBIGUOUS', 'name', `${d.user} has ${matches.length} keys named "${d.name}" (ids ${matches.map((k) => k.id).join(', ')}): rename or delete all but one first`);
    }
    for (const k of matches) named.add(k.id);
    const current = matches.length === 1 ? matches[0]! : null;
    const grants = await resolveGrantServers(run.trx, normaliseGrants(d.servers, d.allowNoServers, local), local);
    // An unchanged expiry is kept even if it has passed (an exported document re-applied); a new one must
    // be in the future.
    const sameExpiry = current !== null && d.expiresAt !== null && Date.parse(d.expiresAt) === Date.parse(current.expiresAt ?? '');
    const expiresAt = d.expiresAt === null ? null : normaliseExpiry(d.expiresAt, sameExpiry ? null : run.now, local);
    if (current?.revokedAt != null && d.revoked === false) {
      local.add('KEY_REVOKED', 'revoked', 'this key is revoked and cannot be restored: remove revoked: false, or give a new key another name');
    }
    if (mapped(local, d.paths, run.issues) || !user) continue;
    const label = keyLabel(user.email, d.name);
    run.warnings.push(...warningsAt(grantToolWarnings(servers, grants), d.paths));

    if (current === null) {
      if (d.revoked === true) continue; // nothing to create: a revoked key that does not exist is already "revoked"
      const issued = await attempt(run.issues, d.paths, () =>
        createVirtualKey(run.trx, { userId: user.id, name: d.name, servers: grants, expiresAt, allowNoServers: d.allowNoServers, ...limits }, run.now),
      );
      if (!issued) continue;
      run.keys.push({ id: issued.virtualKey.id, name: d.name, user: user.email, key: issued.key });
      run.changes.push({
        kind: 'VIRTUAL_KEY',
        action: 'CREATE',
        name: label,
        path: d.path,
        fields: [
          { field: 'servers', before: null, after: grantsText(grants) },
          { field: 'expiresAt', before: null, after: expiresAt },
          ...(limits.budgets !== undefined ? [{ field: 'budgets', before: null, after: JSON.stringify(limits.budgets) }] : []),
          ...(limits.rateLimit !== undefined ? [{ field: 'rateLimit', before: null, after: JSON.stringify(limits.rateLimit) }] : []),
        ],
      });
      continue;
    }
    const fields: FieldChange[] = [];
    const serversChanged = serializeGrants(grants) !== serializeGrants(current.servers);
    const expiryChanged = expiresAt !== current.expiresAt;
    if (serversChanged) fields.push({ field: 'servers', before: grantsText(current.servers), after: grantsText(grants) });
    if (expiryChanged) fields.push({ field: 'expiresAt', before: current.expiresAt, after: expiresAt });
    const budgetsChanged = limits.budgets !== undefined && JSON.stringify(limits.budgets) !== JSON.stringify(current.budgets);
    const rateLimitChanged = limits.rateLimit !== undefined && JSON.stringify(limits.rateLimit) !== JSON.stringify(current.rateLimit);
    if (budgetsChanged) fields.push({ field: 'budgets', before: JSON.stringify(current.budgets), after: JSON.stringify(limits.budgets) });
    if (rateLimitChanged) fields.push({ field: 'rateLimit', before: JSON.stringify(current.rateLimit), after: JSON.stringify(limits.rateLimit) });
    if (fields.length > 0) {
      // Only what changed is passed on, so an unchanged (perhaps past) expiry is not re-validated.
      const updated = await attempt(run.issues, d.paths, () =>
        updateVirtualKey(
          run.trx,
          {
            id: current.id,
            ...(serversChanged ? { servers: grants, allowNoServers: d.allowNoServers } : {}),
            ...(expiryChanged ? { expiresAt } : {}),
            ...(budgetsChanged ? { budgets: limits.budgets } : {}),
            ...(rateLimitChanged ? { rateLimit: limits.rateLimit } : {}),
          },
          run.now,
        ),
      );
      if (updated) run.changes.push({ kind: 'VIRTUAL_KEY', action: 'UPDATE', name: label, path: d.path, fields });
    }
    if (d.revoked === true && current.revokedAt === null) {
      await revokeVirtualKey(run.trx, current.id);
      run.changes.push({ kind: 'VIRTUAL_KEY', action: 'REVOKE', name: label, path: d.path, fields: [{ field: 'revoked', before: 'false', after: 'true' }] });
    }
  }
  return named;
}

async function pruneKeys(run: Run, stored: readonly VirtualKey[], named: ReadonlySet<string>, emails: ReadonlyMap<string, string>): Promise<Set<string>> {
  const deleted = new Set<string>();
  for (const key of stored) {
    if (named.has(key.id)) continue;
    await deleteVirtualKey(run.trx, key.id);
    deleted.add(key.id);
    run.changes.push({
      kind: 'VIRTUAL_KEY',
      action: 'DELETE',
      name: keyLabel(emails.get(key.userId) ?? key.userId, key.name),
      path: null,
      fields: [{ field: 'servers', before: grantsText(key.servers), after: null }],
    });
  }
  return deleted;
}

async function pruneUsers(run: Run, stored: readonly User[], desired: readonly DesiredUser[], keys: readonly VirtualKey[], keysDeleted: ReadonlySet<string>): Promise<void> {
  const wanted = new Set(desired.map((u) => u.email));
  for (const user of stored) {
    if (wanted.has(user.email)) continue;
    await deleteUser(run.trx, user.id);
    const fields: FieldChange[] = [{ field: 'name', before: user.name, after: null }];
    const owned = keys.filter((k) => k.userId === user.id && !keysDeleted.has(k.id));
    if (owned.length > 0) fields.push({ field: 'virtualKeys', before: `${owned.length} key(s), deleted with the user`, after: null });
    run.changes.push({ kind: 'USER', action: 'DELETE', name: user.email, path: null, fields });
  }
}

/**
 * Applies `document`. Throws InputError (fields are document paths: `mcp_servers[0].name`, null for the
 * whole document) when anything is invalid; nothing is written then.
 */
export async function applyConfig(db: Kysely<Database>, box: SecretBox, document: unknown, options: ApplyOptions = {}): Promise<ApplyResult> {
  const dryRun = options.dryRun === true;
  const issues = new IssueList();
  const desired = readConfigDocument(document, issues);
  try {
    return await db.transaction().execute(async (trx) => {
      // Plan and write against one state: concurrent config changes wait for this transaction.
      await lockConfig(trx);
      const versionBefore = await currentConfigVersion(trx);
      const run: Run = { trx, box, issues, changes: [], keys: [], warnings: [], prune: options.prune === true, now: options.now ?? new Date() };
      const storedServers = await listAllMcpServers(trx);
      const storedUsers = await listAllUsers(trx);
      const storedKeys = await listAllVirtualKeys(trx);

      // Order matters: users and servers exist before keys name them; prunes run after, keys before users.
      if (desired.users) await applyUsers(run, desired.users, storedUsers);
      if (desired.servers) {
        const named = await applyServers(run, desired.servers, storedServers);
        if (run.prune) await pruneServers(run, storedServers, named, storedKeys);
      }
      if (desired.providers) await applyProviders(run, desired.providers);
      if (desired.profiles) await applyProfiles(run, desired.profiles, await listAllAccessProfiles(trx));
      let keysDeleted = new Set<string>();
      if (desired.keys) {
        const named = await applyKeys(run, desired.keys, storedKeys);
        if (run.prune) keysDeleted = await pruneKeys(run, storedKeys, named, new Map(storedUsers.map((u) => [u.id, u.email])));
      }
      if (desired.users && run.prune) await pruneUsers(run, storedUsers, desired.users, storedKeys, keysDeleted);

      issues.throwIfAny();
      const result: ApplyResult = {
        dryRun,
        applied: !dryRun && run.changes.length > 0,
        changes: run.changes,
        keys: dryRun ? [] : run.keys,
        warnings: run.warnings,
        configVersion: await currentConfigVersion(trx),
      };
      // Roll the dry run back, keys included: their values were never returned.
      if (dryRun) throw new DryRunRollback({ ...result, configVersion: versionBefore });
      return result;
    });
  } catch (error) {
    if (error instanceof DryRunRollback) return error.result;
    throw error;
  }
}

