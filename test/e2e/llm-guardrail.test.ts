/**
 * The secrets guardrail on LLM traffic through a node's `/anthropic` (the Messages API stand-in answers
 * with a credential in its text, split over several streamed deltas): redact on the request body and on
 * JSON and streamed answers; block refuses a request before the provider sees it, refuses a JSON answer,
 * and ends a stream with an SSE error; the audit event of an LLM call has its tokens, cost and findings.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNode, type DataPlaneNode } from '../../data-plane/node/node.js';
import { startAnthropicStandIn, type AnthropicStandIn } from '../support/anthropic-stand-in.js';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { waitFor } from '../support/wait.js';

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const rand = (n: number): string => Array.from(randomBytes(n), (b) => ALNUM[b % ALNUM.length]).join('');
const PRICE = { model: 'claude-sonnet-4*', inputPerMTok: 3, outputPerMTok: 15, cacheWritePerMTok: 3.75, cacheReadPerMTok: 0.3 };

describe('secrets guardrail on /anthropic', () => {
  let cp: TestControlPlane;
  let standIn: AnthropicStandIn;
  let node: DataPlaneNode;
  let key: string;
  let keyId: string;
  const leaked = `ghp_${rand(36)}`;
  const sent = `xoxb-${'1'.repeat(12)}-${'2'.repeat(13)}-${rand(24)}`;

  const setPolicy = async (scope: 'KEY' | 'SERVER', target: string, policy: string): Promise<void> => {
    const r = await cp.gql<{ setAuditSettings: { errors: unknown[] } }>(`mutation($t: String!) { setAuditSettings(input: { scope: ${scope}, target: $t, guardrail: ${policy} }) { errors { code } } }`, { t: target });
    expect(r.setAuditSettings.errors).toEqual([]);
    const v = (await cp.gql<{ configVersion: number }>('{ configVersion }')).configVersion;
    await waitFor(() => (node.holder.current?.version ?? 0) >= v, { what: `node at ${v}` });
  };
  const ask = (content: string, stream = false) =>
    fetch(`${node.url}/anthropic/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': key },
      body: JSON.stringify({ model: 'claude-sonnet-4-5', max_tokens: 100, stream, messages: [{ role: 'user', content }] }),
    });
  const streamedText = (raw: string): string =>
    raw
      .split('\n')
      .filter((l) => l.startsWith('data: '))
      .map((l) => JSON.parse(l.slice(6)) as { type: string; delta?: { text?: string } })
      .filter((d) => d.type === 'content_block_delta')
      .map((d) => d.delta?.text ?? '')
      .join('');

  beforeAll(async () => {
    cp = await startTestControlPlane();
    standIn = await startAnthropicStandIn({ toolName: 'x', toolInput: {}, sideText: `Sure, the token is ${leaked} — keep it safe, it is long enough to span several deltas of the stream.` });
    await cp.gql(`mutation($input: UpsertProviderInput!) { upsertProvider(input: $input) { errors { code } } }`, { input: { name: 'anthropic', baseUrl: standIn.url, apiKey: 'sk-ant-provider-0123456789', prices: [PRICE] } });
    const user = await cp.gql<{ createUser: { user: { id: string } } }>(`mutation { createUser(input: { email: "llm-guard@example.com" }) { user { id } } }`);
    const created = await cp.gql<{ createVirtualKey: { key: string; virtualKey: { id: string } } }>(
      `mutation($u: ID!) { createVirtualKey(input: { userId: $u, name: "llm", servers: [], allowNoServers: true }) { key virtualKey { id } } }`,
      { u: user.createUser.user.id },
    );
    key = created.createVirtualKey.key;
    keyId = created.createVirtualKey.virtualKey.id;
    node = await startNode({ controlPlaneUrl: cp.url, nodeToken: cp.cp.nodeToken, port: 0, nodeId: `llm-guard-${Date.now()}`, stateDir: null });
    await waitFor(async () => (await fetch(`${node.url}/anthropic/v1/models`, { headers: { 'x-api-key': key } })).status !== 503, { what: 'provider on node' });
  }, 60_000);

  afterAll(async () => {
    await node?.close();
    await standIn?.close();
    await cp?.close();
  });

  it('redact: the provider gets the request redacted; JSON and streamed answers come back redacted', async () => {
    await setPolicy('SERVER', 'anthropic', 'REDACT');
    const res = await ask(`my slack token is ${sent}`);
    expect(res.status).toBe(200);
    const last = standIn.requests.at(-1)!;
    expect(last.rawBody).not.toContain(sent);
    expect(last.rawBody).toContain('[REDACTED:slack-bot-token]');
    const json = await res.text();
    expect(json).not.toContain(leaked);
    expect(json).toContain('[REDACTED:github-pat]');

    const streamed = await ask('hello', true);
    const raw = await streamed.text();
    expect(raw).not.toContain(leaked.slice(4, 20));
    const text = streamedText(raw);
    expect(text).toContain('the token is [REDACTED:github-pat]');
    expect(text.endsWith('spread over several deltas of the stream.') || text.includes('span several deltas')).toBe(true);
    expect(raw).toContain('event: message_stop');

    // The audit trail: the LLM call with its tokens, cost and what was found (never the value).
    const event = await waitFor(async () => {
      const rows = await cp.cp.db.selectFrom('audit_events').select('event').orderBy('row_id').execute();
      return rows.map((r) => JSON.parse(r.event) as Record<string, unknown>).filter((e) => e.route === '/anthropic' && e.method === 'POST /v1/messages').at(1);
    }, { what: 'streamed LLM audit event' });
    expect(event).toMatchObject({ keyId, server: 'anthropic', outcome: 'ok', upstreamStatus: 200, guardrail: [{ kind: 'github-pat', where: 'response.content[0].text' }] });
    expect((event.tokens as { input: number; output: number }).output).toBeGreaterThan(0);
    expect(event.costUsd).toBeGreaterThan(0);
    expect(JSON.stringify(event)).not.toContain(leaked);
  });

  it('block: a request with a secret never reaches the provider; a JSON answer with one is refused; a stream ends with an error event', async () => {
    await setPolicy('KEY', keyId, 'BLOCK');
    const before = standIn.requests.length;
    const refused = await ask(`my slack token is ${sent}`);
    expect(refused.status).toBe(400);
    const body = (await refused.json()) as { type: string; message: string };
    expect(body.type).toBe('secret_detected');
    expect(body.message).toContain('slack-bot-token');
    expect(JSON.stringify(body)).not.toContain(sent);
    expect(standIn.requests.length).toBe(before);

    const answer = await ask('hello');
    expect(answer.status).toBe(400);
    const answerBody = await answer.text();
    expect(answerBody).toContain('secret_detected');
    expect(answerBody).not.toContain(leaked);

    const streamed = await (await ask('hello', true)).text();
    expect(streamed).toContain('event: error');
    expect(streamed).toContain('secret_detected');
    expect(streamed).not.toContain(leaked.slice(4, 20));
    expect(streamed).toContain('event: message_start');
    expect(streamed).not.toContain('event: message_stop');
  });
});
