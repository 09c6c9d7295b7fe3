/**
 * The typed client for the control plane's GraphQL API: `createGatehouseClient({ url, adminToken })`
 * returns one function per operation (queries, mutations, and `all…` helpers that page through a whole
 * connection). Mutations resolve to their payload, user errors included; transport and auth failures
 * throw `GatehouseError`. It does not retry, cache, or validate inputs itself (the server does, and its
 * answers come back as typed user errors), and it never puts the admin token in an error.
 */
import { GatehouseError, scrub, type GatehouseErrorCode, type GraphQLErrorInfo } from './errors.js';
import * as ops from './generated/graphql.js';
import type { TypedDocumentString } from './generated/graphql.js';

// ---- The SDK's public types: generated from the schema and sdk-client/operations.graphql ----

export type ID = string;
export type DateTime = string;
export type {
  AdminRole,
  AuthType,
  ConfigChangeAction,
  ConfigEntityKind,
  ConnectionType,
  CreateAdminTokenInput,
  CreateMcpServerInput,
  CreateUserInput,
  CreateVirtualKeyInput,
  DeleteMcpServerInput,
  DeleteUserInput,
  DeleteVirtualKeyInput,
  KeyServerGrantInput,
  McpServerStatus,
  ApproveNodeInput,
  EnrollNodeInput,
  ForgetNodeInput,
  NodeEnrollment,
  NodeState,
  RevokeAdminTokenInput,
  RevokeNodeInput,
  RevokeVirtualKeyInput,
  RotateVirtualKeyInput,
  SecretInput,
  SecretSource,
  StdioInput,
  UpdateMcpServerInput,
  UpdateUserInput,
  UpdateVirtualKeyInput,
} from './generated/graphql.js';

export type McpServer = ops.GatehouseMcpServerFragment;
export type SecretEntry = McpServer['headers'][number];
export type User = ops.GatehouseUserFragment;
export type VirtualKey = ops.GatehouseVirtualKeyFragment;
export type KeyServerGrant = VirtualKey['servers'][number];
export type DataPlaneNode = ops.GatehouseNodeFragment;
export type AdminToken = ops.GatehouseAdminTokenFragment;
export type AuditEvent = ops.GatehouseAuditEventFragment;
export type AuditEventFilter = ops.AuditEventFilter;
export type AuditChainVerification = ops.GatehouseVerifyAuditChainQuery['verifyAuditChain'];
export type AuditSettings = ops.GatehouseAuditSettingsQuery['auditSettings'][number];
export type SetAuditSettingsPayload = ops.GatehouseSetAuditSettingsMutation['setAuditSettings'];
export type Viewer = ops.GatehouseViewerQuery['viewer'];
export type PageInfo = ops.GatehousePageInfoFragment;
/** A problem with a mutation's input; the mutation changed nothing. `field` is a path in the arguments. */
export type UserError = ops.GatehouseUserErrorFragment;
/** Worth knowing, but the mutation went through (e.g. UNKNOWN_TOOL). */
export type UserWarning = ops.GatehouseUserWarningFragment;

