/**
 * Node status storage on every test dialect: reports upsert, stream connection state, and the
 * `nodes` GraphQL query that shows them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getNode, listNodes, recordNodeReport, setNodeConnected } from '../../../control-plane/repos/nodes.js';
import { testDialects } from '../../support/db.js';
import { createHarness, dataOf, type Harness } from '../graphql/harness.js';

describe.each(testDialects)('data-plane nodes on %s', (dialect) => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness(dialect);
  });
  afterAll(async () => {
    await h?.close();
  });

  it('records connection and reports, and lists them in id order', async () => {
    const db = h.database.db;
    await setNodeConnected(db, 'node-b', true);
    expect(await getNode(db, 'node-b')).toMatchObject({ connected: true, health: 'UNKNOWN', appliedVersion: null, missingEnv: [] });
    await recordNodeReport(db, {
      nodeId: 'node-b',
      appliedVersion: 7,
      missingEnv: [{ name: 'GITHUB_TOKEN', servers: ['github'] }],
      lastRejection: { code: 'rollback', message: 'version 3 is older than 7', at: '2030-01-01T00:00:00.000Z' },
      health: 'DEGRADED',
      startedAt: '2030-01-01T00:00:00.000Z',
    });
    await recordNodeReport(db, { nodeId: 'node-a', appliedVersion: 7, missingEnv: [], lastRejection: null, health: 'OK', startedAt: '2030-01-01T00:00:00.000Z' });
    expect(await getNode(db, 'node-b')).toMatchObject({ connected: true, appliedVersion: 7, health: 'DEGRADED' });
    await setNodeConnected(db, 'node-b', false);
    expect((await getNode(db, 'node-b'))?.connected).toBe(false);
    expect((await listNodes(db, { limit: 10, inverted: false })).map((n) => n.id)).toEqual(['node-a', 'node-b']);
  });

  it('shows nodes over GraphQL', async () => {
    const nodes = dataOf(
      await h.gql<{ nodes: { edges: Array<{ node: Record<string, unknown> }> } }>(
        '{ nodes(first: 10) { edges { node { id appliedVersion health connected missingEnv { name servers } lastRejection { code message at } startedAt lastSeenAt } } } }',
      ),
    ).nodes.edges.map((e) => e.node);
    expect(nodes).toHaveLength(2);
    expect(nodes[1]).toMatchObject({
      id: 'node-b',
      appliedVersion: 7,
      health: 'DEGRADED',
      connected: false,
      missingEnv: [{ name: 'GITHUB_TOKEN', servers: ['github'] }],
      lastRejection: { code: 'rollback', message: 'version 3 is older than 7', at: '2030-01-01T00:00:00.000Z' },
    });
  });
});
