/**
 * Snapshot payload → Runtime: the immutable, pre-indexed view a node serves requests from.
 *
 * Built once per applied snapshot, never per request: keys indexed by hash, servers by name with their
 * sealed values opened and `env.NAME` references resolved from this node's environment, users by id, and
 * for every key the tools it may call on each server (server `toolsToExecute` ∩ key grant) precomputed, so
 * the request path is Map lookups only. A server that cannot run here (missing env variable, disabled,
 * no usable URL) stays in the Runtime, marked unavailable with a reason a person can act on.
 *
 * It does not verify signatures (see `snapshot/verify.ts`), touch the network, or keep any mutable state
 * except `RuntimeHolder`, the single slot the node swaps a new Runtime into.
 */
import { createHash } from 'node:crypto';
import {
  sessionSecretAad,
  type AuthType,
  type ConnectionType,
  type KeyLimitsEntry,
  type KeyServerGrant,
  type ModelPrice,
  type ProviderEntry,
  type ServerEntry,
  type SessionSecretEntry,
  type SnapshotDelta,
  type SnapshotPayload,
  type UserEntry,
  type ValueRef,
} from '../snapshot/schema.js';
import { forEachKeyRow } from '../snapshot/key-table.js';
import { headerNameProblem, isForwardableHeader } from '../snapshot/rules.js';
import { urlCredentialParts } from '../snapshot/url-credentials.js';
import { editMap } from './layered-map.js';
import { openValue } from '../snapshot/seal.js';
import { SnapshotError } from '../snapshot/errors.js';
import { deriveSessionKeyring, type SessionKeyring, type SessionSecret } from '../session/keyring.js';
import { ToolFailure, UnavailableReason } from '../errors.js';

/** An auth scheme before a credential (`Bearer x`, `Basic x`, …): an upstream may echo `x` alone. */
const AUTH_SCHEME = /^[A-Za-z][A-Za-z0-9_-]*\s+(\S.*)$/s;

/**
 * A secret value as an upstream might echo it: whole and, when it starts with an auth scheme, the credential
 * after the scheme; each at least 4 characters (shorter ones would redact ordinary text).
 */
export function secretForms(value: string): string[] {
  const bare = AUTH_SCHEME.exec(value)?.[1];
  return (bare === undefined ? [value] : [value, bare]).filter((s) => s.length >= 4);
}

/**
 * Whether all of a server's credential is its configured headers (NONE, HEADERS): what the pool's shared
 * connection sends, the same for every caller. OAUTH and per-user servers need a credential resolved per call.
 */
export function credentialIsConfiguredHeaders(server: Pick<ResolvedServer, 'authType'>): boolean {
  return server.authType === 'NONE' || server.authType === 'HEADERS';
}

/** The tools a key may call on one server: every tool, or these (unprefixed) names. Never empty. */
export type ToolGrant = '*' | ReadonlySet<string>;

export interface ResolvedStdio {
  command: string;
  args: readonly string[];
  /** Only the configured variables (opened/resolved); the pool adds a minimal safe base such as PATH. */
  env: Readonly<Record<string, string>>;
}

export interface ResolvedServer {
  id: string;
  name: string;
  connectionType: ConnectionType;
  authType: AuthType;
  /** Resolved URL for HTTP/SSE servers; null for STDIO or when unavailable. */
  url: URL | null;
  /** Lower-cased header name → plaintext value, injected on every upstream request (no prototype). */
  headers: Readonly<Record<string, string>>;
  stdio: ResolvedStdio | null;
  /** Server-side tool allowlist (`toolsToExecute`); null = none (deny by default). */
  toolsToExecute: ToolGrant | null;
  /** Lower-cased caller header names that may be forwarded: those allowlisted that the shared rules let through (`snapshot/rules.ts`). */
  allowedExtraHeaders: readonly string[];
  toolTimeoutMs: number;
  disabled: boolean;
  /** Why this server cannot be used on this node, or null when it can. The text names the server. */
  unavailable: string | null;
  /**
   * Digest of everything that shapes the upstream connection (type, URL, headers, stdio command/env).
   * The pool keeps a connection while this stays the same across snapshots and replaces it otherwise.
   */
  fingerprint: string;
  /** USD per call of each tool (issue 7), or absent when the server's tools are free. */
  toolPricing?: Readonly<Record<string, number>>;
  /**
   * Plaintext secret values of this server (header values, stdio env values, URL), so that error texts from
   * upstream libraries can be scrubbed before they reach a caller or a log line.
   */
  secrets: readonly string[];
}

