/**
 * What the MCP conformance suite needs to test a Gatehouse node's aggregated `/mcp` as an MCP server:
 *
 * - the conformance fixture upstream (`test/fixtures/conformance/`) behind it;
 * - a node (the real HTTP server, Runtime from a signed, sealed, verified snapshot) with one key granted
 *   every tool of that upstream;
 * - the header-adding proxy (`header-proxy.ts`) in front of the node, because the suite cannot send the
 *   virtual key. On `/mcp` it also maps tool names: the node names aggregated tools `{server}-{tool}`
 *   (SPEC §4) while the suite calls the fixture's bare names, so `tools/call` gains the prefix on the way
 *   in and `tools/list` results lose it on the way out. Everything else passes through unchanged.
 *
 * For `/mcp/{server}` (issue 9) no mapping is needed (`startServerRouteTarget`): names are unprefixed there,
 * and the node hands out sealed session ids, so its snapshot carries a session secret. Two nodes serve it
 * from the same snapshot, and the proxy sends every request to the next one in turn, so every session the
 * suite opens hops between nodes.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { startConformanceFixture, type ConformanceFixture } from '../fixtures/conformance/server.js';
import { buildSnapshot, startTestNode, type TestNode } from '../data-plane/helpers.js';
import { startHeaderProxy } from './header-proxy.js';

/** The upstream's name in the snapshot, hence the node's tool-name prefix. */
export const CONFORMANCE_SERVER = 'conf';
const PREFIX = `${CONFORMANCE_SERVER}-`;

export interface ConformanceTarget {
  /** The proxy's `/mcp` URL: what the suite is pointed at. */
  url: string;
  node: TestNode;
  fixture: ConformanceFixture;
  close(): Promise<void>;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `tools/call` names gain the node's prefix on the way in. */
function prefixToolCall(body: unknown): unknown {
  if (!isObject(body) || body.method !== 'tools/call' || !isObject(body.params) || typeof body.params.name !== 'string') return body;
  return { ...body, params: { ...body.params, name: PREFIX + body.params.name } };
}

/** `tools/list` results lose the node's prefix on the way out. */
function unprefixToolList(body: unknown): unknown {
  if (!isObject(body) || !isObject(body.result) || !Array.isArray(body.result.tools)) return body;
  const tools = body.result.tools.map((t: unknown) =>
    isObject(t) && typeof t.name === 'string' && t.name.startsWith(PREFIX) ? { ...t, name: t.name.slice(PREFIX.length) } : t,
  );
  return { ...body, result: { ...body.result, tools } };
}

/** Fixture + node + proxy, ready for the suite. */
export async function startConformanceTarget(): Promise<ConformanceTarget> {
  const fixture = await startConformanceFixture();
  const node = await startTestNode();
  const snapshot = await buildSnapshot({
    servers: [{ name: CONFORMANCE_SERVER, url: fixture.url }],
    keys: [{ name: `conformance-${randomUUID().slice(0, 8)}`, servers: [{ server: CONFORMANCE_SERVER, tools: ['*'] }] }],
  });
  node.apply(snapshot);
  const key = Object.values(snapshot.keyValues)[0] ?? '';
  const proxy = await startHeaderProxy({
    target: node.mcpUrl,
    headers: { authorization: `Bearer ${key}` },
    rewrite: { request: prefixToolCall, response: unprefixToolList },
  });
  return {
    url: proxy.url,
    node,
    fixture,
    async close() {
      await proxy.close();
      await node.close();
      await fixture.close();
    },
  };
}

/** Fixture + two nodes + the round-robin header proxy, for the suite against `/mcp/{server}`. */
export async function startServerRouteTarget(): Promise<ConformanceTarget & { nodes: TestNode[]; key: string }> {
  const fixture = await startConformanceFixture();
  const nodes = [await startTestNode(), await startTestNode()];
  const snapshot = await buildSnapshot({
    servers: [{ name: CONFORMANCE_SERVER, url: fixture.url }],
    keys: [{ name: `conformance-${randomUUID().slice(0, 8)}`, servers: [{ server: CONFORMANCE_SERVER, tools: ['*'] }] }],
    sessionSecrets: { current: { id: 'conf', secret: randomBytes(32).toString('base64url') } },
  });
  for (const node of nodes) node.apply(snapshot);
  const key = Object.values(snapshot.keyValues)[0] ?? '';
  const proxy = await startHeaderProxy({
    target: nodes.map((node) => `${node.url}/mcp/${CONFORMANCE_SERVER}`),
    headers: { authorization: `Bearer ${key}` },
  });
  return {
    url: proxy.url,
    node: nodes[0] as TestNode,
    nodes,
    key,
    fixture,
    async close() {
      await proxy.close();
      for (const node of nodes) await node.close();
      await fixture.close();
    },
  };
}
