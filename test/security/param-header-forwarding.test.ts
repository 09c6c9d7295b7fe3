/**
 * `Mcp-Param-*` headers (MCP 2026-07-28: a tool argument mirrored into a header, declared by the tool's
 * `x-mcp-header`) cross the gateway only as the tool declares them. `/mcp/{server}` forwarded every
 * `Mcp-Param-*` a caller sent, declared or not, matching the argument or not, on any message; `/mcp` sent
 * them upstream when a server's allowedExtraHeaders named one. An intermediary in front of the upstream
 * may route on them. Now `/mcp/{server}` forwards, for a single tools/call, only the ones its tool declares,
 * each once it matches the argument (a mismatch is the 400 HeaderMismatch -32020 `/mcp` answers, nothing
 * relayed), and `/mcp` forwards none (such a name is no forwardable header).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRawServerNode, type RawServerNode } from './raw-upstream.js';

const TOOLS = [
  {
    name: 'lookup',
    inputSchema: { type: 'object', properties: { region: { type: 'string', 'x-mcp-header': 'Region' }, q: { type: 'string' } } },
  },
];

let crm: RawServerNode;

beforeAll(async () => {
  crm = await startRawServerNode({
    answer: (request, message) => {
      if (message.method !== 'tools/list') return null;
      // A tool offered to 2026-07-28 clients only (absent from the pool's 2025 catalog).
      const modern = request.headers['mcp-protocol-version'] === '2026-07-28';
      const tools = modern ? [...TOOLS, { ...TOOLS[0], name: 'modern_lookup' }] : TOOLS;
      return { status: 200, body: JSON.stringify({ jsonrpc: '2.0', id: message.id, result: { tools } }) };
    },
    server: { allowedExtraHeaders: ['Mcp-Param-Zone', 'X-Team'] },
  });
});

afterAll(async () => {
  await crm?.close();
});

async function post(path: string, message: unknown, headers: Record<string, string>): Promise<{ status: number; body: unknown }> {
  const answer = await crm.post(path, message, headers);
  return { status: answer.status, body: JSON.parse(answer.text) as unknown };
}

const lookup = (name = 'lookup') => ({ jsonrpc: '2.0', id: 5, method: 'tools/call', params: { name, arguments: { region: 'eu', q: 'x' } } });

/** The Mcp-Param-* headers of the callers' requests (the pool's own carry no traceparent) since `from`. */
function paramHeadersSince(from: number): Record<string, string>[] {
  return crm.upstream.requests
    .slice(from)
    .filter((r) => r.headers.traceparent !== undefined && r.body.includes('"id"'))
    .map((r) => Object.fromEntries(Object.entries(r.headers).filter(([name]) => name.startsWith('mcp-param-')).map(([n, v]) => [n, String(v)])));
}

describe('/mcp/{server}', () => {
  it('a tools/call forwards the declared header, not the others', async () => {
    const from = crm.upstream.requests.length;
    const answer = await post('/mcp/crm', lookup(), { 'Mcp-Param-Region': 'eu', 'Mcp-Param-Evil': 'route-me', 'Mcp-Param-Zone': 'z1' });
    expect(answer.status).toBe(200);
    expect(paramHeadersSince(from)).toEqual([{ 'mcp-param-region': 'eu' }]);
  });

  it('a declared header that does not match the argument: 400 -32020, nothing relayed', async () => {
    const from = crm.upstream.requests.length;
    const answer = await post('/mcp/crm', lookup(), { 'Mcp-Param-Region': 'us' });
    expect(answer.status).toBe(400);
    expect(answer.body).toMatchObject({ id: 5, error: { code: -32020, data: { type: 'header_mismatch' } } });
    expect(paramHeadersSince(from)).toEqual([]);
  });

  it('a tool only the 2026-07-28 wire lists: its declared header is forwarded, others are not', async () => {
    const from = crm.upstream.requests.length;
    const meta = { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': {} };
    const message = { jsonrpc: '2.0', id: 5, method: 'tools/call', params: { name: 'modern_lookup', arguments: { region: 'eu' }, _meta: meta } };
    const answer = await post('/mcp/crm', message, { 'MCP-Protocol-Version': '2026-07-28', 'Mcp-Method': 'tools/call', 'Mcp-Name': 'modern_lookup', 'Mcp-Param-Region': 'eu', 'Mcp-Param-Evil': 'x' });
    expect(answer.status).toBe(200);
    expect(paramHeadersSince(from).at(-1)).toEqual({ 'mcp-param-region': 'eu' });
  });

  it('any other message forwards none', async () => {
    const from = crm.upstream.requests.length;
    const answer = await post('/mcp/crm', { jsonrpc: '2.0', id: 6, method: 'tools/list' }, { 'Mcp-Param-Region': 'eu', 'Mcp-Param-Evil': 'route-me' });
    expect(answer.status).toBe(200);
    expect(paramHeadersSince(from)).toEqual([{}]);
  });
});

describe('/mcp', () => {
  it('forwards none, even one a server allowlists', async () => {
    const from = crm.upstream.requests.length;
    const answer = await post('/mcp', lookup('crm-lookup'), { 'Mcp-Param-Region': 'eu', 'Mcp-Param-Zone': 'z1', 'X-Team': 'blue' });
    expect(answer.status).toBe(200);
    const relayed = crm.upstream.requests.slice(from).filter((r) => r.body.includes('"tools/call"'));
    expect(relayed).toHaveLength(1);
    // The allowlisted ordinary header still goes (control).
    expect(relayed[0]?.headers['x-team']).toBe('blue');
    expect(Object.keys(relayed[0]?.headers ?? {}).filter((n) => n.startsWith('mcp-param-'))).toEqual([]);
  });
});