export interface RuntimeKey {
  id: string;
  name: string;
  /** base64url SHA-256 of the key value, as in the snapshot. */
  hash: string;
  user: UserEntry;
  revoked: boolean;
  /** Expiry as epoch milliseconds, or null for none. */
  expiresAtMs: number | null;
  /**
   * Server name → tools this key may call there. Servers absent from the map are not granted at all.
   * Shared between keys with the same grants: never modify it.
   */
  tools: ReadonlyMap<string, ToolGrant>;
  /** Budgets and rate limit (issue 7), or null for a key without any. */
  limits: KeyLimitsEntry | null;
}

/** An LLM provider as this node serves it: base URL and API key resolved here, never sent to callers. */
export interface ResolvedProvider {
  id: string;
  name: string;
  kind: ProviderEntry['kind'];
  /** Null when unavailable. */
  baseUrl: URL | null;
  /** The provider API key (opened or from this node's environment); null when unavailable. */
  apiKey: string | null;
  prices: readonly ModelPrice[];
  /** Why this provider cannot be used on this node, or null when it can. */
  unavailable: string | null;
  /**
   * The provider as the pipeline's credentials stage sees an upstream: its API key as the `x-api-key`
   * header, and the Anthropic headers a caller may pass (`ANTHROPIC_FORWARDED_HEADERS`). Null when unavailable.
   */
  server: ResolvedServer | null;
}

/**
 * Caller headers passed to an LLM provider (API version, beta flags, what answer it takes); never the
 * caller's credentials: like any allowlisted header, one whose value holds the caller's key stays behind.
 */
export const ANTHROPIC_FORWARDED_HEADERS: readonly string[] = ['anthropic-version', 'anthropic-beta', 'user-agent', 'accept'];

export interface Runtime {
  version: number;
  issuedAt: string;
  servers: ReadonlyMap<string, ResolvedServer>;
  keysByHash: ReadonlyMap<string, RuntimeKey>;
  /** Key id → hash, so a delta can find the key it changes or removes. */
  keyHashById: ReadonlyMap<string, string>;
  users: ReadonlyMap<string, UserEntry>;
  /** Keys for sealed MCP session ids (`data-plane/session/`), or null when the snapshot carries no secret. */
  sessionKeys: SessionKeyring | null;
  /** LLM providers by name (the route segment: `/anthropic` → `anthropic`). */
  providers: ReadonlyMap<string, ResolvedProvider>;
}

export interface MissingEnv {
  name: string;
  servers: string[];
}

export interface BuildRuntimeResult {
  runtime: Runtime;
  /** `env.NAME` references this node could not resolve, with the servers they make unavailable (for the NodeReport). */
  missingEnv: MissingEnv[];
  /** Inconsistencies that were tolerated (e.g. a key whose user is not in the snapshot, which is then dropped). */
  warnings: string[];
}

/**
 * Builds the Runtime for a verified payload. Throws a `SnapshotError` (code `data_key`) if a sealed value
 * does not open with `dataKey`: such a snapshot is unusable and the node should keep its last good one.
 */
