/**
 * The configuration document: `{version?, mcp_servers, users, virtual_keys}` in the article's snake_case
 * or Gatehouse's camelCase (the GraphQL input field names), read into the desired state with every problem
 * at its JSON path. Each section is optional and independent, so later ones (access profiles, providers)
 * are additive: a new section is a new field list and reader here plus its step in apply.ts. It does not
 * touch the database (apply.ts does) and it never echoes a secret value in a message.
 */
import type { AuthType, ConnectionType } from '../../data-plane/snapshot/schema.js';
import type { IssueList } from '../repos/errors.js';
import type { CreateMcpServerInput, NameValueInput } from '../repos/mcp-servers.js';
import type { KeyGrantInput } from '../repos/virtual-keys.js';
import { childPath, describeType, isRecord, ObjectReader, objectItems, type FieldSpec, type Located } from './document-reader.js';
import { KEY_LIMIT_FIELDS, readKeyLimits, type KeyLimits } from './key-limits.js';

export const DOCUMENT_VERSION = 1;

const CONNECTION_TYPES = ['HTTP', 'SSE', 'STDIO'] as const satisfies readonly ConnectionType[];
const AUTH_TYPES = ['NONE', 'HEADERS', 'OAUTH', 'PER_USER_OAUTH', 'PER_USER_HEADERS'] as const satisfies readonly AuthType[];

/** The marker `export` writes for a sealed secret: apply reads it as "keep the value stored under this name". */
export const STORED_MARKER_KEY = 'stored';

const laterVersion = (what: string) => `${what} are not supported by this version of Gatehouse yet; remove this section to apply the rest`;

const DOCUMENT_FIELDS: readonly FieldSpec[] = [
  { name: 'version' },
  { name: 'mcpServers', aliases: ['mcp_servers'] },
  { name: 'users' },
  { name: 'virtualKeys', aliases: ['virtual_keys'] },
  { name: 'accessProfiles', aliases: ['access_profiles'] },
  { name: 'providers' },
];

const SERVER_FIELDS: readonly FieldSpec[] = [
  { name: 'name' },
  { name: 'connectionType', aliases: ['connection_type'] },
  { name: 'connectionString', aliases: ['connection_string'] },
  { name: 'stdio' },
  { name: 'authType', aliases: ['auth_type'] },
  { name: 'headers' },
  { name: 'perUserHeaderKeys', aliases: ['per_user_header_keys'] },
  { name: 'toolsToExecute', aliases: ['tools_to_execute'] },
  { name: 'allowedExtraHeaders', aliases: ['allowed_extra_headers'] },
  { name: 'toolTimeoutMs', aliases: ['tool_timeout_ms'] },
  { name: 'disabled' },
  { name: 'oauth', aliases: ['oauth_config'], unsupported: 'OAuth settings are not supported in documents by this version of Gatehouse yet' },
  { name: 'toolPricing', aliases: ['tool_pricing'], unsupported: 'tool pricing is not read from documents yet: set it with the setToolPricing mutation' },
];

const PROFILE_FIELDS: readonly FieldSpec[] = [
  { name: 'name' },
  { name: 'description' },
  { name: 'servers', aliases: ['mcp_servers', 'mcpServers'] },
  { name: 'keyLifetimeDays', aliases: ['key_lifetime_days'] },
  { name: 'limitsFallback', aliases: ['limits_fallback'] },
  ...KEY_LIMIT_FIELDS,
];

const PROVIDER_FIELDS: readonly FieldSpec[] = [
  { name: 'name' },
  { name: 'kind' },
  { name: 'baseUrl', aliases: ['base_url'] },
  { name: 'apiKey', aliases: ['api_key'] },
  { name: 'prices' },
];
const PRICE_FIELDS: readonly FieldSpec[] = [
  { name: 'model' },
  { name: 'inputPerMTok', aliases: ['input_per_mtok'] },
  { name: 'outputPerMTok', aliases: ['output_per_mtok'] },
  { name: 'cacheWritePerMTok', aliases: ['cache_write_per_mtok'] },
  { name: 'cacheReadPerMTok', aliases: ['cache_read_per_mtok'] },
];

