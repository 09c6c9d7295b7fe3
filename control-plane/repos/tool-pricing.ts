/**
 * MCP tool pricing (issue 7): per server, a USD cost per call of each tool, charged by nodes to the caller's
 * budgets like LLM usage. Kept apart from the server's other settings (`mcp_servers.tool_pricing`), written
 * whole by `setToolPricing`; a change bumps the config version (nodes get it in the next snapshot).
 */
import { isCountableUsd, MAX_USD } from '../../data-plane/snapshot/budget-window.js';
import { bumpConfigVersion } from './config-state.js';
import { InputError, IssueList } from './errors.js';
import { toolNameProblem } from '../../data-plane/snapshot/tool-names.js';
import { inTransaction, nowIso, type Db } from './transaction.js';

export interface ToolPrice {
  tool: string;
  usdPerCall: number;
}

export function parseToolPricing(json: string): ToolPrice[] {
  const map = JSON.parse(json) as Record<string, number>;
  return Object.entries(map)
    .map(([tool, usdPerCall]) => ({ tool, usdPerCall }))
    .sort((a, b) => (a.tool < b.tool ? -1 : a.tool > b.tool ? 1 : 0));
}

export async function getToolPricing(db: Db, serverId: string): Promise<ToolPrice[]> {
  const row = await db.selectFrom('mcp_servers').select('tool_pricing').where('id', '=', serverId).executeTakeFirst();
  return row ? parseToolPricing(row.tool_pricing) : [];
}

/** Replaces the server's price table (an empty list makes every tool free). Returns the server's id. */
export async function setToolPricing(db: Db, input: { server: string; prices: readonly ToolPrice[] }): Promise<string> {
  const issues = new IssueList();
  const map: Record<string, number> = {};
  input.prices.forEach((p, i) => {
    const tool = p.tool.trim();
    // The rule of every tool name the control plane stores (tool-names.ts); the name is not echoed.
    if (toolNameProblem(tool) !== null) issues.add('INVALID_VALUE', `prices.${i}.tool`, 'tool must be a tool name (unprefixed; 1 to 128 characters, without control or format characters)');
    else if (!isCountableUsd(p.usdPerCall, false)) issues.add('INVALID_VALUE', `prices.${i}.usdPerCall`, `usdPerCall must be from 0 to ${MAX_USD}`);
    else if (Object.hasOwn(map, tool)) issues.add('DUPLICATE', `prices.${i}.tool`, `tool "${tool}" is priced twice`);
    else map[tool] = p.usdPerCall;
  });
  issues.throwIfAny();
  return inTransaction(db, async (trx) => {
    await bumpConfigVersion(trx);
    const server = await trx.selectFrom('mcp_servers').select('id').where('name', '=', input.server.trim()).executeTakeFirst();
    if (!server) throw new InputError('NOT_FOUND', 'server', `no server named "${input.server}"`);
    await trx.updateTable('mcp_servers').set({ tool_pricing: JSON.stringify(map), updated_at: nowIso() }).where('id', '=', server.id).execute();
    return server.id;
  });
}
