/**
 * Authorization-server endpoints found by discovery must be http(s) (https unless the insecure opt-in).
 * An MCP server, or the authorization server it names, chooses them: an `authorization_endpoint` of
 * `javascript:`, `file:` or a custom scheme (`vscode:`, `ms-officecmd:`: the class of CVE-2025-6514, where
 * a client opened such a URL) went into the redirect a person's browser follows from the connect page and
 * the start link, and token / registration endpoints into requests of the control plane. The issuer's
 * scheme was checked, its endpoints' were not. Now startServerOAuth answers OAUTH_DISCOVERY_FAILED and
 * no link is made.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { closeServer } from '../support/upstreams.js';
import { openOneTimeLink } from '../support/one-time-link.js';

describe('discovered authorization-server endpoints with other schemes', () => {
  let cp: TestControlPlane;
  let standIn: Server;
  let origin = '';
  /** What the stand-in's metadata says, per test. */
  let endpoints: Record<string, string> = {};

  beforeAll(async () => {
    // An MCP server with no protected-resource metadata whose origin is its own authorization server.
    standIn = createServer((req, res) => {
      if (req.url === '/.well-known/oauth-authorization-server') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(
          JSON.stringify({ issuer: origin, response_types_supported: ['code'], code_challenge_methods_supported: ['S256'], ...endpoints }),
        );
        return;
      }
      res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => standIn.listen(0, '127.0.0.1', resolve));
    origin = `http://127.0.0.1:${(standIn.address() as AddressInfo).port}`;
    cp = await startTestControlPlane();
  }, 60_000);
  afterAll(async () => {
    await cp?.close();
    if (standIn) await closeServer(standIn);
  });

  const good = () => ({ authorization_endpoint: `${origin}/authorize`, token_endpoint: `${origin}/token`, registration_endpoint: `${origin}/register` });

  it.each([
    ['authorization_endpoint', 'javascript:alert(document.domain)'],
    ['authorization_endpoint', 'vscode://file/etc/passwd'],
    ['authorization_endpoint', 'file:///etc/passwd'],
    ['token_endpoint', 'gopher://127.0.0.1:6379/_FLUSHALL'],
    ['registration_endpoint', 'file:///etc/passwd'],
  ])('%s %s: refused, no start link', async (field, value) => {
    endpoints = { ...good(), [field]: value };
    const name = `s${Math.random().toString(36).slice(2, 10)}`;
    await cp.gql(`mutation { createMcpServer(input: { name: "${name}", connectionType: HTTP, connectionString: "${origin}/mcp", authType: OAUTH }) { errors { code } } }`);
    // Pre-registered, unless the registration endpoint is the one under test: the flow reaches each endpoint.
    if (field !== 'registration_endpoint') await cp.gql(`mutation { setMcpServerOAuth(input: { name: "${name}", clientId: "pre-registered" }) { errors { code } } }`);
    const started = await cp.gql<{ startServerOAuth: { url: string | null; errors: Array<{ code: string }> } }>(`mutation { startServerOAuth(name: "${name}") { url errors { code } } }`);
    expect(started.startServerOAuth).toEqual({ url: null, errors: [{ code: 'OAUTH_DISCOVERY_FAILED' }] });
  });

  it('http(s) endpoints (http under the insecure opt-in tests use) still give a start link', async () => {
    endpoints = good();
    await cp.gql(`mutation { createMcpServer(input: { name: "fine", connectionType: HTTP, connectionString: "${origin}/mcp", authType: OAUTH }) { errors { code } } }`);
    await cp.gql('mutation { setMcpServerOAuth(input: { name: "fine", clientId: "pre-registered" }) { errors { code } } }');
    const started = await cp.gql<{ startServerOAuth: { url: string | null; errors: unknown[] } }>('mutation { startServerOAuth(name: "fine") { url errors { code message } } }');
    expect(started.startServerOAuth.errors).toEqual([]);
    const opened = await openOneTimeLink(started.startServerOAuth.url ?? '');
    expect(opened.headers.get('location')?.startsWith(`${origin}/authorize?`)).toBe(true);
  });
});
