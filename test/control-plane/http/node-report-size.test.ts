/**
 * Node reports stay under the control plane's bound (`MAX_NODE_REPORT_BYTES`): a node with many or large
 * tool catalogs leaves catalogs out (then healthy upstreams) so its health and status still arrive, and says
 * so once; the control plane answers a report over the bound with 413 `payload_too_large` saying what to do,
 * which the node logs (once) instead of losing its reports silently. A real control plane and a real link.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../../data-plane/log.js';
import { ControlPlaneLink } from '../../../data-plane/node/control-plane-link.js';
import { fitReport } from '../../../data-plane/node/report-size.js';
import { generateNodeKeyPair } from '../../../data-plane/snapshot/seal.js';
import { MAX_NODE_REPORT_BYTES, NodeReportSchema, type NodeReport, type UpstreamHealth } from '../../../data-plane/snapshot/stream-protocol.js';
import { LogCapture } from '../../data-plane/helpers.js';
import { startTestControlPlane, type TestControlPlane } from '../../support/control-plane.js';

let cp: TestControlPlane;

beforeAll(async () => {
  cp = await startTestControlPlane();
});

afterAll(async () => {
  await cp?.close();
});

/** `count` catalogs of `tools` tools whose descriptions make each about `tools` KB. */
function catalogs(count: number, tools: number): NonNullable<NodeReport['catalogs']> {
  return Array.from({ length: count }, (_, s) => ({
    server: `srv${s}`,
    tools: Array.from({ length: tools }, (_, t) => ({ name: `tool_${t}`, description: `${'d'.repeat(1_000)} ü` })),
  }));
}

function upstreams(count: number): UpstreamHealth[] {
  const at = new Date().toISOString();
  return Array.from({ length: count }, (_, i) =>
    i % 10 === 0 ? { server: `srv${i}`, status: 'unreachable' as const, reason: `connection refused ${'r'.repeat(200)}`, at } : { server: `srv${i}`, status: 'reachable' as const, reason: null, at },
  );
}

const base: NodeReport = { nodeId: 'n', appliedVersion: 3, missingEnv: [], lastRejection: null, health: 'OK', startedAt: new Date().toISOString() };

describe('fitReport', () => {
  it('keeps a report that fits as it is', () => {
    const report = { ...base, catalogs: catalogs(2, 3), upstreams: upstreams(5) };
    const fitted = fitReport(report, MAX_NODE_REPORT_BYTES);
    expect(fitted).toMatchObject({ droppedCatalogs: 0, droppedUpstreams: 0 });
    expect(JSON.parse(fitted.body)).toEqual(report);
  });

  it.each([
    ['many small catalogs', 400, 2],
    ['a few huge catalogs', 6, 150],
    ['one catalog larger than the bound', 1, 400],
  ])('%s: catalogs give way, every health entry stays, the result is valid and under the bound', (_what, count, tools) => {
    const report = { ...base, catalogs: catalogs(count, tools), upstreams: upstreams(300) };
    expect(Buffer.byteLength(JSON.stringify(report))).toBeGreaterThan(MAX_NODE_REPORT_BYTES);
    const fitted = fitReport(report, MAX_NODE_REPORT_BYTES);
    expect(Buffer.byteLength(fitted.body)).toBeLessThanOrEqual(MAX_NODE_REPORT_BYTES);
    expect(fitted.droppedCatalogs).toBeGreaterThan(0);
    expect(fitted.droppedUpstreams).toBe(0);
    const parsed = NodeReportSchema.parse(JSON.parse(fitted.body));
    expect(parsed.upstreams).toEqual(report.upstreams);
    expect(parsed.catalogs?.length).toBe(count - fitted.droppedCatalogs);
    expect(parsed).toMatchObject({ appliedVersion: 3, health: 'OK' });
  });

  it('when health alone is over the bound, healthy entries give way before the ones that say something is wrong', () => {
    const report = { ...base, catalogs: catalogs(3, 3), upstreams: upstreams(200) };
    const maxBytes = 8 * 1024;
    const fitted = fitReport(report, maxBytes);
    expect(Buffer.byteLength(fitted.body)).toBeLessThanOrEqual(maxBytes);
    const parsed = NodeReportSchema.parse(JSON.parse(fitted.body));
    expect(parsed.catalogs).toEqual([]);
    expect(fitted.droppedCatalogs).toBe(3);
    // All 20 unreachable entries (about 300 bytes each) are kept; healthy ones fill what is left.
    expect(parsed.upstreams?.filter((u) => u.status === 'unreachable')).toHaveLength(20);
    expect(fitted.droppedUpstreams).toBeGreaterThan(0);
  });
});

