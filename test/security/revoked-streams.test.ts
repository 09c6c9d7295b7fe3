/**
 * Key revocation and expiry reach answers already streaming: a key revoked (by a snapshot) or expiring
 * while its caller holds an open stream (a `/mcp/{server}` GET stream of server notifications, which can
 * stay open for hours) loses that stream, as it loses every new request. Real node server, real SDK
 * upstream over Streamable HTTP.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSnapshot, startTestNode, type TestConfig, type TestNode } from '../data-plane/helpers.js';
import { startHttpUpstream, type HttpUpstream } from '../support/upstreams.js';
import { openServerStream } from '../support/mcp-http.js';

let upstream: HttpUpstream;
let node: TestNode;
const keyValues: Record<string, string> = {};
const secret = randomBytes(32).toString('base64url');

function config(version: number, revoked: boolean, expiresAt: string | null): TestConfig {
  return {
    version,
    servers: [{ name: 'crm', url: upstream.url }],
    keys: [
      { name: 'victim', servers: [{ server: 'crm', tools: ['*'] }], revoked },
      { name: 'brief', servers: [{ server: 'crm', tools: ['*'] }], expiresAt },
      { name: 'bystander', servers: [{ server: 'crm', tools: ['*'] }] },
    ],
    sessionSecrets: { current: { id: 's1', secret } },
  };
}

beforeAll(async () => {
  upstream = await startHttpUpstream();
  node = await startTestNode();
  const built = await buildSnapshot(config(1, false, new Date(Date.now() + 60_000).toISOString()));
  Object.assign(keyValues, built.keyValues);
  node.apply(built);
});

afterAll(async () => {
  await node?.close();
  await upstream?.close();
});

/** `key`'s session on `/mcp/crm` and its GET stream. */
const openStream = (key: string): ReturnType<typeof openServerStream> => openServerStream(`${node.url}/mcp/crm`, keyValues[key] ?? '');

const within = <T,>(promise: Promise<T>, ms: number): Promise<T | 'open'> => Promise.race([promise, new Promise<'open'>((r) => setTimeout(() => r('open'), ms))]);

describe('open streams of a key that stops being valid', () => {
  it('a revocation closes the key\'s open stream, and only that key\'s', async () => {
    const victim = await openStream('victim');
    const bystander = await openStream('bystander');
    expect(await within(victim.ended, 200)).toBe('open');
    node.apply(await buildSnapshot(config(2, true, new Date(Date.now() + 60_000).toISOString()), keyValues));
    expect(await within(victim.ended, 1_000)).toBe('ended');
    expect(await within(bystander.ended, 300)).toBe('open');
    bystander.abort();
  });

  it('an expiry closes the key\'s open stream when it comes', async () => {
    node.apply(await buildSnapshot(config(3, true, new Date(Date.now() + 1_500).toISOString()), keyValues));
    const brief = await openStream('brief');
    expect(await within(brief.ended, 500)).toBe('open');
    expect(await within(brief.ended, 3_000)).toBe('ended');
  });
});
