/**
 * The secrets guardrail on `/mcp/{server}`: arguments are checked before they go upstream (redacted, or the
 * call refused and never sent), and a tools/call answer, streamed through otherwise, is read and checked
 * where a policy applies (redacted, or replaced by the refusal).
 */
import { randomBytes } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditSettingsIndex, createContentGuard } from '../../../data-plane/guardrail/policy.js';
import type { RequestRecord } from '../../../data-plane/pipeline/context.js';
import type { GuardrailPolicy } from '../../../data-plane/snapshot/schema.js';
import { startHttpUpstream, type HttpUpstream } from '../../support/upstreams.js';
import { waitFor } from '../../support/wait.js';
import { buildSnapshot, resultText, startTestNode, type BuiltSnapshot, type TestNode } from '../helpers.js';

const token = (prefix: string): string => `${prefix}_${randomBytes(27).toString('base64url').replace(/[-_]/g, 'a').slice(0, 36)}`;

describe('guardrail on /mcp/{server}', () => {
  let node: TestNode;
  let upstream: HttpUpstream;
  let snapshot: BuiltSnapshot;
  let client: Client;
  let policy: GuardrailPolicy = 'off';
  const records: RequestRecord[] = [];
  const pat = token('ghp');

  beforeAll(async () => {
    upstream = await startHttpUpstream({ label: 'http' });
    node = await startTestNode({ hooks: { guard: createContentGuard(() => new AuditSettingsIndex([], policy)), onRecord: (r) => records.push(r) } });
    snapshot = await buildSnapshot({
      servers: [{ name: 'docs', url: upstream.url, allowedExtraHeaders: ['x-leak'] }],
      keys: [{ name: 'k', servers: [{ server: 'docs', tools: ['*'] }] }],
      sessionSecrets: { current: { id: 'g1', secret: randomBytes(32).toString('base64url') } },
    });
    node.apply(snapshot);
    client = new Client({ name: 'guard-test', version: '1' });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(`${node.url}/mcp/docs`), { requestInit: { headers: { authorization: `Bearer ${snapshot.keyValues.k ?? ''}`, 'x-leak': pat } } }),
    );
  });

  afterAll(async () => {
    await client?.close();
    await node?.close();
    await upstream?.close();
  });

  it('passes content unchanged when the policy is off', async () => {
    policy = 'off';
    expect(resultText(await client.callTool({ name: 'echo', arguments: { text: pat } }))).toBe(`http:${pat}`);
  });

  it('redacts a secret in the arguments before they go upstream, and in the result before it comes back', async () => {
    policy = 'redact';
    const echoed = resultText(await client.callTool({ name: 'echo', arguments: { text: `key ${pat}` } }));
    expect(echoed).not.toContain(pat);
    expect(echoed.startsWith('http:key ')).toBe(true);
    // The result of whoami carries the header's secret: the answer is read and redacted on its way back.
    const leaked = resultText(await client.callTool({ name: 'whoami', arguments: { header: 'x-leak' } }));
    expect(leaked).not.toContain(pat);
    await waitFor(() => records.find((r) => r.route === 'mcp_server' && r.tool === 'whoami' && r.guardrail?.length));
  });

  it('blocks a call whose arguments carry a secret: it never reaches the upstream', async () => {
    policy = 'block';
    const before = upstream.requests.filter((r) => r.rpcMethod === 'tools/call').length;
    await expect(client.callTool({ name: 'echo', arguments: { text: pat } })).rejects.toMatchObject({ code: -32008 });
    expect(upstream.requests.filter((r) => r.rpcMethod === 'tools/call').length).toBe(before);
    // And a result carrying one is replaced by the refusal.
    await expect(client.callTool({ name: 'whoami', arguments: { header: 'x-leak' } })).rejects.toMatchObject({ code: -32008 });
    policy = 'off';
  });
});
