/**
 * The governance phase of `npm run bench` (issue 7), in the same run as the /mcp baselines:
 *   - `/mcp` tools/call with the limits stage off (a key without limits), on with in-process counters, and
 *     on with Redis counters (a second node with REDIS_URL; skipped when no Redis answers);
 *   - `/anthropic` streaming: time to first byte (sequential requests, p50/p99) and throughput at the
 *     bench's connection count, through the node against calling the Messages API upstream directly.
 * Prints its own table and returns the numbers (run.ts writes them to bench/results/governance.json).
 */
import { join } from 'node:path';
import { request } from 'undici';
import { Redis } from 'ioredis';
import { startGatehouseNode, type ControlPlaneProcess, type NodeProcess } from './gatehouse.js';
import { runLoad, type Generator, type LoadResult, type LoadSpec } from './load.js';
import { ROOT, startTs, type Tracked } from './procs.js';
import { percentile } from './stats.js';

export interface GovernanceBenchOptions {
  generator: Generator;
  cp: ControlPlaneProcess;
  node: NodeProcess;
  nodeToken: string;
  userId: string;
  serverName: string;
  /** The bench's key without limits ("limits off"). */
  unlimitedKey: string;
  connections: number;
  durationS: number;
  warmupS: number;
  log(message: string): void;
}

export interface GovernanceResults {
  mcp: { off: LoadResult | null; inProcess: LoadResult | null; redis: LoadResult | null; redisSkipped: string | null };
  anthropic: {
    ttfbDirect: { p50Ms: number; p99Ms: number } | null;
    ttfbGateway: { p50Ms: number; p99Ms: number } | null;
    addedTtfbP50Ms: number | null;
    direct: LoadResult | null;
    gateway: LoadResult | null;
  };
}

const TTFB_SAMPLES = 300;
const STREAM_BODY = JSON.stringify({ model: 'claude-bench-1', max_tokens: 64, stream: true, messages: [{ role: 'user', content: 'hi' }] });

async function redisReachable(url: string): Promise<boolean> {
  const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 1000 });
  probe.on('error', () => undefined);
  try {
    await probe.connect();
    await probe.ping();
    return true;
  } catch {
    return false;
  } finally {
    probe.disconnect();
  }
}

/** Time to the first body byte of `TTFB_SAMPLES` sequential streaming requests (one keep-alive connection). */
async function ttfb(url: string, headers: Record<string, string>): Promise<{ p50Ms: number; p99Ms: number }> {
  const samples: number[] = [];
  for (let i = 0; i < TTFB_SAMPLES + 20; i++) {
    const started = performance.now();
    const res = await request(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: STREAM_BODY });
    let first = 0;
    for await (const chunk of res.body) {
      if (first === 0 && (chunk as Buffer).length > 0) first = performance.now();
    }
    if (res.statusCode !== 200) throw new Error(`${url}: HTTP ${res.statusCode}`);
    if (i >= 20) samples.push(first - started); // the first 20 warm up
  }
  samples.sort((a, b) => a - b);
  return { p50Ms: percentile(samples, 50), p99Ms: percentile(samples, 99) };
}

