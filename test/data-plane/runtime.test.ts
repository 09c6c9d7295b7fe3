/** `buildRuntime` and `RuntimeHolder`: indexes, opened secrets, env resolution, precomputed grants. */
import { describe, expect, it } from 'vitest';
import { buildRuntime, intersectGrants, RuntimeHolder, toolGrant } from '../../data-plane/config/runtime.js';
import { SnapshotError } from '../../data-plane/snapshot/errors.js';
import { generateDataKey } from '../../data-plane/snapshot/seal.js';
import { hashKey } from '../../data-plane/snapshot/key-hash.js';
import { buildSnapshot } from './helpers.js';

describe('buildRuntime', () => {
  it('opens sealed values, resolves env references, indexes keys by hash and users by id', async () => {
    const snap = await buildSnapshot({
      servers: [
        {
          name: 'crm',
          url: { env: 'CRM_URL' },
          headers: { authorization: { secret: 'Bearer sealed' }, 'x-tenant': { env: 'TENANT' }, 'x-plain': 'p' },
          allowedExtraHeaders: ['X-Trace', 'Authorization', 'Mcp-Session-Id', 'x-trace'],
          toolsToExecute: ['a', 'b'],
        },
      ],
      keys: [{ name: 'dev', servers: [{ server: 'crm', tools: ['*'] }] }],
    });
    const { runtime, missingEnv, warnings } = buildRuntime(snap.payload, snap.dataKey, { CRM_URL: 'http://crm.internal/mcp', TENANT: 't1' });
    expect(missingEnv).toEqual([]);
    expect(warnings).toEqual([]);
    const crm = runtime.servers.get('crm');
    expect(crm?.unavailable).toBeNull();
    expect(crm?.url?.href).toBe('http://crm.internal/mcp');
    expect(crm?.headers).toEqual({ authorization: 'Bearer sealed', 'x-tenant': 't1', 'x-plain': 'p' });
    // Lower-cased, de-duplicated, and never the caller's credentials or transport-owned headers.
    expect(crm?.allowedExtraHeaders).toEqual(['x-trace']);
    expect(crm?.secrets).toEqual(expect.arrayContaining(['Bearer sealed', 'http://crm.internal/mcp']));
    expect(crm?.secrets).not.toContain('p');

    const key = runtime.keysByHash.get(hashKey(snap.keyValues.dev ?? ''));
    expect(key?.user.email).toBe('dev@example.com');
    expect(runtime.users.get('user_1')?.email).toBe('dev@example.com');
    // key '*' ∩ server [a, b] = server's set, shared rather than copied.
    expect(key?.tools.get('crm')).toBe(crm?.toolsToExecute);
  });

  it('marks a server with a missing env variable unavailable, with a clear reason, and lists it in missingEnv', async () => {
    const snap = await buildSnapshot({
      servers: [
        { name: 'crm', url: 'http://x/mcp', headers: { authorization: { env: 'CRM_TOKEN' } } },
        { name: 'wiki', url: { env: 'WIKI_URL' }, headers: { authorization: { env: 'CRM_TOKEN' } } },
        { name: 'empty', url: 'http://x/mcp', headers: { 'x-k': { env: 'EMPTY' } } },
      ],
      keys: [],
    });
    const { runtime, missingEnv } = buildRuntime(snap.payload, snap.dataKey, { EMPTY: '' });
    expect(missingEnv).toEqual([
      { name: 'CRM_TOKEN', servers: ['crm', 'wiki'] },
      { name: 'EMPTY', servers: ['empty'] },
      { name: 'WIKI_URL', servers: ['wiki'] },
    ]);
    expect(runtime.servers.get('crm')?.unavailable).toBe("server 'crm' unavailable on this node: environment variable CRM_TOKEN is not set");
    expect(runtime.servers.get('wiki')?.unavailable).toBe("server 'wiki' unavailable on this node: environment variables CRM_TOKEN, WIKI_URL are not set");
  });

  it('marks disabled servers and bad URLs unavailable; per-user HTTP servers are served (credentials per call)', async () => {
    const snap = await buildSnapshot({
      servers: [
        { name: 'off', url: 'http://x/mcp', disabled: true },
        { name: 'bad', url: 'not a url' },
        { name: 'ftp', url: 'ftp://x/' },
        { name: 'peruser', url: 'http://x/mcp', authType: 'PER_USER_OAUTH' },
        { name: 'nourl', url: null },
      ],
      keys: [],
    });
    const { runtime, missingEnv } = buildRuntime(snap.payload, snap.dataKey, {});
    expect(missingEnv).toEqual([]);
    expect(runtime.servers.get('off')?.unavailable).toMatch(/disabled/);
    expect(runtime.servers.get('bad')?.unavailable).toMatch(/URL is not a valid/);
    expect(runtime.servers.get('bad')?.unavailable).not.toContain('not a url');
    expect(runtime.servers.get('ftp')?.unavailable).toMatch(/URL is not a valid/);
    expect(runtime.servers.get('peruser')?.unavailable).toBeNull();
    expect(runtime.servers.get('peruser')?.url?.href).toBe('http://x/mcp');
    expect(runtime.servers.get('nourl')?.unavailable).toMatch(/no URL/);
  });

  it('precomputes each key’s tools: toolsToExecute ∩ grant, [] = none, unknown servers ignored', async () => {
    const snap = await buildSnapshot({
      servers: [
        { name: 'all', url: 'http://x/mcp', toolsToExecute: ['*'] },
        { name: 'some', url: 'http://x/mcp', toolsToExecute: ['a', 'b', 'c'] },
        { name: 'none', url: 'http://x/mcp', toolsToExecute: [] },
      ],
      keys: [
        {
          name: 'k',
          servers: [
            { server: 'all', tools: ['x', 'y'] },
            { server: 'some', tools: ['b', 'z'] },
            { server: 'some', tools: ['c'] },
            { server: 'none', tools: ['*'] },
            { server: 'ghost', tools: ['*'] },
          ],
        },
        { name: 'empty', servers: [{ server: 'all', tools: [] }] },
        { name: 'star', servers: [{ server: 'all', tools: ['*'] }] },
      ],
    });
    const { runtime } = buildRuntime(snap.payload, snap.dataKey, {});
    const k = runtime.keysByHash.get(hashKey(snap.keyValues.k ?? ''));
    expect([...(k?.tools.keys() ?? [])]).toEqual(['all', 'some']);
    expect([...((k?.tools.get('all') as Set<string>) ?? [])]).toEqual(['x', 'y']);
    expect([...((k?.tools.get('some') as Set<string>) ?? [])].sort()).toEqual(['b', 'c']);
    expect(runtime.keysByHash.get(hashKey(snap.keyValues.empty ?? ''))?.tools.size).toBe(0);
    expect(runtime.keysByHash.get(hashKey(snap.keyValues.star ?? ''))?.tools.get('all')).toBe('*');
  });

  it('drops keys whose user is missing, with a warning', async () => {
    const snap = await buildSnapshot({ servers: [], keys: [{ name: 'orphan', servers: [], userId: 'user_gone' }] });
    const { runtime, warnings } = buildRuntime(snap.payload, snap.dataKey, {});
    expect(runtime.keysByHash.size).toBe(0);
    expect(warnings[0]).toMatch(/user_gone/);
  });

  it('throws a SnapshotError when a sealed value does not open with the data key', async () => {
    const snap = await buildSnapshot({ servers: [{ name: 'crm', url: 'http://x/mcp', headers: { a: { secret: 's' } } }], keys: [] });
    expect(() => buildRuntime(snap.payload, generateDataKey(), {})).toThrow(SnapshotError);
  });

  it('gives the same fingerprint to the same connection settings across snapshots, another when they change', async () => {
    const cfg = (secret: string) => ({ servers: [{ name: 'crm', url: 'http://x/mcp', headers: { a: { secret } }, toolsToExecute: ['*'] }], keys: [] });
    const a = await buildSnapshot(cfg('one'));
    const b = await buildSnapshot(cfg('one'));
    const c = await buildSnapshot(cfg('two'));
    const fp = (s: typeof a) => buildRuntime(s.payload, s.dataKey, {}).runtime.servers.get('crm')?.fingerprint;
    expect(fp(a)).toBe(fp(b)); // re-sealed under a new data key, same plaintext
    expect(fp(a)).not.toBe(fp(c));
    expect(fp(a)).not.toContain('one');
  });

  // How fast this is belongs to `npm run bench:scale` (100k keys applied on a real node), not to a timed test.
  it('builds 100,000 keys, each findable by its hash with its own grant', async () => {
    const base = await buildSnapshot({ servers: [{ name: 'crm', url: 'http://x/mcp', toolsToExecute: ['a', 'b'] }], keys: [] });
    const keys = Array.from({ length: 100_000 }, (_, i) => ({
      id: `k${i}`,
      name: `k${i}`,
      hash: hashKey(`gk_${i}`),
      userId: 'user_1',
      servers: [{ server: 'crm', tools: i % 2 === 0 ? ['*'] : ['a'] }],
      expiresAt: null,
      revoked: false,
    }));
    const { runtime } = buildRuntime({ ...base.payload, keys }, base.dataKey, {});
    expect(runtime.keysByHash.size).toBe(100_000);
    expect(runtime.keysByHash.get(hashKey('gk_99998'))?.id).toBe('k99998');
    expect(runtime.keysByHash.get(hashKey('gk_99999'))?.id).toBe('k99999');
  });
});

describe('grants', () => {
  it('"*" anywhere means all, [] means none', () => {
    expect(toolGrant(['a', '*'])).toBe('*');
    expect(toolGrant([])).toBeNull();
    expect(intersectGrants('*', '*')).toBe('*');
    expect(intersectGrants(toolGrant(['a']), toolGrant(['b']))).toBeNull();
    expect(intersectGrants(null, '*')).toBeNull();
  });
});

describe('RuntimeHolder', () => {
  it('swaps atomically and tells listeners (all of them, even if one throws)', async () => {
    const snap = await buildSnapshot({ servers: [], keys: [] });
    const { runtime } = buildRuntime(snap.payload, snap.dataKey, {});
    const holder = new RuntimeHolder();
    expect(holder.current).toBeNull();
    const seen: unknown[] = [];
    holder.onChange(() => {
      throw new Error('boom');
    });
    const off = holder.onChange((rt, prev) => seen.push([rt, prev]));
    expect(() => holder.set(runtime)).toThrow('boom');
    expect(holder.current).toBe(runtime);
    expect(seen).toEqual([[runtime, null]]);
    off();
  });
});