export type CreateMcpServerPayload = ops.GatehouseCreateMcpServerMutation['createMcpServer'];
export type UpdateMcpServerPayload = ops.GatehouseUpdateMcpServerMutation['updateMcpServer'];
export type DeleteMcpServerPayload = ops.GatehouseDeleteMcpServerMutation['deleteMcpServer'];
export type CreateUserPayload = ops.GatehouseCreateUserMutation['createUser'];
export type UpdateUserPayload = ops.GatehouseUpdateUserMutation['updateUser'];
export type DeleteUserPayload = ops.GatehouseDeleteUserMutation['deleteUser'];
export type CreateVirtualKeyPayload = ops.GatehouseCreateVirtualKeyMutation['createVirtualKey'];
export type RotateVirtualKeyPayload = ops.GatehouseRotateVirtualKeyMutation['rotateVirtualKey'];
export type RevokeVirtualKeyPayload = ops.GatehouseRevokeVirtualKeyMutation['revokeVirtualKey'];
export type UpdateVirtualKeyPayload = ops.GatehouseUpdateVirtualKeyMutation['updateVirtualKey'];
export type DeleteVirtualKeyPayload = ops.GatehouseDeleteVirtualKeyMutation['deleteVirtualKey'];
export type CreateAdminTokenPayload = ops.GatehouseCreateAdminTokenMutation['createAdminToken'];
export type RevokeAdminTokenPayload = ops.GatehouseRevokeAdminTokenMutation['revokeAdminToken'];
export type EnrollNodePayload = ops.GatehouseEnrollNodeMutation['enrollNode'];
export type ApproveNodePayload = ops.GatehouseApproveNodeMutation['approveNode'];
export type RevokeNodePayload = ops.GatehouseRevokeNodeMutation['revokeNode'];
export type ForgetNodePayload = ops.GatehouseForgetNodeMutation['forgetNode'];
export type ApplyConfigPayload = ops.GatehouseApplyConfigMutation['applyConfig'];
export type AccessProfile = ops.GatehouseAccessProfileFragment;
export type CreateAccessProfilePayload = ops.GatehouseCreateAccessProfileMutation['createAccessProfile'];
export type UpdateAccessProfilePayload = ops.GatehouseUpdateAccessProfileMutation['updateAccessProfile'];
export type DeleteAccessProfilePayload = ops.GatehouseDeleteAccessProfileMutation['deleteAccessProfile'];
export type ProvisionUserPayload = ops.GatehouseProvisionUserMutation['provisionUser'];
export type ConfigChange = ApplyConfigPayload['changes'][number];

/** A Relay connection as the list operations select it. */
export interface Connection<T> {
  edges: Array<{ cursor: string; node: T }>;
  pageInfo: PageInfo;
}

/** Arguments of every connection field. The server defaults to 20 items a page and caps a page at 100. */
export interface PageArgs {
  first?: number | null;
  after?: string | null;
  last?: number | null;
  before?: string | null;
}

export interface ApplyConfigOptions {
  /** Plan and report the changes without writing anything. */
  dryRun?: boolean;
  /** Delete what a section of the document no longer names (sections left out are not touched). */
  prune?: boolean;
}

/** The subset of `fetch` the client uses; pass one to add a proxy agent, tracing, or an in-process server. */
export type FetchLike = (url: string, init: RequestInit) => Promise<Response>;

export interface GatehouseClientOptions {
  /** The control plane's base URL (`http://127.0.0.1:8090`), or its GraphQL endpoint (`…/graphql`). */
  url: string;
  /** An admin token (`gha_…`). Sent only in the Authorization header, never in an error message. */
  adminToken: string;
  /** Defaults to the global `fetch`. */
  fetch?: FetchLike;
  /** Per request, in milliseconds; default 30,000. A timeout throws GatehouseError NETWORK. */
  timeoutMs?: number;
}

/** The largest page the server returns; the `all…` helpers ask for this much per round trip by default. */
export const MAX_PAGE_SIZE = 100;
const DEFAULT_TIMEOUT_MS = 30_000;

export interface AllPagesOptions {
  /** Items per request, 1 to 100; default 100. */
  pageSize?: number;
}

export interface GatehouseClient {
  /** The GraphQL endpoint requests go to. */
  readonly endpoint: string;
  /** Sends any document; for operations this client has no function for yet. */
  request<T>(document: string, variables?: Record<string, unknown>): Promise<T>;

  configVersion(): Promise<number>;
  viewer(): Promise<Viewer>;