const STDIO_FIELDS: readonly FieldSpec[] = [{ name: 'command' }, { name: 'args' }, { name: 'env' }];
const SECRET_ENTRY_FIELDS: readonly FieldSpec[] = [{ name: 'name' }, { name: 'value' }];
const USER_FIELDS: readonly FieldSpec[] = [{ name: 'email' }, { name: 'name' }];
const GRANT_FIELDS: readonly FieldSpec[] = [{ name: 'server', aliases: ['name'] }, { name: 'tools' }];

/**
 * Why `virtual_key` (the article's field holding a key value) is refused: Gatehouse issues every value
 * itself (`gk_` + 32 random bytes) and stores only its hash. A value chosen by a person or copied from
 * another gateway is weaker, and one written in a file is already a leaked credential; and keeping it as a
 * name would show it in every read. Keys are identified by `user` + `name`; apply prints new values once.
 */
const KEY_VALUE_REFUSED =
  'Gatehouse never accepts a chosen key value: it issues each key itself and stores only its hash. ' +
  'Identify the key by user and name; apply prints the new key value once';

const KEY_FIELDS: readonly FieldSpec[] = [
  { name: 'name' },
  { name: 'user', aliases: ['user_email', 'userEmail'] },
  { name: 'servers', aliases: ['mcp_servers', 'mcpServers'] },
  { name: 'expiresAt', aliases: ['expires_at'] },
  { name: 'revoked' },
  { name: 'allowNoServers', aliases: ['allow_no_servers'] },
  ...KEY_LIMIT_FIELDS,
  { name: 'virtualKey', aliases: ['virtual_key', 'key', 'value'], unsupported: KEY_VALUE_REFUSED, refusedCode: 'KEY_VALUE_REFUSED' },
  { name: 'accessProfile', aliases: ['access_profile'], unsupported: laterVersion('access profiles') },
];

/**
 * Maps the field paths repositories report (relative to their input: `headers.0.value`) back to where the
 * value is in the document (`mcp_servers[1].headers.Authorization`), in the spelling the document used.
 */
export class FieldPaths {
  private readonly map = new Map<string, string>();

  constructor(
    readonly base: string,
    reader?: ObjectReader,
    specs: readonly FieldSpec[] = [],
  ) {
    if (reader) for (const spec of specs) this.map.set(spec.name, reader.pathOf(spec.name));
  }

  set(repoField: string, docPath: string): void {
    this.map.set(repoField, docPath);
  }

  resolve(repoField: string | null): string {
    if (repoField === null || repoField === '') return this.base;
    const parts = repoField.split('.');
    for (let n = parts.length; n > 0; n--) {
      const hit = this.map.get(parts.slice(0, n).join('.'));
      if (hit !== undefined) {
        return parts.slice(n).reduce<string>((path, p) => childPath(path, /^\d+$/.test(p) ? Number(p) : p), hit);
      }
    }
    return parts.reduce<string>((path, p) => childPath(path, /^\d+$/.test(p) ? Number(p) : p), this.base);
  }
}

export interface DesiredServer {
  path: string;
  input: CreateMcpServerInput;
  paths: FieldPaths;
}

export interface DesiredUser {
  path: string;
  email: string;
  name: string | null;
  paths: FieldPaths;
}

export interface DesiredKey {
  path: string;
  name: string;
  /** The owner's email. */
  user: string;
  servers: KeyGrantInput[];
  expiresAt: string | null;
  /** null: the document does not say (a revoked key stays revoked). */
  revoked: boolean | null;
  allowNoServers: boolean;
  limits: KeyLimits;
  paths: FieldPaths;
}

