/**
 * Per-node identity (issue 11) on a control plane that does not accept the shared token: a node key that
 * is not approved gets no data key; a one-time enrollment token approves a node once; data keys are wrapped
 * only for the enrolled key; a revoked node's stream is closed and it cannot open the secrets of the next
 * snapshot. Refused nodes are logged without their credential (issue 10 item 5). A node credential is good for
 * one request: replayed (captured in transit) to the same route within its lifetime, it is refused.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SnapshotEnvelope, SnapshotPayload, ValueRef } from '../../data-plane/snapshot/schema.js';
import { generateNodeKeyPair, openValue, unwrapDataKey } from '../../data-plane/snapshot/seal.js';
import { NODE_AUDIT_PATH } from '../../data-plane/snapshot/audit-protocol.js';
import { NODE_KEY_HEADER, NODE_STREAM_PATH } from '../../data-plane/snapshot/stream-protocol.js';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { openTestDatabase, testDialects, type TestDatabase } from '../support/db.js';
import { rawNode, type OpenStream } from '../support/raw-node.js';
import { waitFor } from '../support/wait.js';

function payloadOf(envelope: SnapshotEnvelope): SnapshotPayload {
  return JSON.parse(Buffer.from(envelope.snapshot.payload, 'base64url').toString('utf8')) as SnapshotPayload;
}

function sealedHeader(envelope: SnapshotEnvelope): Extract<ValueRef, { kind: 'sealed' }> {
  const ref = payloadOf(envelope).servers.find((s) => s.name === 'crm')?.headers.Authorization;
  if (ref?.kind !== 'sealed') throw new Error('crm Authorization is not sealed in the snapshot');
  return ref;
}

const snapshots = (s: OpenStream): SnapshotEnvelope[] => s.events.filter((e) => e.event === 'snapshot').map((e) => e.data as SnapshotEnvelope);

describe.each(testDialects)('per-node enrollment on %s', (dialect) => {
  let db: TestDatabase | null = null;
  let cp: TestControlPlane;

  beforeAll(async () => {
    if (dialect === 'postgres') db = await openTestDatabase('postgres');
    cp = await startTestControlPlane({ sharedNodeToken: false, ...(db ? { databaseUrl: db.url, databaseSchema: db.searchPath } : {}) });
    const r = await cp.gql<{ createMcpServer: { errors: unknown[] } }>(
      `mutation { createMcpServer(input: { name: "crm", connectionType: HTTP, connectionString: "http://127.0.0.1:9/mcp", authType: HEADERS,
        headers: [{ name: "Authorization", value: "Bearer first-secret" }], toolsToExecute: ["*"] }) { errors { code message } } }`,
    );
    expect(r.createMcpServer.errors).toEqual([]);
  }, 60_000);

  afterAll(async () => {
    await cp?.close();
    await db?.close();
  });

  const enrollToken = async (nodeId: string | null): Promise<string> =>
    (
      await cp.gql<{ enrollNode: { enrollmentToken: string } }>(`mutation($n: String) { enrollNode(input: { nodeId: $n }) { enrollmentToken errors { code } } }`, {
        n: nodeId,
      })
    ).enrollNode.enrollmentToken;

  it('a node key that is not approved gets no data key, until an admin approves its fingerprint', async () => {
    const node = await rawNode(cp.url, `pending-${dialect}`);
    const enrolled = await node.enroll();
    expect(enrolled).toMatchObject({ status: 202, body: { status: 'PENDING' } });
    const refused = await node.stream();
    expect(refused).toMatchObject({ status: 403, body: { type: 'node_pending_approval' } });
    expect(refused.events).toEqual([]);

    const listed = await cp.gql<{ nodes: { edges: { node: { id: string; enrollment: string; fingerprint: string } }[] } }>('{ nodes { edges { node { id enrollment fingerprint } } } }');
    expect(listed.nodes.edges.map((e) => e.node)).toContainEqual({ id: node.nodeId, enrollment: 'PENDING', fingerprint: enrolled.body.fingerprint });

    const approve = `mutation($id: ID!, $f: String!) { approveNode(input: { id: $id, fingerprint: $f }) { node { enrollment } errors { code } } }`;
    const wrong = await cp.gql<{ approveNode: { errors: { code: string }[] } }>(approve, { id: node.nodeId, f: '0000:0000:0000:0000:0000:0000:0000:0000' });
    expect(wrong.approveNode.errors.map((e) => e.code)).toEqual(['FINGERPRINT_MISMATCH']);
    expect((await node.stream()).status).toBe(403);
    const right = await cp.gql<{ approveNode: { node: { enrollment: string } } }>(approve, { id: node.nodeId, f: enrolled.body.fingerprint });
    expect(right.approveNode.node.enrollment).toBe('APPROVED');

    const stream = await node.stream();
    expect(stream.status).toBe(200);
    await waitFor(() => snapshots(stream).length > 0, { what: 'first snapshot' });
    const envelope = snapshots(stream)[0]!;
    const dataKey = await unwrapDataKey(envelope.dataKey, node.sealing.privateJwk);
    expect(openValue(dataKey, sealedHeader(envelope))).toBe('Bearer first-secret');
    stream.close();
  });

  it('a one-time enrollment token approves once, and only the node it names', async () => {
    const token = await enrollToken(`tok-${dialect}`);
    const stranger = await rawNode(cp.url, `stranger-${dialect}`);
    expect(await stranger.enroll(token)).toMatchObject({ status: 401, body: { type: 'enrollment_token_invalid' } });
    const node = await rawNode(cp.url, `tok-${dialect}`);
    expect(await node.enroll(token)).toMatchObject({ status: 200, body: { status: 'APPROVED' } });
    const again = await rawNode(cp.url, `tok-${dialect}`);
    expect(await again.enroll(token)).toMatchObject({ status: 401, body: { type: 'enrollment_token_invalid' } });
    // The same id with other keys and no token is refused: an id cannot be taken over.
    expect(await again.enroll()).toMatchObject({ status: 409, body: { type: 'node_exists' } });
  });

  it('wraps data keys only for the enrolled key: another sealing key, or the shared token, gets nothing', async () => {
    const node = await rawNode(cp.url, `keyed-${dialect}`);
    await node.enroll(await enrollToken(node.nodeId));
    const other = await generateNodeKeyPair();
    const mismatched = await node.stream({ [NODE_KEY_HEADER]: Buffer.from(JSON.stringify(other.publicJwk)).toString('base64url') });
    expect(mismatched).toMatchObject({ status: 403, body: { type: 'node_key_mismatch' } });

    const shared = await fetch(`${cp.url}/nodes/stream`, { headers: { authorization: 'Bearer ghn_guessed_shared_token_value' } });
    expect(shared.status).toBe(401);
    expect(((await shared.json()) as { type: string; message: string }).message).toMatch(/GATEHOUSE_NODE_TOKEN/);
    // The refusal is logged with a reason, never with the credential.
    await waitFor(() => cp.logs.has(/refused a node request/), { what: 'refusal logged' });
    expect(cp.logs.text()).not.toContain('ghn_guessed_shared_token_value');
  });

  it("a revoked node's stream is closed and it cannot open the secrets of the next snapshot", async () => {
    const revoked = await rawNode(cp.url, `revoked-${dialect}`);
    const kept = await rawNode(cp.url, `kept-${dialect}`);
    await revoked.enroll(await enrollToken(revoked.nodeId));
    await kept.enroll(await enrollToken(kept.nodeId));
    const revokedStream = await revoked.stream();
    const keptStream = await kept.stream();
    await waitFor(() => snapshots(revokedStream).length > 0 && snapshots(keptStream).length > 0, { what: 'both streams served' });
    const oldKey = await unwrapDataKey(snapshots(revokedStream)[0]!.dataKey, revoked.sealing.privateJwk);

    const r = await cp.gql<{ revokeNode: { node: { enrollment: string }; errors: unknown[] } }>(
      `mutation($id: ID!) { revokeNode(input: { id: $id }) { node { enrollment } errors { code } } }`,
      { id: revoked.nodeId },
    );
    expect(r.revokeNode).toEqual({ node: { enrollment: 'REVOKED' }, errors: [] });
    await Promise.race([revokedStream.ended, waitFor(() => false, { timeoutMs: 5_000, what: 'revoked stream closed' })]);
    expect(await revoked.stream()).toMatchObject({ status: 403, body: { type: 'node_revoked' } });

    const before = snapshots(keptStream).length;
    await cp.gql(`mutation { updateMcpServer(input: { name: "crm", headers: [{ name: "Authorization", value: "Bearer second-secret" }] }) { errors { code } } }`);
    await waitFor(() => snapshots(keptStream).length > before, { what: 'next snapshot on the kept node' });
    const next = snapshots(keptStream).at(-1)!;
    expect(openValue(await unwrapDataKey(next.dataKey, kept.sealing.privateJwk), sealedHeader(next))).toBe('Bearer second-secret');
    // Neither the revoked node's old data key nor its private key opens what followed.
    expect(() => openValue(oldKey, sealedHeader(next))).toThrow();
    await expect(unwrapDataKey(next.dataKey, revoked.sealing.privateJwk)).rejects.toThrow();
    expect(revokedStream.events.filter((e) => e.event === 'snapshot')).toHaveLength(1);
    keptStream.close();
  });
  it('a node credential is good for one request: replayed to the same route, it is refused and stores nothing', async () => {
    const node = await rawNode(cp.url, `replayed-${dialect}`);
    await node.enroll(await enrollToken(node.nodeId));
    const event = (id: string, tool: string) => ({
      id, time: new Date().toISOString(), node: node.nodeId, route: '/mcp', requestId: '1', method: 'tools/call', server: 'crm', tool, outcome: 'ok', latencyMs: 1,
    });
    const post = (headers: Record<string, string>, body: unknown) =>
      fetch(`${cp.url}${NODE_AUDIT_PATH}`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const captured = await node.headers('POST', NODE_AUDIT_PATH);
    const first = await post(captured, { events: [event('018f0000-0000-7000-8000-00000000a001', 'genuine')] });
    expect(first.status).toBe(200);
    // The same credential again, within its lifetime, carrying a forged event: refused before the body is read.
    const replayed = await post(captured, { events: [event('018f0000-0000-7000-8000-00000000a002', 'forged')] });
    expect(replayed.status).toBe(401);
    expect(((await replayed.json()) as { type: string }).type).toBe('node_token_required');
    const stored = await cp.gql<{ auditEvents: { edges: { node: { tool: string } }[] } }>(
      `query($n: String!) { auditEvents(filter: { server: $n }, first: 50) { edges { node { tool } } } }`,
      { n: 'crm' },
    );
    expect(stored.auditEvents.edges.map((e) => e.node.tool)).toEqual(['genuine']);
    // A fresh credential for the same route still works, and a stream credential replayed is refused too.
    expect((await post(await node.headers('POST', NODE_AUDIT_PATH), { events: [] })).status).not.toBe(401);
    const streamHeaders = await node.headers('GET', NODE_STREAM_PATH);
    const opened = await fetch(`${cp.url}${NODE_STREAM_PATH}`, { headers: streamHeaders });
    expect(opened.status).toBe(200);
    await opened.body?.cancel();
    expect((await fetch(`${cp.url}${NODE_STREAM_PATH}`, { headers: streamHeaders })).status).toBe(401);
  });
});