  mcpServers(args?: PageArgs): Promise<Connection<McpServer>>;
  allMcpServers(options?: AllPagesOptions): Promise<McpServer[]>;
  /** null when no server has that name. */
  mcpServer(name: string): Promise<McpServer | null>;
  createMcpServer(input: ops.CreateMcpServerInput): Promise<CreateMcpServerPayload>;
  updateMcpServer(input: ops.UpdateMcpServerInput): Promise<UpdateMcpServerPayload>;
  deleteMcpServer(input: ops.DeleteMcpServerInput): Promise<DeleteMcpServerPayload>;

  users(args?: PageArgs): Promise<Connection<User>>;
  allUsers(options?: AllPagesOptions): Promise<User[]>;
  user(id: ID): Promise<User | null>;
  createUser(input: ops.CreateUserInput): Promise<CreateUserPayload>;
  updateUser(input: ops.UpdateUserInput): Promise<UpdateUserPayload>;
  deleteUser(input: ops.DeleteUserInput): Promise<DeleteUserPayload>;

  virtualKeys(args?: PageArgs & { userId?: ID | null }): Promise<Connection<VirtualKey>>;
  allVirtualKeys(options?: AllPagesOptions & { userId?: ID | null }): Promise<VirtualKey[]>;
  virtualKey(id: ID): Promise<VirtualKey | null>;
  /** The payload's `key` is the plaintext value, returned this once. */
  createVirtualKey(input: ops.CreateVirtualKeyInput): Promise<CreateVirtualKeyPayload>;
  /** The payload's `key` is the new plaintext value, returned this once; the old value stops working. */
  rotateVirtualKey(input: ops.RotateVirtualKeyInput): Promise<RotateVirtualKeyPayload>;
  revokeVirtualKey(input: ops.RevokeVirtualKeyInput): Promise<RevokeVirtualKeyPayload>;
  updateVirtualKey(input: ops.UpdateVirtualKeyInput): Promise<UpdateVirtualKeyPayload>;
  deleteVirtualKey(input: ops.DeleteVirtualKeyInput): Promise<DeleteVirtualKeyPayload>;

  /** Makes the configuration match `document` (see applyConfig in the schema); keys it creates come back once. */
  applyConfig(document: unknown, options?: ApplyConfigOptions): Promise<ApplyConfigPayload>;
  /** The configuration as an applyConfig document; secrets as references only. */
  exportConfig(): Promise<unknown>;

  nodes(args?: PageArgs): Promise<Connection<DataPlaneNode>>;
  allNodes(options?: AllPagesOptions): Promise<DataPlaneNode[]>;
  enrollNode(input: ops.EnrollNodeInput): Promise<EnrollNodePayload>;
  approveNode(input: ops.ApproveNodeInput): Promise<ApproveNodePayload>;
  revokeNode(input: ops.RevokeNodeInput): Promise<RevokeNodePayload>;
  forgetNode(input: ops.ForgetNodeInput): Promise<ForgetNodePayload>;

  adminTokens(args?: PageArgs): Promise<Connection<AdminToken>>;
  allAdminTokens(options?: AllPagesOptions): Promise<AdminToken[]>;
  /** The payload's `token` is the plaintext value, returned this once. */
  createAdminToken(input: ops.CreateAdminTokenInput): Promise<CreateAdminTokenPayload>;
  revokeAdminToken(input: ops.RevokeAdminTokenInput): Promise<RevokeAdminTokenPayload>;

  accessProfiles(args?: PageArgs): Promise<Connection<AccessProfile>>;
  allAccessProfiles(options?: AllPagesOptions): Promise<AccessProfile[]>;
  /** By id or name; null when there is none. */
  accessProfile(idOrName: string): Promise<AccessProfile | null>;
  createAccessProfile(input: ops.CreateAccessProfileInput): Promise<CreateAccessProfilePayload>;
  updateAccessProfile(input: ops.UpdateAccessProfileInput): Promise<UpdateAccessProfilePayload>;
  deleteAccessProfile(input: ops.DeleteAccessProfileInput): Promise<DeleteAccessProfilePayload>;
  /** Finds or creates the user and allocates a key from the profile; the payload's `key` is shown this once. */
  provisionUser(input: ops.ProvisionUserInput): Promise<ProvisionUserPayload>;