describe('a node reporting to a real control plane', () => {
  async function link(nodeId: string, report: Pick<NodeReport, 'catalogs' | 'upstreams'>, maxReportBytes?: number): Promise<{ link: ControlPlaneLink; logs: LogCapture }> {
    const logs = new LogCapture();
    const sealing = await generateNodeKeyPair();
    const identity = await generateNodeKeyPair();
    const node = new ControlPlaneLink({
      controlPlaneUrl: cp.url,
      nodeToken: cp.cp.nodeToken,
      identity: { publicJwk: identity.publicJwk, privateJwk: identity.privateJwk },
      nodeId,
      nodePublicJwk: sealing.publicJwk,
      nodePrivateJwk: sealing.privateJwk,
      stateDir: null,
      trustedJwks: null,
      apply: () => ({ missingEnv: [] }),
      applyDelta: () => undefined,
      catalogs: () => report.catalogs ?? [],
      upstreams: () => report.upstreams ?? [],
      logger: createLogger('test-link', { level: 'debug', destination: logs.stream }),
      ...(maxReportBytes !== undefined ? { maxReportBytes } : {}),
    });
    return { link: node, logs };
  }

  const reportedNodes = async (): Promise<string[]> =>
    (await cp.gql<{ nodes: { edges: { node: { id: string } }[] } }>('{ nodes { edges { node { id } } } }')).nodes.edges.map((e) => e.node.id);

  it('trims an oversized report so it is accepted, and says so once', async () => {
    const { link: node, logs } = await link('n-big', { catalogs: catalogs(30, 40), upstreams: upstreams(50) });
    await node.report();
    await node.report();
    expect(await reportedNodes()).toContain('n-big');
    const trimmed = logs.lines.filter((l) => l.includes('over the control plane bound'));
    expect(trimmed).toHaveLength(1);
    expect(JSON.parse(trimmed[0] ?? '{}')).toMatchObject({ droppedUpstreams: 0, maxBytes: MAX_NODE_REPORT_BYTES });
    expect(logs.text()).not.toContain('refused a node report');
  });

  it('an oversized report is answered 413 payload_too_large saying why, and the node logs it once', async () => {
    // A node that does not trim (as nodes before the bound did).
    const { link: node, logs } = await link('n-old', { catalogs: catalogs(30, 40) }, 10 * 1024 * 1024);
    await node.report();
    await node.report();
    const refused = logs.lines.filter((l) => l.includes('refused a node report'));
    expect(refused).toHaveLength(1);
    expect(refused[0]).toContain('HTTP 413 payload_too_large');
    expect(refused[0]).toContain(`node report exceeds ${MAX_NODE_REPORT_BYTES} bytes`);
    expect(await reportedNodes()).not.toContain('n-old');
    expect(cp.logs.has(/refused an oversized node report/)).toBe(true);

    const direct = await fetch(`${cp.url}/nodes/report`, {
      method: 'POST',
      headers: { authorization: `Bearer ${cp.cp.nodeToken ?? ''}`, 'x-gatehouse-node-id': 'n-old', 'content-type': 'application/json' },
      body: JSON.stringify({ ...base, nodeId: 'n-old', catalogs: catalogs(30, 40) }),
    });
    expect(direct.status).toBe(413);
    expect(await direct.json()).toEqual({ type: 'payload_too_large', message: expect.stringContaining('fewer tool catalogs') as unknown });
  });
});
