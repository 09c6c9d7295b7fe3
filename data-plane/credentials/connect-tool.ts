/**
 * The one tool a per-user server shows on `/mcp` to a caller who has not connected yet (whatever other
 * users' credentials list: their catalogs are theirs): `{server}-gatehouse_connect_account`.
 * An agent calls it like any tool and gets the auth-required answer with the connect URL (the upstream is
 * never called); once connected, the server's real tools are listed through the caller's own credential.
 * The name is Gatehouse's, so it cannot shadow an upstream tool.
 */
import type { CallToolResult, Tool } from '@modelcontextprotocol/sdk/types.js';
import type { ResolvedServer } from '../config/runtime.js';

export const CONNECT_TOOL = 'gatehouse_connect_account';

export function isPerUserServer(server: ResolvedServer): boolean {
  return server.authType === 'PER_USER_OAUTH' || server.authType === 'PER_USER_HEADERS';
}

export function connectTool(server: string): Tool {
  return {
    name: CONNECT_TOOL,
    description: `Connect your own account for ${server}. ${server}'s tools appear once you have; call this to get the link to open.`,
    inputSchema: { type: 'object', properties: {} },
    annotations: { readOnlyHint: true },
  };
}

/** What the connect tool answers a caller who is already connected (the upstream is not called). */
export function alreadyConnected(server: string): CallToolResult {
  return { content: [{ type: 'text', text: `Your ${server} account is connected. List the tools again to see ${server}'s tools.` }] };
}