export interface DesiredProfile {
  path: string;
  name: string;
  description: string | null;
  servers: KeyGrantInput[];
  keyLifetimeDays: number | null;
  limitsFallback: 'FAIL_CLOSED' | 'LOCAL_ALLOWANCE';
  limits: KeyLimits;
  paths: FieldPaths;
}

export interface DesiredProvider {
  path: string;
  name: string;
  baseUrl: string;
  /** A value or `env.NAME`; null = keep the stored key (`{stored: …}` or left out). */
  apiKey: string | null;
  prices: Array<{ model: string; inputPerMTok: number; outputPerMTok: number; cacheWritePerMTok: number; cacheReadPerMTok: number }>;
  paths: FieldPaths;
}

/** A section is null when the document leaves it out: nothing in it is created, changed or pruned. */
export interface DesiredConfig {
  servers: DesiredServer[] | null;
  users: DesiredUser[] | null;
  keys: DesiredKey[] | null;
  profiles?: DesiredProfile[] | null;
  providers?: DesiredProvider[] | null;
}

/**
 * Header or env entries, as a map (`{Authorization: "Bearer …"}`, the article's form) or a list
 * (`[{name, value}]`, the API's form). A value is a string (plaintext or `env.NAME`) or the marker
 * `{stored: "…"}` that export writes, meaning "keep the stored value" (in the list form, leaving `value`
 * out means the same, as in the GraphQL API).
 */
function readSecretEntries(located: Located<unknown>, repoField: string, paths: FieldPaths, issues: IssueList): NameValueInput[] {
  const out: NameValueInput[] = [];
  const value = (raw: unknown, path: string): string | null | undefined => {
    if (typeof raw === 'string') return raw;
    if (raw === null) return null;
    if (isRecord(raw) && Object.keys(raw).length === 1 && typeof raw[STORED_MARKER_KEY] === 'string') return null;
    issues.add('INVALID_VALUE', path, `must be a string (a value or env.NAME) or {${STORED_MARKER_KEY}: …} to keep the stored value, not ${describeType(raw)}`);
    return undefined;
  };
  if (Array.isArray(located.value)) {
    located.value.forEach((item, i) => {
      const path = childPath(located.path, i);
      paths.set(`${repoField}.${out.length}`, path);
      if (!isRecord(item)) {
        issues.add('INVALID_VALUE', path, `must be an object {name, value}, not ${describeType(item)}`);
        return;
      }
      const entry = new ObjectReader(item, path, issues, SECRET_ENTRY_FIELDS);
      entry.required('name');
      const name = entry.string('name');
      const v = entry.raw('value');
      const parsed = v ? value(v.value, v.path) : null;
      if (name !== undefined && parsed !== undefined) out.push({ name, value: parsed });
    });
  } else if (isRecord(located.value)) {
    for (const [name, raw] of Object.entries(located.value)) {
      const path = childPath(located.path, name);
      const index = `${repoField}.${out.length}`;
      paths.set(index, path);
      paths.set(`${index}.name`, path);
      paths.set(`${index}.value`, path);
      const parsed = value(raw, path);
      if (parsed !== undefined) out.push({ name, value: parsed });
    }
  } else {
    issues.add('INVALID_VALUE', located.path, `must be an object {NAME: value} or a list [{name, value}], not ${describeType(located.value)}`);
  }
  return out;
}

