/**
 * Which tools a key may see and call on `/mcp`, where tools are named `{server}-{tool}`.
 *
 * Server names cannot contain a hyphen (schema: `SERVER_NAME_PATTERN`) while tool names may, so the first
 * hyphen always separates the two. The allowed set per key and server (server `toolsToExecute` ∩ key grant)
 * is precomputed in the Runtime; these functions only look it up. Pure; no upstream knowledge.
 */
import type { ResolvedServer, Runtime, RuntimeKey, ToolGrant } from '../config/runtime.js';
import { servableTools, toolNameProblem } from '../snapshot/tool-names.js';

export const TOOL_NAME_SEPARATOR = '-';

export function aggregatedToolName(server: string, tool: string): string {
  return `${server}${TOOL_NAME_SEPARATOR}${tool}`;
}

export interface ParsedToolName {
  server: ResolvedServer;
  tool: string;
}

/** `crm-find-contact` → (server `crm`, tool `find-contact`), or null if no configured server has that prefix. */
export function parseToolName(runtime: Runtime, name: string): ParsedToolName | null {
  const at = name.indexOf(TOOL_NAME_SEPARATOR);
  if (at <= 0 || at === name.length - 1) return null;
  const server = runtime.servers.get(name.slice(0, at));
  return server ? { server, tool: name.slice(at + 1) } : null;
}

/**
 * Whether the grant lets a caller call `tool`. A name that is no tool name (snapshot/tool-names.ts: control
 * or format characters, empty, over 128) never is, whatever the grant: no list the node serves shows one,
 * and a caller who sends one anyway must not reach the upstream with it. Checked after the grant, so only
 * an allowed call pays for the rule (one regex test of the name).
 */
export function grantAllows(grant: ToolGrant | undefined, tool: string): boolean {
  return grant !== undefined && (grant === '*' || grant.has(tool)) && toolNameProblem(tool) === null;
}

/**
 * Why the grant does not let a caller call `tool`, or null when it does (`grantAllows`): a name that is no
 * tool name is `invalid_tool_name` whatever the grant, so every route records the same reason for it.
 */
export function toolCallRefusal(grant: ToolGrant | undefined, tool: string): 'not_granted' | 'invalid_tool_name' | null {
  if (grantAllows(grant, tool)) return null;
  return toolNameProblem(tool) === null ? 'not_granted' : 'invalid_tool_name';
}

export type ToolCheck =
  | { ok: true; server: ResolvedServer; tool: string }
  | { ok: false; /** Why, for logs and audit; the caller is only told the tool is blocked. */ reason: 'unknown_server' | 'not_granted' | 'invalid_tool_name' };

/** Call-time check for an aggregated name: the server exists and the key may call this tool on it. */
export function checkToolCall(runtime: Runtime, key: RuntimeKey, name: string): ToolCheck {
  const parsed = parseToolName(runtime, name);
  if (!parsed) return { ok: false, reason: 'unknown_server' };
  const refusal = toolCallRefusal(key.tools.get(parsed.server.name), parsed.tool);
  if (refusal !== null) return { ok: false, reason: refusal };
  return { ok: true, server: parsed.server, tool: parsed.tool };
}

/**
 * The upstream tools (by their own names) the key may see on one server, as they may be served: tools
 * whose name is no tool name left out, descriptions sanitised (snapshot/tool-names.ts `servableTools`).
 */
export function filterTools<T extends { name: string; description?: unknown }>(grant: ToolGrant | undefined, tools: readonly T[]): T[] {
  if (grant === undefined) return [];
  return [...servableTools(grant === '*' ? tools : tools.filter((tool) => grant.has(tool.name))).tools];
}