export function buildRuntime(
  payload: SnapshotPayload,
  dataKey: Uint8Array,
  env: Record<string, string | undefined>,
): BuildRuntimeResult {
  const missing = new Map<string, Set<string>>();
  const warnings: string[] = [];

  const servers = new Map<string, ResolvedServer>();
  for (const entry of payload.servers) {
    servers.set(entry.name, resolveServer(entry, dataKey, env, missing));
  }

  const users = new Map<string, UserEntry>();
  for (const user of payload.users) users.set(user.id, user);

  const keysByHash = new Map<string, RuntimeKey>();
  const keyHashById = new Map<string, string>();
  const grants = new GrantCache(servers);
  let orphans = 0;
  const keyLimits = payload.keyLimits ?? {};
  const add = (id: string, name: string, hash: string, userId: string, tools: ReadonlyMap<string, ToolGrant>, expiresAt: string | null, revoked: boolean, limits: KeyLimitsEntry | null): void => {
    const user = users.get(userId);
    if (!user) {
      // One warning per key would be 100,000 strings for one bad snapshot: count, and name the first few.
      if (orphans++ < 5) warnings.push(`key ${id} belongs to user ${userId}, who is not in the snapshot; the key is ignored`);
      return;
    }
    keysByHash.set(hash, { id, name, hash, user, revoked, expiresAtMs: expiryMs(expiresAt), tools, limits });
    keyHashById.set(id, hash);
  };
  for (const entry of payload.keys) add(entry.id, entry.name, entry.hash, entry.userId, grants.forList(entry.servers), entry.expiresAt, entry.revoked, entry.limits ?? null);
  const table = payload.keyTable;
  if (table) {
    // Keys sharing a grant list (a profile, a bulk import) share one tools map: built once per list.
    const byIndex = table.grants.map((list) => grants.forList(list));
    forEachKeyRow(table, (id, name, hash, userId, g, expiresAt, revoked) => add(id, name, hash, userId, byIndex[g]!, expiresAt, revoked, keyLimits[id] ?? null));
  }
  if (orphans > 5) warnings.push(`${orphans - 5} more keys belong to users not in the snapshot and are ignored`);

  const providers = new Map<string, ResolvedProvider>();
  for (const entry of payload.providers ?? []) providers.set(entry.name, resolveProvider(entry, dataKey, env, missing));

  const missingEnv = [...missing].map(([name, serverNames]) => ({ name, servers: [...serverNames].sort() }));
  missingEnv.sort((a, b) => a.name.localeCompare(b.name));

  const sessionKeys = payload.sessionSecrets
    ? deriveSessionKeyring(
        openSessionSecret(payload.sessionSecrets.current, dataKey),
        payload.sessionSecrets.previous && openSessionSecret(payload.sessionSecrets.previous, dataKey),
      )
    : null;

  const runtime: Runtime = { version: payload.version, issuedAt: payload.issuedAt, servers, keysByHash, keyHashById, users, sessionKeys, providers };
  return { runtime, missingEnv, warnings };
}

/** Opens one session secret; a value sealed for another slot (AAD not naming this id) is refused. */
function openSessionSecret(entry: SessionSecretEntry, dataKey: Uint8Array): SessionSecret {
  if (entry.secret.aad !== sessionSecretAad(entry.id)) throw new SnapshotError('data_key', `session secret ${entry.id} is sealed for another slot`);
  return { id: entry.id, secret: openValue(dataKey, entry.secret) };
}

/**
 * A new Runtime from `base` and a verified delta (keys and users only; servers are unchanged, so their
 * opened secrets, missing variables and upstream connections carry over). Copy-on-write: `base` is left
 * untouched for requests still running on it. Costs the changed keys (layered maps, `layered-map.ts`),
 * not a copy of 100,000; a user change also walks the keys to re-point them.
 */
export function applyDelta(base: Runtime, delta: SnapshotDelta): { runtime: Runtime; warnings: string[] } {
  const warnings: string[] = [];
  const users = editMap(base.users);
  const keysByHash = editMap(base.keysByHash);
  const keyHashById = editMap(base.keyHashById);
  const removeKey = (id: string): void => {
    const hash = keyHashById.get(id);
    if (hash === undefined) return;
    keysByHash.delete(hash);
    keyHashById.delete(id);
  };

  for (const id of delta.removeUserIds) users.delete(id);
  const changedUsers = new Set<string>();
  for (const user of delta.upsertUsers) {
    if (users.get(user.id) !== undefined) changedUsers.add(user.id);
    users.set(user.id, user);
  }
  // Keys hold their user: re-point (or drop) the keys of users that changed or went away. This walks
  // every key; user changes are rare next to key changes.
  if (changedUsers.size > 0 || delta.removeUserIds.length > 0) {
    for (const [hash, key] of keysByHash.entries()) {
      const user = users.get(key.user.id);
      if (!user) {
        keysByHash.delete(hash);
        keyHashById.delete(key.id);
      } else if (changedUsers.has(user.id)) {
        keysByHash.set(hash, { ...key, user });
      }
    }
  }

  for (const id of delta.removeKeyIds) removeKey(id);
  const grants = new GrantCache(base.servers);
  for (const entry of delta.upsertKeys) {
    removeKey(entry.id); // a rotation changes the hash: the old one must stop working
    const user = users.get(entry.userId);
    if (!user) {
      warnings.push(`key ${entry.id} belongs to user ${entry.userId}, who is not in the snapshot; the key is ignored`);
      continue;
    }
    const key: RuntimeKey = { id: entry.id, name: entry.name, hash: entry.hash, user, revoked: entry.revoked, expiresAtMs: expiryMs(entry.expiresAt), tools: grants.forList(entry.servers), limits: entry.limits ?? null };
    keysByHash.set(entry.hash, key);
    keyHashById.set(entry.id, entry.hash);
  }

  return {
    runtime: { version: delta.version, issuedAt: delta.issuedAt, servers: base.servers, keysByHash: keysByHash.done(), keyHashById: keyHashById.done(), users: users.done(), sessionKeys: base.sessionKeys, providers: base.providers },
    warnings,
  };
}