function readServer(s: ObjectReader): DesiredServer | null {
  const paths = new FieldPaths(s.path, s, SERVER_FIELDS);
  s.required('name');
  s.required('connectionType');
  const name = s.string('name');
  const connectionType = s.enumValue('connectionType', CONNECTION_TYPES);
  const input: CreateMcpServerInput = {
    name: name ?? '',
    connectionType: connectionType ?? 'HTTP',
    connectionString: s.string('connectionString') ?? null,
    authType: s.enumValue('authType', AUTH_TYPES) ?? null,
    perUserHeaderKeys: s.stringList('perUserHeaderKeys') ?? null,
    toolsToExecute: s.stringList('toolsToExecute') ?? null,
    allowedExtraHeaders: s.stringList('allowedExtraHeaders') ?? null,
    toolTimeoutMs: s.integer('toolTimeoutMs') ?? null,
    disabled: s.boolean('disabled') ?? null,
  };
  const headers = s.raw('headers');
  if (headers) input.headers = readSecretEntries(headers, 'headers', paths, s.issues);
  const stdio = s.object('stdio', STDIO_FIELDS);
  if (stdio) {
    stdio.required('command');
    const env = stdio.raw('env');
    paths.set('stdio.command', stdio.pathOf('command'));
    paths.set('stdio.args', stdio.pathOf('args'));
    paths.set('stdio.env', stdio.pathOf('env'));
    input.stdio = {
      command: stdio.string('command') ?? '',
      args: stdio.stringList('args') ?? [],
      env: env ? readSecretEntries(env, 'stdio.env', paths, s.issues) : [],
    };
  }
  return name === undefined || connectionType === undefined ? null : { path: s.path, input, paths };
}

function readUser(u: ObjectReader): DesiredUser | null {
  u.required('email');
  const email = u.string('email');
  const name = u.string('name') ?? null;
  return email === undefined ? null : { path: u.path, email: email.trim().toLowerCase(), name, paths: new FieldPaths(u.path, u, USER_FIELDS) };
}

/** `"crm"` (every tool the server allows) or `{server: "crm", tools: ["search"]}`. */
function readGrants(list: Located<unknown[]>, paths: FieldPaths, issues: IssueList): KeyGrantInput[] {
  const out: KeyGrantInput[] = [];
  list.value.forEach((item, i) => {
    const path = childPath(list.path, i);
    paths.set(`servers.${out.length}`, path);
    if (typeof item === 'string') {
      paths.set(`servers.${out.length}.server`, path);
      out.push({ server: item, tools: ['*'] });
      return;
    }
    if (!isRecord(item)) {
      issues.add('INVALID_VALUE', path, `must be a server name or {server, tools}, not ${describeType(item)}`);
      return;
    }
    const g = new ObjectReader(item, path, issues, GRANT_FIELDS);
    g.required('server');
    // Deny by default: the object form names its tools (or "*"); only the bare name means "all it allows".
    g.required('tools');
    paths.set(`servers.${out.length}.server`, g.pathOf('server'));
    paths.set(`servers.${out.length}.tools`, g.pathOf('tools'));
    const server = g.string('server');
    const tools = g.stringList('tools');
    if (server !== undefined && tools !== undefined) out.push({ server, tools });
  });
  return out;
}

function readKey(k: ObjectReader): DesiredKey | null {
  const paths = new FieldPaths(k.path, k, KEY_FIELDS);
  k.required('name');
  k.required('user');
  k.required('servers');
  const name = k.string('name');
  const user = k.string('user');
  const list = k.list('servers');
  const servers = list ? readGrants(list, paths, k.issues) : [];
  const limits = readKeyLimits(k);
  if (name === undefined || user === undefined || list === undefined) return null;
  return {
    path: k.path,
    name: name.trim(),
    user: user.trim().toLowerCase(),
    servers,
    expiresAt: k.string('expiresAt') ?? null,
    revoked: k.boolean('revoked') ?? null,
    allowNoServers: k.boolean('allowNoServers') ?? false,
    limits,
    paths,
  };
}

function readProfile(p: ObjectReader): DesiredProfile | null {
  const paths = new FieldPaths(p.path, p, PROFILE_FIELDS);
  p.required('name');
  p.required('servers');
  const name = p.string('name');
  const list = p.list('servers');
  const servers = list ? readGrants(list, paths, p.issues) : [];
  const limits = readKeyLimits(p);
  const fallback = p.enumValue('limitsFallback', ['FAIL_CLOSED', 'LOCAL_ALLOWANCE'] as const);
  if (name === undefined || list === undefined) return null;
  return {
    path: p.path,
    name: name.trim(),
    description: p.string('description') ?? null,
    servers,
    keyLifetimeDays: p.integer('keyLifetimeDays') ?? null,
    limitsFallback: fallback ?? 'FAIL_CLOSED',
    limits,
    paths,
  };
}

