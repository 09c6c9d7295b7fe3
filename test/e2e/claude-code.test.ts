/**
 * Claude Code as the real client of the gateway: `claude mcp list` shows Gatehouse connected with a
 * virtual key, and `claude -p` (the Messages API stand-in answering with a tool_use) calls an upstream
 * tool through the node as `mcp__gatehouse__{server}-{tool}` and gets its result.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAnthropicStandIn, type AnthropicStandIn } from '../support/anthropic-stand-in.js';
import { claudeMcpAdd, claudeMcpList, claudePrint, createClaudeHome, describeRun, parseMcpList, type ClaudeHome } from '../support/claude-code.js';
import { startGatewayFixture, type GatewayFixture } from '../support/gateway-fixture.js';
import { spawnNode, type NodeProcess } from '../support/node-process.js';
import { waitFor } from '../support/wait.js';

const TOOL = 'mcp__gatehouse__crm_http-echo';

describe('Claude Code through Gatehouse', () => {
  let gw: GatewayFixture;
  let node: NodeProcess;
  let standIn: AnthropicStandIn;
  let home: ClaudeHome;

  beforeAll(async () => {
    gw = await startGatewayFixture('sqlite');
    node = await spawnNode({ controlPlaneUrl: gw.cp.url, nodeToken: gw.cp.cp.nodeToken, env: gw.nodeEnv });
    await waitFor(async () => (await fetch(`${node.url}/readyz`)).ok, { what: 'node ready' });
    standIn = await startAnthropicStandIn({ toolName: TOOL, toolInput: { text: 'from claude' } });
    home = await createClaudeHome({ anthropicBaseUrl: standIn.url });
    await claudeMcpAdd(home, 'gatehouse', `${node.url}/mcp`, { Authorization: `Bearer ${gw.key}` });
  }, 60_000);

  afterAll(async () => {
    await home?.cleanup();
    await standIn?.close();
    await node?.stop();
    await gw?.close();
  });

  it('claude mcp list shows the gateway connected with a virtual key', async () => {
    const out = await claudeMcpList(home);
    expect(parseMcpList(out)).toEqual([{ name: 'gatehouse', target: `${node.url}/mcp`, transport: 'HTTP', status: 'Connected', connected: true }]);
  }, 60_000);

  it('claude mcp list shows a revoked-looking (unknown) key as failed', async () => {
    const other = await createClaudeHome({ anthropicBaseUrl: standIn.url });
    try {
      await claudeMcpAdd(other, 'gatehouse', `${node.url}/mcp`, { Authorization: 'Bearer gk_not_a_real_key_000000000000000000000' });
      expect(parseMcpList(await claudeMcpList(other))[0]?.connected).toBe(false);
    } finally {
      await other.cleanup();
    }
  }, 60_000);

  it('claude -p calls an upstream tool through the gateway and gets its result', async () => {
    const callsBefore = gw.http.requests.filter((r) => r.rpcMethod === 'tools/call').length;
    const run = await claudePrint(home, 'Echo "from claude" with the CRM echo tool.', [TOOL]);
    const dump = describeRun(run);
    expect(run.exitCode, dump).toBe(0);
    expect(run.init?.mcp_servers, dump).toContainEqual(expect.objectContaining({ name: 'gatehouse', status: 'connected' }));

    // Claude Code was offered exactly the key's tools, under the gateway's names.
    const offered = standIn.toolNamesSeen().filter((n) => n.startsWith('mcp__gatehouse__')).sort();
    expect(offered).toEqual(gw.expectedTools.map((t) => `mcp__gatehouse__${t}`));

    // The call went through the node to the upstream, with the upstream's credential, not the key.
    const calls = gw.http.requests.filter((r) => r.rpcMethod === 'tools/call').slice(callsBefore);
    expect(calls).toHaveLength(1);
    expect(calls[0]?.headers.authorization).toBe(gw.secrets.httpToken);
    expect(JSON.stringify(calls[0]?.headers)).not.toContain(gw.key);

    // And the result came back to Claude Code and on to the model.
    expect(standIn.toolResultsSeen()).toContainEqual(expect.objectContaining({ isError: false, text: 'http:from claude' }));
    expect(run.result).toMatchObject({ subtype: 'success', is_error: false });
    expect(run.result?.result).toContain('http:from claude');
  }, 90_000);
});