/** Parses a tool list into a grant: `"*"` anywhere = all, `[]` = none (null). */
export function toolGrant(tools: readonly string[]): ToolGrant | null {
  if (tools.includes('*')) return '*';
  return tools.length === 0 ? null : new Set(tools);
}

/** `a ∩ b`, reusing either side when the other is `*` (so 100,000 keys with `*` share one object). */
export function intersectGrants(a: ToolGrant | null, b: ToolGrant | null): ToolGrant | null {
  if (a === null || b === null) return null;
  if (a === '*') return b;
  if (b === '*') return a;
  const out = new Set<string>();
  const [small, large] = a.size <= b.size ? [a, b] : [b, a];
  for (const tool of small) if (large.has(tool)) out.add(tool);
  return out.size === 0 ? null : out;
}

/**
 * Tools maps memoised for one build: per (server, tool list) the intersection with the server's
 * `toolsToExecute`, and per whole grant list the map a key holds. Keys allocated from the same profile or
 * import share one map (read-only to every reader) instead of each holding a copy, which keeps 100,000
 * keys cheap to build and to hold.
 */
class GrantCache {
  readonly #byServerTools = new Map<string, ToolGrant | null>();
  readonly #byList = new Map<string, ReadonlyMap<string, ToolGrant>>();

  constructor(private readonly servers: ReadonlyMap<string, ResolvedServer>) {}

  forList(list: readonly KeyServerGrant[]): ReadonlyMap<string, ToolGrant> {
    // JSON, not names joined with separator characters: tool names are free text (a name holding the
    // separators made another list's id, and the key got that list's grants: test/security/grant-memo-ids).
    const id = JSON.stringify(list.map((g) => [g.server, g.tools]));
    let tools = this.#byList.get(id);
    if (tools === undefined) {
      tools = this.#build(list);
      this.#byList.set(id, tools);
    }
    return tools;
  }

  #build(list: readonly KeyServerGrant[]): ReadonlyMap<string, ToolGrant> {
    const tools = new Map<string, ToolGrant>();
    for (const grant of list) {
      const server = this.servers.get(grant.server);
      if (!server) continue; // a grant for a server that no longer exists grants nothing
      const id = JSON.stringify([server.name, grant.tools]);
      let allowed = this.#byServerTools.get(id);
      if (allowed === undefined) {
        allowed = intersectGrants(server.toolsToExecute, toolGrant(grant.tools));
        this.#byServerTools.set(id, allowed);
      }
      if (allowed === null) continue;
      const previous = tools.get(grant.server);
      // A key may name a server twice (e.g. from a profile and directly): the grants are united.
      tools.set(grant.server, previous === undefined ? allowed : uniteGrants(previous, allowed));
    }
    return tools;
  }
}

/** Expiry as epoch ms; an unparseable expiry is treated as already expired: failing closed is the safe reading. */
function expiryMs(expiresAt: string | null): number | null {
  if (expiresAt === null) return null;
  const ms = Date.parse(expiresAt);
  return Number.isNaN(ms) ? 0 : ms;
}

function uniteGrants(a: ToolGrant, b: ToolGrant): ToolGrant {
  if (a === '*' || b === '*') return '*';
  return new Set([...a, ...b]);
}

/** Resolves one value; returns undefined (and records the variable) when an `env` reference is unset. */
function resolveValue(
  ref: ValueRef,
  dataKey: Uint8Array,
  env: Record<string, string | undefined>,
  onMissing: (name: string) => void,
): string | undefined {
  switch (ref.kind) {
    case 'plain':
      return ref.value;
    case 'sealed':
      return openValue(dataKey, ref);
    case 'env': {
      const value = env[ref.name];
      // An empty variable counts as unset: an empty credential is never what an operator meant.
      if (value === undefined || value === '') {
        onMissing(ref.name);
        return undefined;
      }
      return value;
    }
  }
}