  /** A page of audit events in arrival order (`last: n` for the newest n). */
  auditEvents(args?: PageArgs & { filter?: AuditEventFilter | null }): Promise<Connection<AuditEvent>>;
  /** Walks the audit hash chains over events received in [from, to] (all when omitted). */
  verifyAuditChain(range?: { from?: string | null; to?: string | null }): Promise<AuditChainVerification>;
  auditSettings(): Promise<AuditSettings[]>;
  setAuditSettings(input: ops.SetAuditSettingsInput): Promise<SetAuditSettingsPayload>;
  /**
   * Every matching event as a JSON line, streamed from `GET /audit/export` (filter names: key, user,
   * server, tool, outcome, from, to), for a data lake. Each yielded string is one line without its newline.
   */
  exportAuditEvents(filter?: AuditEventFilter): AsyncGenerator<string, void, undefined>;
}

/**
 * Walks a connection forwards from the start, one page per request, yielding each node. Stops with a
 * GatehouseError GRAPHQL if the server claims a next page without giving a new cursor, rather than loop.
 */
export async function* paginate<T>(fetchPage: (after: string | null) => Promise<Connection<T>>): AsyncGenerator<T, void, undefined> {
  let after: string | null = null;
  for (;;) {
    const page: Connection<T> = await fetchPage(after);
    for (const edge of page.edges) yield edge.node;
    if (!page.pageInfo.hasNextPage) return;
    const next = page.pageInfo.endCursor;
    if (next === null || next === after) {
      throw new GatehouseError('GRAPHQL', 'the server reported another page but gave no new cursor');
    }
    after = next;
  }
}

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

