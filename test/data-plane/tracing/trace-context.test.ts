/** W3C Trace Context parsing (§3.2.2 of the recommendation) and what goes upstream. */
import { describe, expect, it } from 'vitest';
import { newTrace, parseTraceparent, traceFromMeta, upstreamTraceHeaders } from '../../../data-plane/tracing/trace-context.js';

const VALID = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

describe('trace context', () => {
  it('parses a valid traceparent and refuses malformed ones', () => {
    expect(parseTraceparent(VALID, 'congo=t61rcWkgMzE')).toEqual({ traceId: '4bf92f3577b34da6a3ce929d0e0e4736', parentId: '00f067aa0ba902b7', flags: '01', tracestate: 'congo=t61rcWkgMzE' });
    for (const bad of [
      '',
      'garbage',
      '00-00000000000000000000000000000000-00f067aa0ba902b7-01', // all-zero trace id
      '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01', // all-zero parent id
      'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', // version ff
      '00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01', // upper case
      `${VALID}-extra`, // version 00 has exactly four fields
      42,
    ]) {
      expect(parseTraceparent(bad)).toBeNull();
    }
    // A later version may append fields.
    expect(parseTraceparent(`01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more`)?.traceId).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
  });

  it('reads _meta.traceparent from JSON-RPC params', () => {
    expect(traceFromMeta({ name: 'x', _meta: { traceparent: VALID } })?.traceId).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
    expect(traceFromMeta({ name: 'x' })).toBeNull();
    expect(traceFromMeta({ _meta: { traceparent: 'nope' } })).toBeNull();
  });

  it('sends upstream the same trace id with a fresh parent id, flags and tracestate unchanged', () => {
    const trace = parseTraceparent(VALID, 'a=b')!;
    const headers = upstreamTraceHeaders(trace);
    expect(headers.traceparent).toMatch(/^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$/);
    expect(headers.traceparent).not.toContain('00f067aa0ba902b7');
    expect(headers.tracestate).toBe('a=b');
    const started = newTrace();
    expect(parseTraceparent(upstreamTraceHeaders(started).traceparent)?.traceId).toBe(started.traceId);
    expect(newTrace().traceId).not.toBe(started.traceId);
  });
});

describe('a caller tracestate', () => {
  it('is kept only when well formed (W3C §3.3.1.3)', () => {
    for (const good of ['congo=t61rcWkgMzE', 'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE', ' a@b=1 , c=2', 'k=v w']) expect(parseTraceparent(VALID, good)?.tracestate).toBe(good);
    for (const bad of ['Vendor=x', 'k=', 'k=a=b', 'k=v,junk', 'k=v\r\nx-injected: 1', 'k=v\u0001', 'k=é', `k=${'v'.repeat(257)}`, Array.from({ length: 33 }, (_, i) => `k${i}=v`).join(',')]) {
      expect(parseTraceparent(VALID, bad)?.tracestate).toBeUndefined();
    }
  });

  it('is not sent upstream when it carries the caller key', () => {
    const trace = { ...parseTraceparent(VALID)!, tracestate: 'vendor=gh_key_abc123' };
    expect(upstreamTraceHeaders(trace, '1111111111111111', 'gh_key_abc123').tracestate).toBeUndefined();
    expect(upstreamTraceHeaders(trace, '1111111111111111', 'another-key').tracestate).toBe('vendor=gh_key_abc123');
  });
});
