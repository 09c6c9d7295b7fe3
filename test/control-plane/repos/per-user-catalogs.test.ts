/**
 * A per-user server has no catalog of its own in storage (the per-user catalog class; the end-to-end
 * proof is test/e2e/per-user-catalogs.test.ts): `recordToolCatalogs` never stores one for it whoever
 * reports it, a catalog already stored (by an earlier release, or while the server had a shared
 * credential) reads as null, and migration 0019 clears what earlier releases stored. A server with a
 * shared credential keeps its catalog throughout. On each dialect.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { up as clearPerUserCatalogs } from '../../../control-plane/db/migrations/0019_per_user_catalogs.js';
import { getMcpServerByName, recordToolCatalogs } from '../../../control-plane/repos/mcp-servers.js';
import { openTestDatabase, testDialects, type TestDatabase } from '../../support/db.js';

const LEAKED = JSON.stringify([{ name: 'alice_payroll_export', description: 'listed to alice only' }]);
const SHARED = [{ name: 'echo', description: 'echo' }];

describe.each(testDialects)('per-user servers have no stored catalog on %s', (dialect) => {
  let t: TestDatabase;

  async function insert(name: string, authType: string, tools: string | null): Promise<void> {
    const now = new Date().toISOString();
    await t.db
      .insertInto('mcp_servers')
      .values({
        id: `id-${name}`,
        name,
        connection_type: 'HTTP',
        connection_string: 'https://upstream.example/mcp',
        stdio_command: null,
        stdio_args: '[]',
        stdio_env: '{}',
        auth_type: authType as 'NONE',
        headers: '{}',
        per_user_header_keys: authType === 'PER_USER_HEADERS' ? '["X-Token"]' : '[]',
        tools_to_execute: '["*"]',
        allowed_extra_headers: '[]',
        tool_timeout_ms: 1000,
        disabled: 0,
        status: 'ACTIVE',
        tools,
        created_at: now,
        updated_at: now,
      })
      .execute();
  }

  const storedTools = async (name: string): Promise<string | null> =>
    (await t.db.selectFrom('mcp_servers').select('tools').where('name', '=', name).executeTakeFirstOrThrow()).tools;

  beforeEach(async () => {
    t = await openTestDatabase(dialect);
    await insert('tickets', 'PER_USER_HEADERS', LEAKED);
    await insert('notes', 'PER_USER_OAUTH', LEAKED);
    await insert('crm', 'HEADERS', JSON.stringify(SHARED));
  });
  afterEach(async () => {
    await t.close();
  });

  it('migration 0019 clears the catalogs stored for per-user servers and keeps the others', async () => {
    await clearPerUserCatalogs(t.db);
    expect(await storedTools('tickets')).toBeNull();
    expect(await storedTools('notes')).toBeNull();
    expect(JSON.parse((await storedTools('crm')) ?? 'null')).toEqual(SHARED);
  });

  it('a stored catalog of a per-user server reads as null; a shared one as stored', async () => {
    expect((await getMcpServerByName(t.db, 'tickets'))?.tools).toBeNull();
    expect((await getMcpServerByName(t.db, 'notes'))?.tools).toBeNull();
    expect((await getMcpServerByName(t.db, 'crm'))?.tools).toEqual(SHARED);
  });

  it('recordToolCatalogs stores a reported catalog for a shared server only', async () => {
    await clearPerUserCatalogs(t.db);
    const reported = [{ name: 'bob_ticket_triage', description: 'listed to bob only' }];
    await recordToolCatalogs(t.db, [
      { server: 'tickets', tools: reported },
      { server: 'notes', tools: reported },
      { server: 'crm', tools: [...SHARED, { name: 'add', description: null }] },
    ]);
    expect(await storedTools('tickets')).toBeNull();
    expect(await storedTools('notes')).toBeNull();
    expect(JSON.parse((await storedTools('crm')) ?? 'null')).toEqual([...SHARED, { name: 'add', description: null }]);
  });
});