export function createGatehouseClient(options: GatehouseClientOptions): GatehouseClient {
  const endpoint = graphqlEndpoint(options.url);
  const adminToken = options.adminToken;
  if (typeof adminToken !== 'string' || adminToken.trim().length === 0) throw new TypeError('adminToken is required');
  const doFetch: FetchLike = options.fetch ?? ((url, init) => fetch(url, init));
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;

  // Every thrown error is built here, so the scrubbing of the token cannot be forgotten at a call site.
  const fail = (code: GatehouseErrorCode, message: string, status?: number, graphqlErrors?: GraphQLErrorInfo[]): GatehouseError =>
    new GatehouseError(
      code,
      scrub(message, adminToken),
      {
        ...(status === undefined ? {} : { status }),
        ...(graphqlErrors === undefined ? {} : { graphqlErrors: graphqlErrors.map((e) => ({ ...e, message: scrub(e.message, adminToken) })) }),
      },
    );

  async function request<T>(document: string | TypedDocumentString<T, unknown>, variables?: Record<string, unknown>): Promise<T> {
    let status: number;
    let text: string;
    try {
      const response = await doFetch(endpoint, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          // graphql-response+json makes the server use HTTP statuses for request errors (GraphQL over HTTP).
          accept: 'application/graphql-response+json, application/json;q=0.9',
          authorization: `Bearer ${adminToken}`,
        },
        body: JSON.stringify(variables === undefined ? { query: String(document) } : { query: String(document), variables }),
        signal: AbortSignal.timeout(timeoutMs),
      });
      status = response.status;
      text = await response.text();
    } catch (error) {
      throw fail('NETWORK', `could not reach the control plane at ${endpoint}: ${describeFetchError(error, timeoutMs)}`);
    }

    const body = parseGraphQLResponse(text);
    const errors = body?.errors ?? [];
    if (errors.length > 0) {
      const codes = new Set(errors.map((e) => e.code));
      // The auth codes win over GRAPHQL: they are what a script must react to (fix the token or its role).
      const code: GatehouseErrorCode =
        codes.has('UNAUTHENTICATED') || status === 401 ? 'UNAUTHENTICATED' : codes.has('FORBIDDEN') || status === 403 ? 'FORBIDDEN' : 'GRAPHQL';
      throw fail(code, errors.map((e) => e.message).join('; '), status, errors);
    }
    if (status === 401) throw fail('UNAUTHENTICATED', 'the control plane refused the admin token (HTTP 401)', status);
    if (status === 403) throw fail('FORBIDDEN', 'the admin token may not do this (HTTP 403)', status);
    if (status < 200 || status > 299) throw fail('HTTP', `the control plane answered HTTP ${status}${snippet(text)}`, status);
    if (body === null || body.data === null || typeof body.data !== 'object') {
      throw fail('HTTP', `the control plane's answer is not a GraphQL response${snippet(text)}`, status);
    }
    // T is generated from the same document and the schema (npm run codegen; a test fails on drift), so
    // the data is trusted to have that shape.
    return body.data as T;
  }

  /** A typed operation: result and variables types come with the generated document. */
  function run<R, V extends Record<string, unknown>>(document: TypedDocumentString<R, V>, variables?: V): Promise<R> {
    return request<R>(String(document), variables);
  }

  const page = (args: PageArgs | undefined) => ({
    first: args?.first ?? null,
    after: args?.after ?? null,
    last: args?.last ?? null,
    before: args?.before ?? null,
  });
  const pageSizeOf = (options: AllPagesOptions | undefined): number => {
    const size = options?.pageSize ?? MAX_PAGE_SIZE;
    if (!Number.isInteger(size) || size < 1 || size > MAX_PAGE_SIZE) throw new RangeError(`pageSize must be an integer from 1 to ${MAX_PAGE_SIZE}`);
    return size;
  };

  async function* exportAuditEvents(filter: AuditEventFilter = {}): AsyncGenerator<string, void, undefined> {
    const url = new URL(endpoint.replace(/\/graphql$/, '') + '/audit/export');
    for (const [name, value] of Object.entries(filter)) if (typeof value === 'string' && value !== '') url.searchParams.set(name, value);
    let response: Response;
    try {
      response = await doFetch(url.href, { method: 'GET', headers: { authorization: `Bearer ${adminToken}` } });
    } catch (error) {
      throw fail('NETWORK', `could not reach the control plane at ${url.origin}: ${describeFetchError(error, timeoutMs)}`);
    }
    if (response.status === 401) throw fail('UNAUTHENTICATED', 'the control plane refused the admin token (HTTP 401)', 401);
    if (response.status !== 200 || !response.body) throw fail('HTTP', `the audit export answered HTTP ${response.status}${snippet(await response.text())}`, response.status);
    const decoder = new TextDecoder();
    let rest = '';
    const reader = response.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      rest += decoder.decode(value, { stream: true });
      const lines = rest.split('\n');
      rest = lines.pop() ?? '';
      for (const line of lines) if (line !== '') yield line;
    }
    if (rest !== '') throw fail('HTTP', 'the audit export ended in the middle of a line (the control plane cut it short)');
  }

  const client: GatehouseClient = {
    endpoint,
    request,
    exportAuditEvents,
    auditEvents: async (args) => (await run(ops.GatehouseAuditEventsDocument, { ...page(args), filter: args?.filter ?? null })).auditEvents,
    verifyAuditChain: async (range) => (await run(ops.GatehouseVerifyAuditChainDocument, { from: range?.from ?? null, to: range?.to ?? null })).verifyAuditChain,
    auditSettings: async () => (await run(ops.GatehouseAuditSettingsDocument)).auditSettings,
    setAuditSettings: async (input) => (await run(ops.GatehouseSetAuditSettingsDocument, { input })).setAuditSettings,

    configVersion: async () => (await run(ops.GatehouseConfigVersionDocument)).configVersion,
    viewer: async () => (await run(ops.GatehouseViewerDocument)).viewer,

    mcpServers: async (args) => (await run(ops.GatehouseMcpServersDocument, page(args))).mcpServers,
    allMcpServers: async (options) => {
      const first = pageSizeOf(options);
      return collect(paginate((after) => client.mcpServers({ first, after })));
    },
    mcpServer: async (name) => (await run(ops.GatehouseMcpServerByNameDocument, { name })).mcpServer,
    createMcpServer: async (input) => (await run(ops.GatehouseCreateMcpServerDocument, { input })).createMcpServer,
    updateMcpServer: async (input) => (await run(ops.GatehouseUpdateMcpServerDocument, { input })).updateMcpServer,
    deleteMcpServer: async (input) => (await run(ops.GatehouseDeleteMcpServerDocument, { input })).deleteMcpServer,

    users: async (args) => (await run(ops.GatehouseUsersDocument, page(args))).users,
    allUsers: async (options) => {
      const first = pageSizeOf(options);
      return collect(paginate((after) => client.users({ first, after })));
    },
    user: async (id) => (await run(ops.GatehouseUserByIdDocument, { id })).user,
    createUser: async (input) => (await run(ops.GatehouseCreateUserDocument, { input })).createUser,
    updateUser: async (input) => (await run(ops.GatehouseUpdateUserDocument, { input })).updateUser,
    deleteUser: async (input) => (await run(ops.GatehouseDeleteUserDocument, { input })).deleteUser,

    virtualKeys: async (args) => (await run(ops.GatehouseVirtualKeysDocument, { ...page(args), userId: args?.userId ?? null })).virtualKeys,
    allVirtualKeys: async (options) => {
      const first = pageSizeOf(options);
      const userId = options?.userId ?? null;
      return collect(paginate((after) => client.virtualKeys({ first, after, userId })));
    },
    virtualKey: async (id) => (await run(ops.GatehouseVirtualKeyByIdDocument, { id })).virtualKey,
    createVirtualKey: async (input) => (await run(ops.GatehouseCreateVirtualKeyDocument, { input })).createVirtualKey,
    rotateVirtualKey: async (input) => (await run(ops.GatehouseRotateVirtualKeyDocument, { input })).rotateVirtualKey,
    revokeVirtualKey: async (input) => (await run(ops.GatehouseRevokeVirtualKeyDocument, { input })).revokeVirtualKey,
    updateVirtualKey: async (input) => (await run(ops.GatehouseUpdateVirtualKeyDocument, { input })).updateVirtualKey,
    deleteVirtualKey: async (input) => (await run(ops.GatehouseDeleteVirtualKeyDocument, { input })).deleteVirtualKey,

    applyConfig: async (document, options) =>
      (await run(ops.GatehouseApplyConfigDocument, { document, dryRun: options?.dryRun ?? false, prune: options?.prune ?? false })).applyConfig,
    exportConfig: async () => (await run(ops.GatehouseExportConfigDocument)).exportConfig,

    nodes: async (args) => (await run(ops.GatehouseNodesDocument, page(args))).nodes,
    allNodes: async (options) => {
      const first = pageSizeOf(options);
      return collect(paginate((after) => client.nodes({ first, after })));
    },
    enrollNode: async (input) => (await run(ops.GatehouseEnrollNodeDocument, { input })).enrollNode,
    approveNode: async (input) => (await run(ops.GatehouseApproveNodeDocument, { input })).approveNode,
    revokeNode: async (input) => (await run(ops.GatehouseRevokeNodeDocument, { input })).revokeNode,
    forgetNode: async (input) => (await run(ops.GatehouseForgetNodeDocument, { input })).forgetNode,

    adminTokens: async (args) => (await run(ops.GatehouseAdminTokensDocument, page(args))).adminTokens,
    allAdminTokens: async (options) => {
      const first = pageSizeOf(options);
      return collect(paginate((after) => client.adminTokens({ first, after })));
    },
    createAdminToken: async (input) => (await run(ops.GatehouseCreateAdminTokenDocument, { input })).createAdminToken,
    revokeAdminToken: async (input) => (await run(ops.GatehouseRevokeAdminTokenDocument, { input })).revokeAdminToken,

    accessProfiles: async (args) => (await run(ops.GatehouseAccessProfilesDocument, { first: args?.first ?? null, after: args?.after ?? null })).accessProfiles,
    allAccessProfiles: async (options) => {
      const first = pageSizeOf(options);
      return collect(paginate((after) => client.accessProfiles({ first, after })));
    },
    accessProfile: async (id) => (await run(ops.GatehouseAccessProfileDocument, { id })).accessProfile,
    createAccessProfile: async (input) => (await run(ops.GatehouseCreateAccessProfileDocument, { input })).createAccessProfile,
    updateAccessProfile: async (input) => (await run(ops.GatehouseUpdateAccessProfileDocument, { input })).updateAccessProfile,
    deleteAccessProfile: async (input) => (await run(ops.GatehouseDeleteAccessProfileDocument, { input })).deleteAccessProfile,
    provisionUser: async (input) => (await run(ops.GatehouseProvisionUserDocument, { input })).provisionUser,
  };
  return client;
}

