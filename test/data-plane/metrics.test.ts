import { describe, expect, it } from 'vitest';
import { createNodeMetrics } from '../../data-plane/http/metrics.js';
import type { RuntimeHolder } from '../../data-plane/config/runtime.js';
import type { RequestRecord } from '../../data-plane/pipeline/context.js';

const holder = { current: null } as unknown as RuntimeHolder;

function record(latencyMs: number, fields: Partial<RequestRecord> = {}): RequestRecord {
  return { route: 'mcp', requestId: 1, at: 0, latencyMs, keyId: null, keyHashPrefix: null, userId: null, method: 'tools/call', server: 's', tool: 'echo', arguments: undefined, outcome: 'ok', error: null, reason: null, credentialIdentity: null, usage: null, ...fields };
}

describe('node metrics (counted in the record sink, exposed when scraped)', () => {
  it('exposes cumulative duration buckets, sum and count, and request counts that keep adding up across scrapes', async () => {
    const metrics = createNodeMetrics(holder);
    for (const ms of [0.5, 3, 7, 40, 40_000]) metrics.record(record(ms));
    metrics.record(record(2, { outcome: 'denied', error: 'tool_blocked' }));
    const first = await metrics.registry.metrics();
    expect(first).toContain('gatehouse_mcp_request_duration_seconds_bucket{le="0.001",method="tools/call"} 1\n');
    expect(first).toContain('gatehouse_mcp_request_duration_seconds_bucket{le="0.005",method="tools/call"} 3\n');
    expect(first).toContain('gatehouse_mcp_request_duration_seconds_bucket{le="0.05",method="tools/call"} 5\n');
    expect(first).toContain('gatehouse_mcp_request_duration_seconds_bucket{le="30",method="tools/call"} 5\n');
    expect(first).toContain('gatehouse_mcp_request_duration_seconds_bucket{le="+Inf",method="tools/call"} 6\n');
    expect(first).toContain('gatehouse_mcp_request_duration_seconds_count{method="tools/call"} 6');
    expect(first).toContain('gatehouse_mcp_requests_total{method="tools/call",outcome="ok",server="s"} 5');
    expect(first).toContain('gatehouse_mcp_requests_total{method="tools/call",outcome="denied",server="s"} 1');
    expect(first).toContain('gatehouse_refusals_total{route="mcp",type="tool_blocked"} 1');
    metrics.record(record(1));
    const second = await metrics.registry.metrics();
    expect(second).toContain('gatehouse_mcp_requests_total{method="tools/call",outcome="ok",server="s"} 6');
    expect(second).toContain('gatehouse_mcp_request_duration_seconds_count{method="tools/call"} 7');
  });

  it('labels a caller-chosen method "other", so callers cannot grow the series', async () => {
    const metrics = createNodeMetrics(holder);
    for (let i = 0; i < 50; i++) metrics.record(record(1, { method: `made/up/${i}` }));
    const text = await metrics.registry.metrics();
    expect(text).toContain('gatehouse_mcp_requests_total{method="other",outcome="ok",server="s"} 50');
    expect(text).not.toContain('made/up');
  });
});
