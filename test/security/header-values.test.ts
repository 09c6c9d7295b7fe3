/**
 * Header values an HTTP client cannot send are refused where they are entered, with a typed error that does
 * not quote them: a control character or a character beyond Latin-1 in a server's header value (GraphQL,
 * applyConfig) or in a per-user header value (the connect form, same shared rule) used to be stored, and
 * then every call to the server failed inside the node's HTTP client. Real control plane; the node's HTTP
 * client (undici) is the judge of what can be sent.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { headerValueProblem } from '../../data-plane/snapshot/rules.js';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';

const BAD = ['Bearer a\u0001b', 'Bearer a\u007fb', 'Bearer \u{1F511}', 'token\u2028x', 'a\u0000b'];
const GOOD = ['Bearer abc.def-123_~+/=', 'a\tb c', 'caf\u00e9'];

let cp: TestControlPlane;
beforeAll(async () => {
  cp = await startTestControlPlane();
});
afterAll(async () => {
  await cp?.close();
});

/** Whether undici (the node's HTTP client) accepts the value in a request header. */
async function undiciSends(value: string): Promise<boolean> {
  try {
    await request(`${cp.url}/healthz`, { headers: { 'x-probe': value } });
    return true;
  } catch {
    return false;
  }
}

describe('header values the node could never send', () => {
  it('the shared rule agrees with undici', async () => {
    for (const value of [...BAD, ...GOOD]) expect(headerValueProblem(value) === null, JSON.stringify(value)).toBe(await undiciSends(value));
  });

  it('createMcpServer and applyConfig refuse them with a user error that does not quote the value', async () => {
    for (const [i, value] of BAD.entries()) {
      const created = await cp.gql<{ createMcpServer: { mcpServer: unknown; errors: { field: string; code: string; message: string }[] } }>(
        `mutation($input: CreateMcpServerInput!) { createMcpServer(input: $input) { mcpServer { id } errors { field code message } } }`,
        { input: { name: `bad_${i}`, connectionType: 'HTTP', connectionString: 'http://127.0.0.1:1/mcp', authType: 'HEADERS', headers: [{ name: 'Authorization', value }] } },
      );
      expect(created.createMcpServer.mcpServer).toBeNull();
      expect(created.createMcpServer.errors[0]?.field).toBe('input.headers.0.value');
      expect(JSON.stringify(created.createMcpServer.errors)).not.toContain(JSON.stringify(value).slice(1, -1));
      const applied = await cp.gql<{ applyConfig: { errors: { field: string; code: string }[] } }>(
        `mutation($d: JSON!) { applyConfig(document: $d, dryRun: true) { errors { field code } } }`,
        { d: { mcp_servers: [{ name: `bad_doc_${i}`, connection_type: 'http', connection_string: 'http://127.0.0.1:1/mcp', auth_type: 'headers', headers: { Authorization: value } }] } },
      );
      expect(applied.applyConfig.errors.length, JSON.stringify(value)).toBeGreaterThan(0);
    }
    const fine = await cp.gql<{ createMcpServer: { errors: unknown[] } }>(
      `mutation($input: CreateMcpServerInput!) { createMcpServer(input: $input) { errors { field code message } } }`,
      { input: { name: 'good', connectionType: 'HTTP', connectionString: 'http://127.0.0.1:1/mcp', authType: 'HEADERS', headers: GOOD.map((value, i) => ({ name: `X-Good-${i}`, value })) } },
    );
    expect(fine.createMcpServer.errors).toEqual([]);
  });
});