function readProvider(p: ObjectReader): DesiredProvider | null {
  const paths = new FieldPaths(p.path, p, PROVIDER_FIELDS);
  p.required('name');
  p.required('baseUrl');
  const name = p.string('name');
  const baseUrl = p.string('baseUrl');
  let apiKey: string | null = null;
  const rawKey = p.raw('apiKey');
  if (rawKey) {
    if (typeof rawKey.value === 'string') apiKey = rawKey.value;
    else if (!(isRecord(rawKey.value) && typeof rawKey.value[STORED_MARKER_KEY] === 'string')) {
      p.issues.add('INVALID_VALUE', rawKey.path, `must be a string (a value or env.NAME) or {${STORED_MARKER_KEY}: …} to keep the stored key`);
    }
  }
  const prices: DesiredProvider['prices'] = [];
  const list = p.list('prices');
  if (list) {
    for (const [i, item] of objectItems(list, p.issues, PRICE_FIELDS).entries()) {
      paths.set(`prices.${i}`, item.path);
      for (const spec of PRICE_FIELDS) paths.set(`prices.${i}.${spec.name}`, item.pathOf(spec.name));
      for (const spec of PRICE_FIELDS) item.required(spec.name);
      const model = item.string('model');
      const n = (f: string) => item.number(f);
      const [inputPerMTok, outputPerMTok, cacheWritePerMTok, cacheReadPerMTok] = [n('inputPerMTok'), n('outputPerMTok'), n('cacheWritePerMTok'), n('cacheReadPerMTok')];
      if (model !== undefined && inputPerMTok !== undefined && outputPerMTok !== undefined && cacheWritePerMTok !== undefined && cacheReadPerMTok !== undefined) {
        prices.push({ model, inputPerMTok, outputPerMTok, cacheWritePerMTok, cacheReadPerMTok });
      }
    }
  }
  if (name === undefined || baseUrl === undefined) return null;
  return { path: p.path, name: name.trim(), baseUrl: baseUrl.trim(), apiKey, prices, paths };
}

function section<T>(doc: ObjectReader, name: string, specs: readonly FieldSpec[], read: (r: ObjectReader) => T | null): T[] | null {
  const list = doc.list(name);
  if (!list) return doc.has(name) ? [] : null;
  return objectItems(list, doc.issues, specs)
    .map(read)
    .filter((x): x is T => x !== null);
}

/**
 * Reads a whole document (already parsed from JSON or YAML). Problems go to `issues` with paths from the
 * document's root (`mcp_servers[0].name`; null for the document itself); entries that cannot be read are
 * left out of the result.
 */
export function readConfigDocument(document: unknown, issues: IssueList): DesiredConfig {
  if (!isRecord(document)) {
    issues.add('INVALID_VALUE', null, `a configuration document is an object with mcp_servers, users and virtual_keys, not ${describeType(document)}`);
    return { servers: null, users: null, keys: null };
  }
  const doc = new ObjectReader(document, '', issues, DOCUMENT_FIELDS);
  const version = doc.integer('version');
  if (version !== undefined && version !== DOCUMENT_VERSION) {
    issues.add('NOT_SUPPORTED', doc.pathOf('version'), `document version ${version} is not supported; this Gatehouse reads version ${DOCUMENT_VERSION}`);
  }
  return {
    servers: section(doc, 'mcpServers', SERVER_FIELDS, readServer),
    users: section(doc, 'users', USER_FIELDS, readUser),
    keys: section(doc, 'virtualKeys', KEY_FIELDS, readKey),
    profiles: section(doc, 'accessProfiles', PROFILE_FIELDS, readProfile),
    providers: section(doc, 'providers', PROVIDER_FIELDS, readProvider),
  };
}
