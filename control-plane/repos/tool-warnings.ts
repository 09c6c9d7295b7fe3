/**
 * Warnings (not errors) about tool names: a key grant or a server's `toolsToExecute` naming a tool the
 * server's known catalog lacks, or a grant naming a tool the server does not let anyone execute. Catalogs
 * change (an upstream adds a tool tomorrow), so these never refuse a write; they tell the operator at once
 * instead of leaving them to find out from an agent that cannot see the tool. Pure functions plus one read.
 */
import type { KeyServerGrant } from '../../data-plane/snapshot/schema.js';
import { getMcpServersByNames, type McpServer } from './mcp-servers.js';
import type { Db } from './transaction.js';

/** Stable codes, like InputErrorCode. */
export type InputWarningCode = 'UNKNOWN_TOOL' | 'TOOL_NOT_EXECUTABLE';

export interface InputWarning {
  code: InputWarningCode;
  /** Dotted path inside the operation's input, as for InputIssue. */
  field: string | null;
  message: string;
}

const ALL = '*';

function shortList(names: readonly string[]): string {
  const shown = names.slice(0, 10).join(', ');
  return names.length > 10 ? `${shown}, … (${names.length} in all)` : shown || 'none';
}

/** Entries of `toolsToExecute` that the server's synced catalog does not have (nothing before the first sync). */
export function serverToolWarnings(server: Pick<McpServer, 'name' | 'tools'> & { toolsToExecute: readonly string[] }, field = 'toolsToExecute'): InputWarning[] {
  if (server.tools === null) return [];
  const known = new Set(server.tools.map((t) => t.name));
  const out: InputWarning[] = [];
  server.toolsToExecute.forEach((tool, i) => {
    if (tool !== ALL && !known.has(tool)) {
      out.push({
        code: 'UNKNOWN_TOOL',
        field: `${field}.${i}`,
        message: `server "${server.name}" has no tool "${tool}" in its known catalog (${shortList([...known])}); kept in case the catalog changes`,
      });
    }
  });
  return out;
}

/**
 * Tools a key grant names that the server either does not have (per its known catalog) or does not allow.
 * `servers` are the granted servers as stored; `field` is the path of the grant list (`servers`).
 */
export function grantToolWarnings(servers: readonly McpServer[], grants: readonly KeyServerGrant[], field = 'servers'): InputWarning[] {
  const byName = new Map(servers.map((s) => [s.name, s]));
  const out: InputWarning[] = [];
  grants.forEach((grant, i) => {
    const server = byName.get(grant.server);
    if (!server) return;
    const known = server.tools === null ? null : new Set(server.tools.map((t) => t.name));
    const allowsAll = server.toolsToExecute.includes(ALL);
    grant.tools.forEach((tool, j) => {
      if (tool === ALL) return;
      const path = `${field}.${i}.tools.${j}`;
      if (known !== null && !known.has(tool)) {
        out.push({
          code: 'UNKNOWN_TOOL',
          field: path,
          message: `server "${server.name}" has no tool "${tool}" in its known catalog (${shortList([...known])}); granted anyway in case the catalog changes`,
        });
      } else if (!allowsAll && !server.toolsToExecute.includes(tool)) {
        out.push({
          code: 'TOOL_NOT_EXECUTABLE',
          field: path,
          message: `server "${server.name}" does not allow "${tool}" (its toolsToExecute: ${shortList(server.toolsToExecute)}); the key cannot call it until the server does`,
        });
      }
    });
  });
  return out;
}

/** grantToolWarnings after reading the granted servers. */
export async function readGrantToolWarnings(db: Db, grants: readonly KeyServerGrant[], field = 'servers'): Promise<InputWarning[]> {
  return grantToolWarnings(await getMcpServersByNames(db, grants.map((g) => g.server)), grants, field);
}