function resolveServer(
  entry: ServerEntry,
  dataKey: Uint8Array,
  env: Record<string, string | undefined>,
  missing: Map<string, Set<string>>,
): ResolvedServer {
  const missingHere: string[] = [];
  const onMissing = (name: string): void => {
    missingHere.push(name);
    let set = missing.get(name);
    if (!set) missing.set(name, (set = new Set()));
    set.add(entry.name);
  };
  const secrets: string[] = [];
  const resolve = (ref: ValueRef): string | undefined => {
    const value = resolveValue(ref, dataKey, env, onMissing);
    // With and without its auth scheme: an upstream may echo the token of `Bearer <token>` alone.
    if (value !== undefined && ref.kind !== 'plain') secrets.push(...secretForms(value));
    return value;
  };

  // Lower-cased names (one spelling per header, so a caller's allowlisted header can never add a second
  // value), in an object without a prototype (a name such as `__proto__` is a valid token); names the shared
  // rules refuse (`snapshot/rules.ts`) are dropped, should an older control plane have stored one.
  const headers: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [name, ref] of Object.entries(entry.headers)) {
    if (headerNameProblem(name, 'configured') !== null) continue;
    const value = resolve(ref);
    if (value !== undefined) headers[name.toLowerCase()] = value;
  }

  let urlText: string | undefined;
  if (entry.url) {
    urlText = resolve(entry.url);
    // The URL may embed credentials (user:pass@, a token in the query or path): the whole URL and, by the
    // shared rule, each credential part alone (an upstream may echo `?api_key=` without the rest) are secrets.
    if (urlText !== undefined) {
      secrets.push(urlText);
      const parsed = parseHttpUrl(urlText);
      if (parsed !== null) secrets.push(...urlSecrets(parsed));
    }
  }

  let stdio: ResolvedStdio | null = null;
  if (entry.stdio) {
    const stdioEnv: Record<string, string> = {};
    for (const [name, ref] of Object.entries(entry.stdio.env)) {
      const value = resolve(ref);
      if (value !== undefined) stdioEnv[name] = value;
    }
    stdio = { command: entry.stdio.command, args: [...entry.stdio.args], env: stdioEnv };
  }

  let url: URL | null = null;
  let reason: string | null = null;
  if (missingHere.length > 0) {
    reason = UnavailableReason.missingEnv([...new Set(missingHere)]);
  } else if (entry.disabled) {
    reason = UnavailableReason.disabled();
  } else if ((entry.authType === 'PER_USER_OAUTH' || entry.authType === 'PER_USER_HEADERS' || entry.authType === 'OAUTH') && entry.connectionType === 'STDIO') {
    // Per-user and OAuth credentials are HTTP headers (fetched per call, data-plane/credentials/).
    reason = UnavailableReason.perUser(entry.authType);
  } else if (entry.connectionType === 'STDIO') {
    if (!stdio) reason = UnavailableReason.noStdio();
  } else if (urlText === undefined) {
    reason = UnavailableReason.noUrl();
  } else {
    url = parseHttpUrl(urlText);
    if (!url) reason = UnavailableReason.badUrl();
  }

  const allowedExtraHeaders = [...new Set(entry.allowedExtraHeaders.map((h) => h.toLowerCase()))].filter(isForwardableHeader);

  return {
    id: entry.id,
    name: entry.name,
    connectionType: entry.connectionType,
    authType: entry.authType,
    url,
    headers,
    stdio,
    toolsToExecute: toolGrant(entry.toolsToExecute),
    allowedExtraHeaders,
    toolTimeoutMs: entry.toolTimeoutMs,
    disabled: entry.disabled,
    unavailable: reason === null ? null : ToolFailure.unavailable(entry.name, reason),
    fingerprint: fingerprint(entry.connectionType, urlText, headers, stdio),
    ...(entry.toolPricing !== undefined ? { toolPricing: entry.toolPricing } : {}),
    secrets: secrets.filter((s) => s.length >= 4),
  };
}

