/**
 * Claude Code against `/mcp/{server}` (issue 9) as against `/mcp`: `claude mcp list` shows it connected
 * with a virtual key, and `claude -p` calls the upstream's tool under its own (unprefixed) name,
 * `mcp__crm__echo`, through a node process that got its configuration (and session secret) from a real
 * control plane.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAnthropicStandIn, type AnthropicStandIn } from '../support/anthropic-stand-in.js';
import { claudeMcpAdd, claudeMcpList, claudePrint, createClaudeHome, describeRun, parseMcpList, type ClaudeHome } from '../support/claude-code.js';
import { startGatewayFixture, type GatewayFixture } from '../support/gateway-fixture.js';
import { spawnNode, type NodeProcess } from '../support/node-process.js';
import { waitFor } from '../support/wait.js';

const TOOL = 'mcp__crm__echo';

describe('Claude Code through /mcp/{server}', () => {
  let gw: GatewayFixture;
  let node: NodeProcess;
  let standIn: AnthropicStandIn;
  let home: ClaudeHome;
  let route: string;

  beforeAll(async () => {
    gw = await startGatewayFixture('sqlite');
    node = await spawnNode({ controlPlaneUrl: gw.cp.url, nodeToken: gw.cp.cp.nodeToken, env: gw.nodeEnv });
    await waitFor(async () => (await fetch(`${node.url}/readyz`)).ok, { what: 'node ready' });
    standIn = await startAnthropicStandIn({ toolName: TOOL, toolInput: { text: 'from claude' } });
    home = await createClaudeHome({ anthropicBaseUrl: standIn.url });
    route = `${node.url}/mcp/crm_http`;
    await claudeMcpAdd(home, 'crm', route, { Authorization: `Bearer ${gw.key}` });
  }, 60_000);

  afterAll(async () => {
    await home?.cleanup();
    await standIn?.close();
    await node?.stop();
    await gw?.close();
  });

  it('claude mcp list shows the server connected with a virtual key', async () => {
    const out = await claudeMcpList(home);
    expect(parseMcpList(out)).toEqual([{ name: 'crm', target: route, transport: 'HTTP', status: 'Connected', connected: true }]);
  }, 60_000);

  it('claude -p calls the upstream tool by its own name and gets its result', async () => {
    const callsBefore = gw.http.requests.filter((r) => r.rpcMethod === 'tools/call').length;
    const run = await claudePrint(home, 'Echo "from claude" with the CRM echo tool.', [TOOL]);
    const dump = describeRun(run);
    expect(run.exitCode, dump).toBe(0);
    expect(run.init?.mcp_servers, dump).toContainEqual(expect.objectContaining({ name: 'crm', status: 'connected' }));

    // Exactly the server's tools this key may call, unprefixed (the server allows echo, whoami, add).
    const offered = standIn.toolNamesSeen().filter((n) => n.startsWith('mcp__crm__')).sort();
    expect(offered).toEqual(['mcp__crm__add', 'mcp__crm__echo', 'mcp__crm__whoami']);

    const calls = gw.http.requests.filter((r) => r.rpcMethod === 'tools/call').slice(callsBefore);
    expect(calls).toHaveLength(1);
    expect(calls[0]?.headers.authorization).toBe(gw.secrets.httpToken);
    expect(JSON.stringify(calls[0]?.headers)).not.toContain(gw.key);
    expect(standIn.toolResultsSeen()).toContainEqual(expect.objectContaining({ isError: false, text: 'http:from claude' }));
    expect(run.result?.result).toContain('http:from claude');
  }, 90_000);
});
