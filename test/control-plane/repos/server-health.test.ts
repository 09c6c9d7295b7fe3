/**
 * Upstream health storage on every dialect (issue 5 item 4): several nodes report, the latest observation
 * wins whatever order reports arrive in; a node's clock ahead of ours is capped; unknown servers are
 * ignored; a deleted server takes its health with it; and `McpServer.status` combines it with the
 * credential status (NEEDS_AUTH first, disabled servers ignore it).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMcpServer, deleteMcpServer, updateMcpServer } from '../../../control-plane/repos/mcp-servers.js';
import { getServerHealth, recordUpstreamHealth } from '../../../control-plane/repos/server-health.js';
import type { UpstreamHealth } from '../../../data-plane/snapshot/stream-protocol.js';
import { testDialects } from '../../support/db.js';
import { createHarness, dataOf, type Harness } from '../graphql/harness.js';

const T0 = Date.parse('2030-01-01T00:00:00.000Z');
const at = (s: number): string => new Date(T0 + s * 1000).toISOString();
const refused: Omit<UpstreamHealth, 'at'> = { server: 'crm', status: 'credentials_refused', reason: "upstream server 'crm' refused the gateway's credentials (HTTP 401)" };
const reachable: Omit<UpstreamHealth, 'at'> = { server: 'crm', status: 'reachable', reason: null };

describe.each(testDialects)('upstream health storage on %s', (dialect) => {
  let h: Harness;
  let serverId: string;
  const now = T0 + 3_600_000;
  const stored = async () => (await getServerHealth(h.database.db, [serverId]))[0] ?? null;
  const view = async () =>
    dataOf(await h.gql<{ mcpServer: { status: string; statusReason: string | null; upstreamStatus: string } }>('{ mcpServer(name: "crm") { status statusReason upstreamStatus } }')).mcpServer;

  beforeAll(async () => {
    h = await createHarness(dialect);
    serverId = (await createMcpServer(h.database.db, h.box, { name: 'crm', connectionType: 'HTTP', connectionString: 'http://127.0.0.1:9/mcp', toolsToExecute: ['*'] })).id;
  });
  afterAll(async () => {
    await h?.close();
  });

  it('keeps the latest observation of any node, whatever order the reports arrive in', async () => {
    expect(await view()).toEqual({ status: 'ACTIVE', statusReason: null, upstreamStatus: 'UNKNOWN' });
    await recordUpstreamHealth(h.database.db, 'node-a', [{ ...refused, at: at(10) }, { server: 'ghost', status: 'timeout', reason: null, at: at(10) }], now);
    expect(await stored()).toMatchObject({ status: 'credentials_refused', nodeId: 'node-a', observedAt: at(10) });
    expect(await view()).toEqual({ status: 'CREDENTIALS_REFUSED', statusReason: refused.reason, upstreamStatus: 'CREDENTIALS_REFUSED' });
    // node-b's older news arrives late: ignored.
    await recordUpstreamHealth(h.database.db, 'node-b', [{ ...reachable, at: at(5) }], now);
    expect(await stored()).toMatchObject({ status: 'credentials_refused', nodeId: 'node-a' });
    // node-b's newer observation wins.
    await recordUpstreamHealth(h.database.db, 'node-b', [{ ...reachable, at: at(20) }], now);
    expect(await stored()).toMatchObject({ status: 'reachable', nodeId: 'node-b', reason: null });
    expect(await view()).toEqual({ status: 'ACTIVE', statusReason: null, upstreamStatus: 'REACHABLE' });
  });

  it('caps a node clock that runs ahead at its own, and confirms an unchanged status only now and then', async () => {
    await recordUpstreamHealth(h.database.db, 'node-fast', [{ ...refused, status: 'unreachable', at: at(999_999) }], now);
    expect(await stored()).toMatchObject({ status: 'unreachable', observedAt: new Date(now).toISOString() });
    // A real later observation still replaces it.
    await recordUpstreamHealth(h.database.db, 'node-a', [{ ...reachable, at: new Date(now + 1_000).toISOString() }], now + 1_000);
    expect(await stored()).toMatchObject({ status: 'reachable', nodeId: 'node-a' });
    await recordUpstreamHealth(h.database.db, 'node-b', [{ ...reachable, at: new Date(now + 2_000).toISOString() }], now + 2_000);
    expect((await stored())?.nodeId).toBe('node-a'); // same status within the confirmation period: no write
  });

  it('lets the credential status and disabling come first, and goes with a deleted server', async () => {
    await recordUpstreamHealth(h.database.db, 'node-a', [{ ...refused, at: new Date(now + 60_000).toISOString() }], now + 60_000);
    expect((await view()).status).toBe('CREDENTIALS_REFUSED');
    await updateMcpServer(h.database.db, h.box, { name: 'crm', disabled: true });
    expect(await view()).toEqual({ status: 'ACTIVE', statusReason: null, upstreamStatus: 'CREDENTIALS_REFUSED' });
    await deleteMcpServer(h.database.db, 'crm');
    expect(await stored()).toBeNull();
  });
});