export async function measureGovernance(o: GovernanceBenchOptions): Promise<GovernanceResults> {
  const started: Tracked[] = [];
  const nodes: NodeProcess[] = [];
  try {
    const upstream = startTs('anthropic-upstream', join(ROOT, 'bench/procs/anthropic-upstream.ts'), [], { env: { PATH: process.env.PATH ?? '' } });
    started.push(upstream);
    const port = (JSON.parse(await upstream.waitForLine((l) => l.includes('"ready":true'), 30_000, 'ready line')) as { port: number }).port;
    const upstreamUrl = `http://127.0.0.1:${port}`;
    await o.cp.gql(
      `mutation($u: String!) { upsertProvider(input: { name: "anthropic", baseUrl: $u, apiKey: "sk-ant-bench-provider-key-000000", prices: [{ model: "claude-*", inputPerMTok: 3, outputPerMTok: 15, cacheWritePerMTok: 3.75, cacheReadPerMTok: 0.3 }] }) { errors { code message } } }`,
      { u: upstreamUrl },
    );
    // Limits that never bite, so every request runs the whole limits stage and is admitted.
    const issued = await o.cp.gql<{ createVirtualKey: { key: string } }>(
      `mutation($input: CreateVirtualKeyInput!) { createVirtualKey(input: $input) { key errors { code message } } }`,
      { input: { userId: o.userId, name: 'bench limited key', servers: [{ server: o.serverName, tools: ['*'] }], rateLimit: { requestsPerMinute: 2_000_000_000 }, budgets: [{ maxUsd: 1e12, period: 'MONTHLY' }] } },
    );
    const limitedKey = issued.createVirtualKey.key;

    const redisUrl = process.env.BENCH_REDIS_URL ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
    let redisSkipped: string | null = null;
    let redisNode: NodeProcess | null = null;
    if (await redisReachable(redisUrl)) {
      redisNode = await startGatehouseNode({ controlPlaneUrl: o.cp.url, nodeToken: o.nodeToken, nodeId: 'bench-node-redis', env: { REDIS_URL: redisUrl } });
      nodes.push(redisNode);
    } else redisSkipped = `no Redis at ${redisUrl} (set BENCH_REDIS_URL)`;

    const callBody = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: `${o.serverName}-echo`, arguments: { text: 'x' } } });
    const ready = async (url: string, body: string, key: string): Promise<void> => {
      for (let i = 0; i < 300; i++) {
        const res = await request(url, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body });
        await res.body.text();
        if (res.statusCode === 200) return;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`${url} did not become ready for the bench's limited key`);
    };
    for (const node of [o.node, ...nodes]) {
      await ready(`${node.url}/mcp`, callBody, limitedKey);
      await ready(`${node.url}/anthropic/v1/messages`, STREAM_BODY, limitedKey);
    }

    const spec = (url: string, body: string, key: string | null): LoadSpec => ({ url, body, authorization: key === null ? null : `Bearer ${key}`, connections: o.connections, durationS: o.durationS, warmupS: o.warmupS });
    const load = async (label: string, s: LoadSpec): Promise<LoadResult> => {
      o.log(`load: ${label}, ${o.warmupS} s warm-up + ${o.durationS} s`);
      const r = await runLoad(o.generator, s);
      o.log(`  ${Math.round(r.rps)} req/s, p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms, ${r.errors} errors`);
      return r;
    };
    const off = await load('/mcp tools/call, limits off', spec(`${o.node.url}/mcp`, callBody, o.unlimitedKey));
    const inProcess = await load('/mcp tools/call, limits on (in-process)', spec(`${o.node.url}/mcp`, callBody, limitedKey));
    const redis = redisNode ? await load('/mcp tools/call, limits on (Redis)', spec(`${redisNode.url}/mcp`, callBody, limitedKey)) : null;

    o.log(`/anthropic time to first byte: ${TTFB_SAMPLES} sequential streaming requests each, direct and through the node`);
    const ttfbDirect = await ttfb(`${upstreamUrl}/v1/messages`, {});
    const ttfbGateway = await ttfb(`${o.node.url}/anthropic/v1/messages`, { 'x-api-key': limitedKey });
    const direct = await load('/anthropic streaming, direct upstream', spec(`${upstreamUrl}/v1/messages`, STREAM_BODY, null));
    const gateway = await load('/anthropic streaming, through the node', spec(`${o.node.url}/anthropic/v1/messages`, STREAM_BODY, limitedKey));
    return {
      mcp: { off, inProcess, redis, redisSkipped },
      anthropic: { ttfbDirect, ttfbGateway, addedTtfbP50Ms: ttfbGateway.p50Ms - ttfbDirect.p50Ms, direct, gateway },
    };
  } finally {
    for (const node of nodes) await node.close();
    for (const proc of started) await proc.stop();
  }
}

export function renderGovernance(r: GovernanceResults): string {
  const row = (label: string, x: LoadResult | null, note = ''): string =>
    x ? `  ${label.padEnd(44)} ${String(Math.round(x.rps)).padStart(7)} req/s  p50 ${x.p50Ms.toFixed(2).padStart(6)} ms  p99 ${x.p99Ms.toFixed(2).padStart(7)} ms  ${x.errors} errors\n` : `  ${label.padEnd(44)} skipped ${note}\n`;
  const ratio = (a: LoadResult | null, b: LoadResult | null): string => (a && b ? `${(a.rps / b.rps).toFixed(2)}×` : 'n/a');
  const a = r.anthropic;
  return (
    '\nGovernance (issue 7)\n' +
    row('/mcp tools/call, limits off', r.mcp.off) +
    row('/mcp tools/call, limits on (in-process)', r.mcp.inProcess) +
    row('/mcp tools/call, limits on (Redis)', r.mcp.redis, r.mcp.redisSkipped ?? '') +
    `  limits on ÷ off: in-process ${ratio(r.mcp.inProcess, r.mcp.off)}, Redis ${ratio(r.mcp.redis, r.mcp.off)}\n` +
    row('/anthropic streaming, direct upstream', a.direct) +
    row('/anthropic streaming, through the node', a.gateway) +
    (a.ttfbDirect && a.ttfbGateway
      ? `  /anthropic time to first byte p50: direct ${a.ttfbDirect.p50Ms.toFixed(3)} ms, gateway ${a.ttfbGateway.p50Ms.toFixed(3)} ms ` +
        `(added ${(a.addedTtfbP50Ms ?? 0).toFixed(3)} ms, target < 1 ms: ${(a.addedTtfbP50Ms ?? Infinity) < 1 ? 'MET' : 'NOT MET'}); p99 ${a.ttfbDirect.p99Ms.toFixed(3)} / ${a.ttfbGateway.p99Ms.toFixed(3)} ms\n`
      : '')
  );
}
