/**
 * What the MCP conformance suite needs to test a Gatehouse node's aggregated `/mcp` as an MCP server:
 *
 * - the conformance fixture upstream (`test/fixtures/conformance/`) behind it;
 * - a node (the real HTTP server, Runtime from a signed, sealed, verified snapshot) with one key granted
 *   every tool of that upstream;
 * - the header-adding proxy (`header-proxy.ts`) in front of the node, because the suite cannot send the
 *   virtual key. On `/mcp` it also maps tool names: the node names aggregated tools `{server}-{tool}`
 *   (SPEC §4) and prompts alike, and resources `gatehouse://{server}/{uri}`, while the suite uses the
 *   fixture's bare names and URIs, so requests gain the prefixes on the way in and list/read results lose
 *   them on the way out. Everything else passes through unchanged.
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

/** The node's URI prefix for the upstream's resources (`gatehouse://{server}/{uri}`). */
const URI_PREFIX = `gatehouse://${CONFORMANCE_SERVER}/`;

/** Tool and prompt names gain the node's prefix on the way in, resource URIs its URI prefix. */
function prefixToolCall(body: unknown): unknown {
  if (!isObject(body) || !isObject(body.params)) return body;
  const params = body.params;
  if ((body.method === 'tools/call' || body.method === 'prompts/get') && typeof params.name === 'string') return { ...body, params: { ...params, name: PREFIX + params.name } };
  if (body.method === 'resources/read' && typeof params.uri === 'string') return { ...body, params: { ...params, uri: URI_PREFIX + params.uri } };
  if (body.method === 'completion/complete' && isObject(params.ref)) {
    const ref = params.ref;
    if (typeof ref.name === 'string') return { ...body, params: { ...params, ref: { ...ref, name: PREFIX + ref.name } } };
    if (typeof ref.uri === 'string') return { ...body, params: { ...params, ref: { ...ref, uri: URI_PREFIX + ref.uri } } };
  }
  return body;
}

function strip(value: unknown, field: string, prefix: string): unknown {
  return isObject(value) && typeof value[field] === 'string' && value[field].startsWith(prefix) ? { ...value, [field]: value[field].slice(prefix.length) } : value;
}

/** List results (tools, prompts, resources, templates) and read contents lose the node's prefixes on the way out. */
function unprefixToolList(body: unknown): unknown {
  if (!isObject(body) || !isObject(body.result)) return body;
  const result = { ...body.result };
  if (Array.isArray(result.tools)) result.tools = result.tools.map((t: unknown) => strip(t, 'name', PREFIX));
  if (Array.isArray(result.prompts)) result.prompts = result.prompts.map((p: unknown) => strip(p, 'name', PREFIX));
  if (Array.isArray(result.resources)) result.resources = result.resources.map((r: unknown) => strip(r, 'uri', URI_PREFIX));
  if (Array.isArray(result.resourceTemplates)) result.resourceTemplates = result.resourceTemplates.map((r: unknown) => strip(r, 'uriTemplate', URI_PREFIX));
  if (Array.isArray(result.contents)) result.contents = result.contents.map((c: unknown) => strip(c, 'uri', URI_PREFIX));
  return { ...body, result };
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
