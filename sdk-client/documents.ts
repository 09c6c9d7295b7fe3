/**
 * The GraphQL documents the SDK sends, as plain strings: one named operation per API call, built from one
 * fragment per entity so every call returns the same shape (the types in types.ts). No I/O, and no
 * `graphql` runtime import: the SDK never parses a document itself (a test validates all of them against
 * control-plane/schema.graphql, so a schema change that breaks one fails CI, not a script in production).
 *
 * Keep each document small: the server refuses documents over 2,000 tokens, and a page size passed as a
 * variable (as here) keeps the query cost independent of how many items a page holds.
 */

const PAGE_INFO = 'pageInfo { endCursor hasNextPage hasPreviousPage startCursor }';

const SECRET_ENTRY = 'name value source';

const MCP_SERVER_FRAGMENT = `fragment GatehouseMcpServer on McpServer {
  id name connectionType connectionString
  stdio { command args env { ${SECRET_ENTRY} } }
  authType headers { ${SECRET_ENTRY} } perUserHeaderKeys
  toolsToExecute allowedExtraHeaders toolTimeoutMs disabled status
  tools { name description }
  createdAt updatedAt
}`;

const USER_FRAGMENT = `fragment GatehouseUser on User { id email name createdAt updatedAt }`;

const VIRTUAL_KEY_FRAGMENT = `fragment GatehouseVirtualKey on VirtualKey {
  id name userId user { id email name } keyPreview
  servers { server tools }
  expiresAt expired revoked revokedAt lastUsedAt createdAt updatedAt
}`;

const NODE_FRAGMENT = `fragment GatehouseNode on DataPlaneNode {
  id connected health appliedVersion lastSeenAt startedAt
  missingEnv { name servers }
  lastRejection { at code message }
}`;

const ADMIN_TOKEN_FRAGMENT = `fragment GatehouseAdminToken on AdminToken {
  id name role tokenPreview revoked revokedAt lastUsedAt createdAt
}`;

const USER_ERRORS = 'errors { field code message }';

const PAGE_VARIABLES = '$first: Int, $after: String, $last: Int, $before: String';
const PAGE_ARGUMENTS = 'first: $first, after: $after, last: $last, before: $before';

function connectionQuery(operation: string, field: string, fragmentName: string, fragment: string, extra = { variables: '', args: '' }): string {
  return `query ${operation}(${PAGE_VARIABLES}${extra.variables}) {
  ${field}(${PAGE_ARGUMENTS}${extra.args}) { edges { cursor node { ...${fragmentName} } } ${PAGE_INFO} }
}
${fragment}`;
}

function mutation(operation: string, field: string, inputType: string, selection: string, fragment: string): string {
  return `mutation ${operation}($input: ${inputType}!) {
  ${field}(input: $input) { ${selection} ${USER_ERRORS} }
}
${fragment}`;
}

export const documents = {
  // ---- Queries ----
  configVersion: 'query GatehouseConfigVersion { configVersion }',
  viewer: 'query GatehouseViewer { viewer { name role tokenId } }',

  mcpServers: connectionQuery('GatehouseMcpServers', 'mcpServers', 'GatehouseMcpServer', MCP_SERVER_FRAGMENT),
  mcpServer: `query GatehouseMcpServerByName($name: String!) { mcpServer(name: $name) { ...GatehouseMcpServer } }
${MCP_SERVER_FRAGMENT}`,

  users: connectionQuery('GatehouseUsers', 'users', 'GatehouseUser', USER_FRAGMENT),
  user: `query GatehouseUserById($id: ID!) { user(id: $id) { ...GatehouseUser } }
${USER_FRAGMENT}`,

  virtualKeys: connectionQuery('GatehouseVirtualKeys', 'virtualKeys', 'GatehouseVirtualKey', VIRTUAL_KEY_FRAGMENT, {
    variables: ', $userId: ID',
    args: ', userId: $userId',
  }),
  virtualKey: `query GatehouseVirtualKeyById($id: ID!) { virtualKey(id: $id) { ...GatehouseVirtualKey } }
${VIRTUAL_KEY_FRAGMENT}`,

  nodes: connectionQuery('GatehouseNodes', 'nodes', 'GatehouseNode', NODE_FRAGMENT),
  adminTokens: connectionQuery('GatehouseAdminTokens', 'adminTokens', 'GatehouseAdminToken', ADMIN_TOKEN_FRAGMENT),

  // ---- Mutations ----
  createMcpServer: mutation('GatehouseCreateMcpServer', 'createMcpServer', 'CreateMcpServerInput', 'mcpServer { ...GatehouseMcpServer }', MCP_SERVER_FRAGMENT),
  updateMcpServer: mutation('GatehouseUpdateMcpServer', 'updateMcpServer', 'UpdateMcpServerInput', 'mcpServer { ...GatehouseMcpServer }', MCP_SERVER_FRAGMENT),
  deleteMcpServer: mutation('GatehouseDeleteMcpServer', 'deleteMcpServer', 'DeleteMcpServerInput', 'mcpServer { ...GatehouseMcpServer }', MCP_SERVER_FRAGMENT),

  createUser: mutation('GatehouseCreateUser', 'createUser', 'CreateUserInput', 'user { ...GatehouseUser }', USER_FRAGMENT),
  updateUser: mutation('GatehouseUpdateUser', 'updateUser', 'UpdateUserInput', 'user { ...GatehouseUser }', USER_FRAGMENT),
  deleteUser: mutation('GatehouseDeleteUser', 'deleteUser', 'DeleteUserInput', 'user { ...GatehouseUser }', USER_FRAGMENT),

  createVirtualKey: mutation('GatehouseCreateVirtualKey', 'createVirtualKey', 'CreateVirtualKeyInput', 'key virtualKey { ...GatehouseVirtualKey }', VIRTUAL_KEY_FRAGMENT),
  rotateVirtualKey: mutation('GatehouseRotateVirtualKey', 'rotateVirtualKey', 'RotateVirtualKeyInput', 'key virtualKey { ...GatehouseVirtualKey }', VIRTUAL_KEY_FRAGMENT),
  revokeVirtualKey: mutation('GatehouseRevokeVirtualKey', 'revokeVirtualKey', 'RevokeVirtualKeyInput', 'virtualKey { ...GatehouseVirtualKey }', VIRTUAL_KEY_FRAGMENT),
  updateVirtualKey: mutation('GatehouseUpdateVirtualKey', 'updateVirtualKey', 'UpdateVirtualKeyInput', 'virtualKey { ...GatehouseVirtualKey }', VIRTUAL_KEY_FRAGMENT),
  deleteVirtualKey: mutation('GatehouseDeleteVirtualKey', 'deleteVirtualKey', 'DeleteVirtualKeyInput', 'virtualKey { ...GatehouseVirtualKey }', VIRTUAL_KEY_FRAGMENT),

  createAdminToken: mutation('GatehouseCreateAdminToken', 'createAdminToken', 'CreateAdminTokenInput', 'token adminToken { ...GatehouseAdminToken }', ADMIN_TOKEN_FRAGMENT),
  revokeAdminToken: mutation('GatehouseRevokeAdminToken', 'revokeAdminToken', 'RevokeAdminTokenInput', 'adminToken { ...GatehouseAdminToken }', ADMIN_TOKEN_FRAGMENT),
} as const;

export type DocumentName = keyof typeof documents;
