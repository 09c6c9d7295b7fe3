/**
 * The sealed-session design for `/mcp/{server}` (issue 9 item 2), proven with the official conformance suite
 * before the gateway route exists: a pass-through proxy that keeps no state at all besides a session
 * keyring, and answers every request as one of two "nodes" in turn, each with its own keyring derived from
 * the same secret (as two nodes derive theirs from the same snapshot). It swaps the upstream's
 * `Mcp-Session-Id` for a sealed id on the way out and back on the way in, so every session the suite opens
 * hops between nodes on every request: initialize, SSE streams, server-to-client requests and their answers,
 * GET resumption with Last-Event-ID, DELETE. The 2025-11-25 requirement set must pass as it does straight
 * against the fixture; a sealed id replayed with another key is refused.
 *
 * This is test scaffolding, not the gateway: the pipeline's `/mcp/{server}` does the same swap in its
 * forward stage (see the module comment of `data-plane/session/sealed-session.ts`).
 */
import { randomBytes } from 'node:crypto';
import { createServer, request as httpRequest, type OutgoingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deriveSessionKeyring, type SessionKeyring } from '../../data-plane/session/keyring.js';
import { openSession, sealSession, SessionError } from '../../data-plane/session/sealed-session.js';
import { startConformanceFixture, type ConformanceFixture } from '../fixtures/conformance/server.js';
import { readAll } from './header-proxy.js';
import { judge, loadExpectedFailures, runRevision, type RevisionRun } from './runner.js';

const SERVER = 'conformance';
const KEY = { id: 'key_conformance', revoked: false, expiresAtMs: null };

function initializeParams(body: Buffer): { capabilities: Record<string, unknown>; protocolVersion: string } | null {
  try {
    const message = JSON.parse(body.toString('utf8')) as { method?: unknown; params?: { capabilities?: unknown; protocolVersion?: unknown } };
    if (message.method !== 'initialize') return null;
    const capabilities = typeof message.params?.capabilities === 'object' && message.params.capabilities !== null ? message.params.capabilities : {};
    return { capabilities: capabilities as Record<string, unknown>, protocolVersion: String(message.params?.protocolVersion ?? '') };
  } catch {
    return null;
  }
}

/** The stateless session-sealing proxy (see the module comment). `refusals` counts refused ids by code. */
async function startSealingProxy(target: string, nodes: SessionKeyring[]): Promise<{ url: string; refusals: Map<string, number>; close(): Promise<void> }> {
  const targetUrl = new URL(target);
  const refusals = new Map<string, number>();
  let turn = 0;
  const server: Server = createServer((req, res) => {
    void (async () => {
      const keyring = nodes[turn++ % nodes.length] as SessionKeyring;
      const headers: OutgoingHttpHeaders = { ...req.headers, host: targetUrl.host };
      delete headers.connection;
      const sealed = req.headers['mcp-session-id'];
      let sealedId: string | null = null;
      if (typeof sealed === 'string') {
        try {
          const claims = openSession(keyring, sealed, { key: KEY, server: SERVER });
          sealedId = sealed;
          const upstream = claims.upstream[SERVER];
          if (upstream === undefined) delete headers['mcp-session-id'];
          else headers['mcp-session-id'] = upstream;
        } catch (error) {
          const code = error instanceof SessionError ? error.code : 'unexpected';
          refusals.set(code, (refusals.get(code) ?? 0) + 1);
          res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32001, message: 'Session not found' } }));
          return;
        }
      }
      // Only a POST can be an initialize; its body is needed to seal the client's capabilities.
      const body = req.method === 'POST' ? await readAll(req) : null;
      const init = body ? initializeParams(body) : null;
      const upstream = httpRequest({ hostname: targetUrl.hostname, port: targetUrl.port, path: req.url, method: req.method, headers }, (answer) => {
        const out: OutgoingHttpHeaders = { ...answer.headers };
        const issued = answer.headers['mcp-session-id'];
        if (typeof issued === 'string') {
          out['mcp-session-id'] =
            sealedId ??
            sealSession(keyring, {
              server: SERVER,
              upstream: { [SERVER]: issued },
              keyId: KEY.id,
              clientCapabilities: init?.capabilities ?? {},
              protocolVersion: init?.protocolVersion ?? '',
              issuedAt: Date.now(),
            });
        }
        res.writeHead(answer.statusCode ?? 502, out);
        res.flushHeaders();
        answer.pipe(res);
      });
      upstream.on('error', () => res.headersSent || res.writeHead(502).end());
      res.on('close', () => upstream.destroy());
      upstream.end(body ?? undefined);
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}${targetUrl.pathname}`,
    refusals,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('sealed session ids carry 2025-11-25 sessions across stateless nodes (conformance suite through a sealing proxy)', () => {
  let fixture: ConformanceFixture;
  let proxy: Awaited<ReturnType<typeof startSealingProxy>>;
  let run: RevisionRun;
  const secret = { id: 'conf1', secret: randomBytes(32).toString('base64url') };

  beforeAll(async () => {
    fixture = await startConformanceFixture();
    proxy = await startSealingProxy(fixture.url, [deriveSessionKeyring(secret, null), deriveSessionKeyring({ ...secret }, null)]);
    run = await runRevision(proxy.url, '2025-11-25');
  }, 120_000);

  afterAll(async () => {
    await proxy?.close();
    await fixture?.close();
  });

  it('passes the 2025-11-25 requirement set exactly as the fixture does straight', () => {
    const verdict = judge([run], loadExpectedFailures().fixture);
    expect(verdict.unexpected).toEqual([]);
    expect(verdict.stale).toEqual([]);
    expect(verdict.passedScenarios).toBe(run.scenarios.length);
    expect(proxy.refusals.size).toBe(0);
  });

  it('never shows the client an upstream session id, and the upstream only ever sees its own', () => {
    const upstreamIds = new Set(fixture.events.events.flatMap((e) => (e.kind === 'http' && e.sessionId ? [e.sessionId] : [])));
    expect(upstreamIds.size).toBeGreaterThan(5);
    for (const id of upstreamIds) expect(id.startsWith('v1.')).toBe(false);
  });

  it('refuses a sealed id replayed with another key, and a tampered one, with 404', async () => {
    const keyring = deriveSessionKeyring(secret, null);
    const claims = { server: SERVER, upstream: { [SERVER]: 'x' }, keyId: 'key_someone_else', clientCapabilities: {}, protocolVersion: '2025-11-25', issuedAt: Date.now() };
    const otherKey = sealSession(keyring, claims);
    const tampered = `${sealSession(keyring, { ...claims, keyId: KEY.id }).slice(0, -2)}AA`;
    for (const id of [otherKey, tampered]) {
      const res = await fetch(proxy.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': id, 'mcp-protocol-version': '2025-11-25' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
      });
      expect(res.status).toBe(404);
    }
    expect(Object.fromEntries(proxy.refusals)).toEqual({ other_key: 1, tampered: 1 });
  });
});
