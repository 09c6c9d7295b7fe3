/** Aggregated tool names and the per-key tool filter. */
import { beforeAll, describe, expect, it } from 'vitest';
import { buildRuntime, type Runtime, type RuntimeKey } from '../../data-plane/config/runtime.js';
import { hashKey } from '../../data-plane/snapshot/key-hash.js';
import { aggregatedToolName, checkToolCall, filterTools, parseToolName } from '../../data-plane/policy/tool-filter.js';
import { buildSnapshot } from './helpers.js';

let runtime: Runtime;
let key: RuntimeKey;

beforeAll(async () => {
  const snap = await buildSnapshot({
    servers: [
      { name: 'crm', url: 'http://x/mcp', toolsToExecute: ['*'] },
      { name: 'wiki', url: 'http://x/mcp', toolsToExecute: ['search', 'read-page'] },
    ],
    keys: [{ name: 'k', servers: [{ server: 'crm', tools: ['find-contact'] }, { server: 'wiki', tools: ['*'] }] }],
  });
  runtime = buildRuntime(snap.payload, snap.dataKey, {}).runtime;
  const found = runtime.keysByHash.get(hashKey(snap.keyValues.k ?? ''));
  if (!found) throw new Error('key missing');
  key = found;
});

describe('tool names', () => {
  it('splits at the first hyphen: server names have none, tool names may', () => {
    expect(aggregatedToolName('crm', 'find-contact')).toBe('crm-find-contact');
    const parsed = parseToolName(runtime, 'crm-find-contact');
    expect(parsed?.server.name).toBe('crm');
    expect(parsed?.tool).toBe('find-contact');
    expect(parseToolName(runtime, 'nosuch-tool')).toBeNull();
    expect(parseToolName(runtime, 'crm-')).toBeNull();
    expect(parseToolName(runtime, '-crm')).toBeNull();
    expect(parseToolName(runtime, 'crm')).toBeNull();
  });
});

describe('checkToolCall', () => {
  it('allows exactly toolsToExecute ∩ key grant', () => {
    expect(checkToolCall(runtime, key, 'crm-find-contact').ok).toBe(true);
    expect(checkToolCall(runtime, key, 'crm-delete-all')).toEqual({ ok: false, reason: 'not_granted' });
    expect(checkToolCall(runtime, key, 'wiki-search').ok).toBe(true);
    expect(checkToolCall(runtime, key, 'wiki-read-page').ok).toBe(true);
    expect(checkToolCall(runtime, key, 'wiki-admin')).toEqual({ ok: false, reason: 'not_granted' });
    expect(checkToolCall(runtime, key, 'ghost-search')).toEqual({ ok: false, reason: 'unknown_server' });
  });
});

describe('filterTools', () => {
  it('keeps only granted tools', () => {
    const tools = [{ name: 'search' }, { name: 'read-page' }, { name: 'admin' }];
    expect(filterTools(key.tools.get('wiki'), tools).map((t) => t.name)).toEqual(['search', 'read-page']);
    expect(filterTools(undefined, tools)).toEqual([]);
    expect(filterTools('*', tools)).toHaveLength(3);
  });
});