/** `http://host:8090` → `http://host:8090/graphql`; a URL already ending in `/graphql` is kept. */
export function graphqlEndpoint(base: string): string {
  let url: URL;
  try {
    url = new URL(base);
  } catch {
    throw new TypeError(`not a URL: ${JSON.stringify(base)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError(`the control plane URL must be http or https, not ${url.protocol}`);
  // Credentials in the URL would end up in error messages and logs; the admin token has its own option.
  if (url.username !== '' || url.password !== '') throw new TypeError('the control plane URL must not contain credentials; pass adminToken instead');
  url.search = '';
  url.hash = '';
  if (!url.pathname.endsWith('/graphql')) url.pathname = `${url.pathname.replace(/\/+$/, '')}/graphql`;
  return url.toString();
}

interface ParsedResponse {
  data: unknown;
  errors: GraphQLErrorInfo[];
}

/** A GraphQL response body (`{data?, errors?}`), or null when the text is not one. */
function parseGraphQLResponse(text: string): ParsedResponse | null {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return null;
  }
  if (!isRecord(json) || (!('data' in json) && !('errors' in json))) return null;
  const errors = Array.isArray(json.errors) ? json.errors.map(toErrorInfo) : [];
  return { data: json.data ?? null, errors };
}

function toErrorInfo(raw: unknown): GraphQLErrorInfo {
  if (!isRecord(raw)) return { message: String(raw), code: null, path: null };
  const extensions = isRecord(raw.extensions) ? raw.extensions : {};
  return {
    message: typeof raw.message === 'string' ? raw.message : 'unknown GraphQL error',
    code: typeof extensions.code === 'string' ? extensions.code : null,
    path: Array.isArray(raw.path) ? raw.path.filter((p): p is string | number => typeof p === 'string' || typeof p === 'number') : null,
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Node's fetch says only "fetch failed"; the reason (ECONNREFUSED, ENOTFOUND, …) is in its cause chain. */
function describeFetchError(error: unknown, timeoutMs: number): string {
  if (error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError')) return `no answer within ${timeoutMs} ms`;
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current !== undefined && current !== null; depth++) {
    if (current instanceof Error) {
      const code = (current as Error & { code?: unknown }).code;
      parts.push(typeof code === 'string' && !current.message.includes(code) ? `${current.message} (${code})` : current.message);
      current = current.cause;
    } else {
      parts.push(String(current));
      break;
    }
  }
  return parts.filter((p) => p.length > 0).join(': ') || 'unknown error';
}

/** The start of a non-GraphQL body, for the error message (a proxy's error page, say), on one line. */
function snippet(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim().slice(0, 200);
  return line.length === 0 ? '' : `: ${line}`;
}
