/**
 * The control plane's node-facing routes reject bad callers and bad input with JSON `{type, message}`
 * (never a 500), and record what a well-formed report says.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateNodeKeyPair } from '../../../data-plane/snapshot/seal.js';
import { NODE_ID_HEADER, NODE_KEY_HEADER } from '../../../data-plane/snapshot/stream-protocol.js';
import { startTestControlPlane, type TestControlPlane } from '../../support/control-plane.js';

let cp: TestControlPlane;
let auth: Record<string, string>;

beforeAll(async () => {
  cp = await startTestControlPlane();
  auth = { authorization: `Bearer ${cp.cp.nodeToken}` };
});

afterAll(async () => {
  await cp?.close();
});

async function json(res: Response): Promise<{ status: number; body: unknown }> {
  return { status: res.status, body: (await res.json()) as unknown };
}

describe('node routes', () => {
  it('refuse a missing or wrong node token with 401', async () => {
    const callers: Record<string, string>[] = [{}, { authorization: 'Bearer ghn_wrong' }, { authorization: `Bearer ${cp.adminToken}` }];
    for (const headers of callers) {
      expect(await json(await fetch(`${cp.url}/nodes/stream`, { headers }))).toMatchObject({ status: 401, body: { type: 'node_token_required' } });
      expect(await json(await fetch(`${cp.url}/nodes/report`, { method: 'POST', headers, body: '{}' }))).toMatchObject({ status: 401 });
      expect(await json(await fetch(`${cp.url}/nodes/jwks`, { headers }))).toMatchObject({ status: 401 });
    }
  });

  it('refuse a stream without a valid node id or public key with 400', async () => {
    const { publicJwk, privateJwk } = await generateNodeKeyPair();
    const key = (jwk: object): string => Buffer.from(JSON.stringify(jwk)).toString('base64url');
    const cases: Record<string, string>[] = [
      { [NODE_KEY_HEADER]: key(publicJwk) },
      { [NODE_ID_HEADER]: 'bad id with spaces', [NODE_KEY_HEADER]: key(publicJwk) },
      { [NODE_ID_HEADER]: 'n1' },
      { [NODE_ID_HEADER]: 'n1', [NODE_KEY_HEADER]: 'not-base64-json' },
      // A private key must never be accepted (or echoed) as a node's public key.
      { [NODE_ID_HEADER]: 'n1', [NODE_KEY_HEADER]: key(privateJwk) },
    ];
    for (const headers of cases) {
      expect(await json(await fetch(`${cp.url}/nodes/stream`, { headers: { ...auth, ...headers } }))).toMatchObject({ status: 400, body: { type: 'invalid_request' } });
    }
  });

  it('refuse malformed reports with 400 and record a good one', async () => {
    const post = (body: string): Promise<Response> =>
      fetch(`${cp.url}/nodes/report`, { method: 'POST', headers: { ...auth, [NODE_ID_HEADER]: 'n1', 'content-type': 'application/json' }, body });
    expect(await json(await post('{not json'))).toMatchObject({ status: 400, body: { type: 'invalid_json' } });
    expect(await json(await post(JSON.stringify({ nodeId: 'n1' })))).toMatchObject({ status: 400, body: { type: 'invalid_request' } });
    expect(await json(await post('x'.repeat(300 * 1024)))).toMatchObject({ status: 413, body: { type: 'payload_too_large' } });
    const good = await post(
      JSON.stringify({ nodeId: 'n1', appliedVersion: 7, missingEnv: [{ name: 'X', servers: ['s'] }], lastRejection: null, health: 'DEGRADED', startedAt: new Date().toISOString() }),
    );
    expect(good.status).toBe(204);
    const nodes = await cp.gql<{ nodes: { edges: { node: { id: string; appliedVersion: number; missingEnv: unknown[] } }[] } }>(
      '{ nodes { edges { node { id appliedVersion missingEnv { name servers } } } } }',
    );
    expect(nodes.nodes.edges.map((e) => e.node)).toContainEqual({ id: 'n1', appliedVersion: 7, missingEnv: [{ name: 'X', servers: ['s'] }] });
  });

  it('answer unknown routes with 404 JSON', async () => {
    expect(await json(await fetch(`${cp.url}/nope`))).toMatchObject({ status: 404, body: { type: 'not_found' } });
  });
});
