/**
 * Every control-plane HTTP route, with every method, under every kind of credential (none, a VIEWER admin
 * token, an ADMIN token, the shared node token) and a malformed body: never a 5xx, never a hang, never an
 * empty error; refusals are JSON `{type, message}` (or a readable page on the browser routes); and no
 * credential crosses over: node credentials never read /graphql or /audit/export, admin tokens never act
 * as a node. A regression guard (the probe that wrote it found no defect here).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';

const ROUTES = [
  '/graphql',
  '/nodes/stream',
  '/nodes/report',
  '/nodes/jwks',
  '/nodes/snapshot',
  '/nodes/enroll',
  '/nodes/spend',
  '/nodes/audit',
  '/nodes/credentials',
  '/audit/export',
  '/oauth/callback',
  '/oauth/start/nope',
  '/oauth/client-metadata.json',
  '/connect/session',
  '/connect/session/headers',
  `/connect/ghc_${'a'.repeat(43)}`,
  '/metrics',
  '/healthz',
  '/no/such/route',
];
const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'];
/** Routes whose answers are pages a person reads, not JSON. */
const BROWSER_ROUTES = /^\/(connect|oauth\/(callback|start))/;
/** Routes that answer anyone (public keys and metadata, probes, GraphiQL's shell); /metrics needs an admin or metrics token. */
const PUBLIC_OK = new Set(['/oauth/client-metadata.json', '/healthz', '/nodes/jwks']);

describe('control-plane routes × methods × credentials', () => {
  let cp: TestControlPlane;
  let credentials: Record<string, Record<string, string>>;

  beforeAll(async () => {
    cp = await startTestControlPlane();
    const viewer = await cp.gql<{ createAdminToken: { token: string } }>('mutation { createAdminToken(input: {name: "matrix viewer", role: VIEWER}) { token } }');
    credentials = {
      none: {},
      viewer: { authorization: `Bearer ${viewer.createAdminToken.token}` },
      admin: { authorization: `Bearer ${cp.adminToken}` },
      node: { authorization: `Bearer ${cp.cp.nodeToken ?? ''}`, 'x-gatehouse-node-id': 'matrix-node' },
    };
  }, 60_000);
  afterAll(async () => {
    await cp?.close();
  });

  it('answers every combination with a typed, non-5xx answer within 5 s, and keeps credentials apart', async () => {
    const problems: string[] = [];
    for (const path of ROUTES) {
      for (const method of METHODS) {
        for (const [who, headers] of Object.entries(credentials)) {
          const what = `${method} ${path} as ${who}`;
          const response = await fetch(`${cp.url}${path}`, {
            method,
            headers: { ...headers, 'content-type': 'application/json', accept: 'application/json' },
            body: method === 'GET' ? undefined : '{"events": [{"id": ',
            signal: AbortSignal.timeout(5_000),
          }).catch((error: unknown) => `no answer: ${String(error)}`);
          if (typeof response === 'string') {
            problems.push(`${what}: ${response}`);
            continue;
          }
          const type = response.headers.get('content-type') ?? '';
          // A node stream that opened stays open: the status says enough.
          const text = type.includes('text/event-stream') ? '' : await response.text();
          if (response.status >= 500) problems.push(`${what}: ${response.status} ${text.slice(0, 120)}`);
          // Browser routes answer their own methods with a page; anything else is the router's JSON 404.
          const page = BROWSER_ROUTES.test(path) && type.startsWith('text/html');
          if (response.status >= 400 && path !== '/graphql' && !page) {
            let body: { type?: unknown; message?: unknown } | null = null;
            try {
              body = JSON.parse(text) as { type?: unknown; message?: unknown } | null;
            } catch {
              body = null;
            }
            if (typeof body?.type !== 'string' || typeof body.message !== 'string') problems.push(`${what}: ${response.status} error is not {type, message}: ${type} ${text.slice(0, 120)}`);
          }
          const succeeded = response.status < 300;
          if (succeeded && who === 'node' && (path === '/graphql' || path === '/audit/export')) problems.push(`${what}: a node credential was accepted`);
          if (succeeded && (who === 'admin' || who === 'viewer') && path.startsWith('/nodes/') && !PUBLIC_OK.has(path) && path !== '/nodes/enroll') {
            problems.push(`${what}: an admin token acted as a node (${response.status})`);
          }
          if (succeeded && who === 'none' && !PUBLIC_OK.has(path) && path !== '/graphql' && !(path === '/nodes/enroll' && method === 'POST')) {
            problems.push(`${what}: answered ${response.status} without a credential`);
          }
        }
      }
    }
    expect(problems).toEqual([]);
  }, 120_000);
});