/** Resolves a provider like a server: sealed key opened, `env.NAME` from this node's environment. */
function resolveProvider(
  entry: ProviderEntry,
  dataKey: Uint8Array,
  env: Record<string, string | undefined>,
  missing: Map<string, Set<string>>,
): ResolvedProvider {
  const missingHere: string[] = [];
  const onMissing = (name: string): void => {
    missingHere.push(name);
    let set = missing.get(name);
    if (!set) missing.set(name, (set = new Set()));
    set.add(`provider:${entry.name}`);
  };
  const urlText = resolveValue(entry.baseUrl, dataKey, env, onMissing);
  const apiKey = resolveValue(entry.apiKey, dataKey, env, onMissing);
  const baseUrl = urlText === undefined ? null : parseHttpUrl(urlText);
  let unavailable: string | null = null;
  if (missingHere.length > 0) unavailable = UnavailableReason.missingEnv([...new Set(missingHere)]);
  else if (baseUrl === null) unavailable = UnavailableReason.badUrl();
  const usable = unavailable === null && baseUrl !== null && apiKey !== undefined;
  const headers: Record<string, string> = usable ? { 'x-api-key': apiKey } : {};
  return {
    id: entry.id,
    name: entry.name,
    kind: entry.kind,
    baseUrl: usable ? baseUrl : null,
    apiKey: usable ? apiKey : null,
    prices: entry.prices,
    unavailable,
    server: usable
      ? {
          id: `provider:${entry.id}`,
          name: entry.name,
          connectionType: 'HTTP',
          authType: 'HEADERS',
          url: baseUrl,
          headers,
          stdio: null,
          toolsToExecute: null,
          allowedExtraHeaders: ANTHROPIC_FORWARDED_HEADERS,
          // A long generation streams for minutes; the caller going away still cancels it.
          toolTimeoutMs: 10 * 60_000,
          disabled: false,
          unavailable: null,
          fingerprint: fingerprint('HTTP', baseUrl.href, headers, null),
          secrets: [apiKey, ...urlSecrets(baseUrl)],
        }
      : null,
  };
}

/**
 * What of a provider's base URL is secret: a provider reached as `https://host/v1?api-key=…` or
 * `https://gateway/t/<token>/v1` takes its key in the URL, and an answer echoing the request URL must not hand
 * it to a caller. The parts the shared rule calls credentials (snapshot/url-credentials.ts, the rule the
 * control plane seals and redacts by), as sent and decoded, and then the whole URL too; a URL without one
 * (`?api-version=2024-06-01`) adds nothing, so such harmless text is not cut out of answers.
 */
function urlSecrets(url: URL): string[] {
  const parts = urlCredentialParts(url);
  if (parts.length === 0) return [];
  // At least 4 characters, as every secret form (`secretForms`): shorter ones would redact ordinary text.
  return [...new Set([url.href, ...parts.flatMap((p) => [p.raw, p.value])])].filter((s) => s.length >= 4);
}

function parseHttpUrl(text: string): URL | null {
  try {
    const url = new URL(text);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url : null;
  } catch {
    return null;
  }
}

function fingerprint(
  type: ConnectionType,
  url: string | undefined,
  headers: Record<string, string>,
  stdio: ResolvedStdio | null,
): string {
  const sortedHeaders = Object.entries(headers).sort(([a], [b]) => a.localeCompare(b));
  const sortedEnv = stdio ? Object.entries(stdio.env).sort(([a], [b]) => a.localeCompare(b)) : null;
  const material = JSON.stringify([type, url ?? null, sortedHeaders, stdio?.command ?? null, stdio?.args ?? null, sortedEnv]);
  // A digest, not the material itself, so the fingerprint can be logged or compared without holding secrets twice.
  return createHash('sha256').update(material).digest('base64url');
}

export type RuntimeListener = (runtime: Runtime, previous: Runtime | null) => void;

/**
 * The one mutable slot: the Runtime requests are served from. Swapping is a single assignment, so a
 * request that already read `current` finishes on the Runtime it started with.
 */
export class RuntimeHolder {
  #current: Runtime | null = null;
  readonly #listeners = new Set<RuntimeListener>();

  get current(): Runtime | null {
    return this.#current;
  }

  set(runtime: Runtime): void {
    const previous = this.#current;
    this.#current = runtime;
    // Every listener runs even if one throws: the swap itself has already happened.
    let failure: unknown = null;
    for (const listener of this.#listeners) {
      try {
        listener(runtime, previous);
      } catch (error) {
        failure ??= error;
      }
    }
    if (failure !== null) throw failure;
  }

  /** Calls `listener` after every swap; returns a function that unsubscribes. */
  onChange(listener: RuntimeListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
