/**
 * The secrets guardrail and the audit trail through a real node, control plane and upstream MCP server:
 * per server and per key policies (redact, block) on tool arguments and tool results, set through
 * GraphQL and shipped in snapshots; what the upstream and the caller receive; what the audit trail
 * stores (kinds and paths of findings, never a value); content logging off; a refused key recorded by
 * its hash prefix only.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../data-plane/log.js';
import { startNode, type DataPlaneNode } from '../../data-plane/node/node.js';
import { hashKey } from '../../data-plane/snapshot/key-hash.js';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { LogCapture } from '../support/log-capture.js';
import { postMcp } from '../support/mcp-http.js';
import { startHttpUpstream, type HttpUpstream } from '../support/upstreams.js';
import { waitFor } from '../support/wait.js';

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const rand = (n: number): string => Array.from(randomBytes(n), (b) => ALNUM[b % ALNUM.length]).join('');

describe('secrets guardrail end to end', () => {
  let cp: TestControlPlane;
  let node: DataPlaneNode;
  let upstream: HttpUpstream;
  let key: string;
  let keyId: string;
  const ghp = `ghp_${rand(36)}`;
  /** A tool whose result (not its arguments) carries a credential. */
  const leakyTool = `ghs_${rand(36)}`;

  const setPolicy = async (scope: 'KEY' | 'SERVER', target: string, fields: string): Promise<void> => {
    const version = async () => (await cp.gql<{ configVersion: number }>('{ configVersion }')).configVersion;
    const r = await cp.gql<{ setAuditSettings: { errors: unknown[] } }>(
      `mutation($t: String!) { setAuditSettings(input: { scope: ${scope}, target: $t, ${fields} }) { auditSettings { target } errors { code message } } }`,
      { t: target },
    );
    expect(r.setAuditSettings.errors).toEqual([]);
    const v = await version();
    await waitFor(() => (node.holder.current?.version ?? 0) >= v, { what: `node at version ${v}` });
  };
  const call = (text: string, tool = 'docs-echo') => postMcp(node.url, key, { id: 1, method: 'tools/call', params: { name: tool, arguments: { text } } });
  const events = async () => {
    const rows = await cp.cp.db.selectFrom('audit_events').select(['event']).orderBy('row_id').execute();
    return rows.map((r) => JSON.parse(r.event) as Record<string, unknown>);
  };
  const lastCall = async (n: number) => waitFor(async () => {
    const all = (await events()).filter((e) => e.method === 'tools/call');
    return all.length >= n ? all[n - 1] : undefined;
  }, { what: `audit event ${n}` });

  beforeAll(async () => {
    upstream = await startHttpUpstream({ label: 'docs' });
    upstream.addTool(leakyTool);
    cp = await startTestControlPlane();
    await cp.gql(`mutation($u: String!) { createMcpServer(input: { name: "docs", connectionType: HTTP, connectionString: $u, toolsToExecute: ["*"] }) { errors { code } } }`, { u: upstream.url });
    const userId = (await cp.gql<{ createUser: { user: { id: string } } }>(`mutation { createUser(input: { email: "guard@example.com" }) { user { id } } }`)).createUser.user.id;
    const created = await cp.gql<{ createVirtualKey: { key: string; virtualKey: { id: string } } }>(
      `mutation($u: ID!) { createVirtualKey(input: { userId: $u, name: "guarded", servers: [{ server: "docs", tools: ["*"] }] }) { key virtualKey { id } } }`,
      { u: userId },
    );
    key = created.createVirtualKey.key;
    keyId = created.createVirtualKey.virtualKey.id;
    node = await startNode({
      controlPlaneUrl: cp.url,
      nodeToken: cp.cp.nodeToken,
      port: 0,
      stateDir: mkdtempSync(join(tmpdir(), 'gatehouse-guard-')),
      trustedJwks: cp.cp.trustedKeys,
      env: {},
      logger: createLogger('test-node', { destination: new LogCapture() }),
    });
    await waitFor(() => node.holder.current !== null, { what: 'first snapshot' });
  }, 60_000);

  afterAll(async () => {
    await node?.close();
    await cp?.close();
    await upstream?.close();
  });

  it('off: content passes as is, yet the audit trail stores it redacted', async () => {
    const r = await call(`use ${ghp} please`);
    expect(JSON.stringify(r.body)).toContain(ghp);
    const event = await lastCall(1);
    expect(event.guardrail).toEqual([
      { kind: 'github-pat', where: 'arguments.text' },
      { kind: 'github-pat', where: 'result.content[0].text' },
    ]);
    expect(JSON.stringify(event)).not.toContain(ghp);
    expect(event.arguments).toEqual({ text: 'use [REDACTED:github-pat] please' });
  });

  it('redact (per server): the upstream and the caller get [REDACTED:<kind>], arguments and results alike', async () => {
    await setPolicy('SERVER', 'docs', 'guardrail: REDACT');
    const r = await call(`use ${ghp} please`);
    expect(r.status).toBe(200);
    const text = JSON.stringify(r.body);
    expect(text).not.toContain(ghp);
    // The echo tool answers `docs:<text>`: what it received was already redacted.
    expect(text).toContain('docs:use [REDACTED:github-pat] please');
    const leaky = await call('x', `docs-${leakyTool}`);
    expect(JSON.stringify(leaky.body)).toContain('docs:[REDACTED:github-app-token]');
    expect(JSON.stringify(leaky.body)).not.toContain(leakyTool.slice(4));
    const event = await lastCall(3);
    expect(event.guardrail).toEqual([{ kind: 'github-app-token', where: 'result.content[0].text' }]);
    expect(JSON.stringify(await events())).not.toContain(ghp);
  });

  it('block (per key, stricter than the server): a clear error naming the kind, never the value; nothing reaches the upstream', async () => {
    await setPolicy('KEY', keyId, 'guardrail: BLOCK');
    const before = upstream.requests.filter((r) => r.rpcMethod === 'tools/call').length;
    const r = await call(`use ${ghp} please`);
    const body = r.body as { error: { code: number; message: string; data: { type: string; kinds: string[] } } };
    expect(body.error.code).toBe(-32008);
    expect(body.error.data).toMatchObject({ type: 'secret_detected', kinds: ['github-pat'] });
    expect(body.error.message).toContain('github-pat');
    expect(JSON.stringify(body)).not.toContain(ghp);
    expect(upstream.requests.filter((r) => r.rpcMethod === 'tools/call').length).toBe(before);
    // A result carrying a secret is refused too.
    const leaky = (await call('x', `docs-${leakyTool}`)).body as { error: { code: number; data: { kinds: string[] } } };
    expect(leaky.error).toMatchObject({ code: -32008, data: { kinds: ['github-app-token'] } });
    const event = await lastCall(4);
    expect(event).toMatchObject({ outcome: 'denied', denyReason: expect.stringContaining('secret_detected'), guardrail: [{ kind: 'github-pat', where: 'arguments.text' }] });
    // Clean calls still pass.
    expect(JSON.stringify((await call('nothing secret here')).body)).toContain('docs:nothing secret here');
  });

  it('content logging off (per server): arguments and results are left out, the rest is kept', async () => {
    await setPolicy('SERVER', 'docs', 'contentLogging: false');
    await setPolicy('KEY', keyId, 'guardrail: OFF');
    await call('private words');
    const event = await lastCall(7);
    // The upstream's HTTP status is kept for /mcp tool calls too (the aggregated route), not only for /mcp/{server}.
    expect(event).toMatchObject({ method: 'tools/call', server: 'docs', tool: 'echo', outcome: 'ok', keyId, upstreamStatus: 200 });
    expect(event.arguments).toBeUndefined();
    expect(event.result).toBeUndefined();
    expect(event.resultBytes).toBeGreaterThan(0);
    const settings = await cp.gql<{ auditSettings: { scope: string; target: string; contentLogging: boolean; guardrail: string }[] }>('{ auditSettings { scope target contentLogging guardrail } }');
    expect(settings.auditSettings).toEqual([{ scope: 'SERVER', target: 'docs', contentLogging: false, guardrail: 'REDACT' }]);
  });

  it('a refused key is recorded by its hash prefix, never its value', async () => {
    const bogus = `gk_${rand(43)}`;
    const r = await postMcp(node.url, bogus, { id: 1, method: 'tools/list' });
    expect(r.status).toBe(401);
    const event = await waitFor(async () => (await events()).find((e) => e.keyHashPrefix === hashKey(bogus).slice(0, 12)), { what: 'refusal event' });
    expect(event).toMatchObject({ outcome: 'refused', denyReason: 'invalid_key', keyId: null });
    expect(JSON.stringify(await events())).not.toContain(bogus);
  });

  it('a trace id sent by the caller (header or _meta) reaches the upstream and the audit trail', async () => {
    const traceId = randomBytes(16).toString('hex');
    const inHeader = `00-${traceId}-${randomBytes(8).toString('hex')}-01`;
    const seen = () => upstream.requests.filter((r) => r.rpcMethod === 'tools/call').map((r) => String(r.headers.traceparent ?? ''));
    const res = await fetch(`${node.url}/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${key}`, traceparent: inHeader, tracestate: 'vendor=x' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'docs-echo', arguments: { text: 'traced' } } }),
    });
    expect(res.status).toBe(200);
    const upstreamParent = seen().at(-1)!;
    expect(upstreamParent).toMatch(new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`));
    expect(upstreamParent).not.toBe(inHeader);
    expect(upstream.requests.filter((r) => r.rpcMethod === 'tools/call').at(-1)!.headers.tracestate).toBe('vendor=x');
    // A tracestate is the caller's text in a header sent on the gateway's credential: one carrying the
    // caller's virtual key, or not well formed (§3.3.1.3), is not relayed; the trace itself still is.
    for (const tracestate of [`vendor=${key}`, 'vendor=x,junk', 'Vendor=x']) {
      const before = upstream.requests.length;
      const traced = await fetch(`${node.url}/mcp`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${key}`, traceparent: inHeader, tracestate },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'docs-echo', arguments: { text: 'traced' } } }),
      });
      expect(traced.status).toBe(200);
      const sent = upstream.requests.slice(before).filter((r) => r.rpcMethod === 'tools/call');
      expect(sent.length).toBe(1);
      expect(sent[0]!.headers.tracestate).toBeUndefined();
      expect(String(sent[0]!.headers.traceparent)).toMatch(new RegExp(`^00-${traceId}-`));
    }
    await waitFor(async () => (await events()).some((e) => e.traceId === traceId), { what: 'traced audit event' });

    // MCP clients without headers put it in _meta.
    const metaTrace = randomBytes(16).toString('hex');
    await postMcp(node.url, key, { id: 2, method: 'tools/call', params: { name: 'docs-echo', arguments: { text: 'meta' }, _meta: { traceparent: `00-${metaTrace}-${randomBytes(8).toString('hex')}-01` } } });
    expect(seen().at(-1)).toMatch(new RegExp(`^00-${metaTrace}-`));
    // Without one, the node starts a trace: every upstream call still carries a traceparent.
    await call('untraced');
    expect(seen().at(-1)).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  });

  it('setAuditSettings refuses unknown targets', async () => {
    const r = await cp.gql<{ setAuditSettings: { errors: { code: string }[] } }>(`mutation { setAuditSettings(input: { scope: SERVER, target: "nope", guardrail: BLOCK }) { errors { code } } }`);
    expect(r.setAuditSettings.errors).toEqual([{ code: 'UNKNOWN_SERVER' }]);
  });
});
