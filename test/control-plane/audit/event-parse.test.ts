/**
 * `parseAuditEvent` (the control plane's check of every shipped event) must decide exactly as
 * `AuditEventSchema` does: the same events accepted, with the same content, whether they took the quick
 * path or the schema's. The corpus varies every member with values either side of each bound and of the
 * wrong type, plus unknown and prototype-named members, as a hostile or buggy node might send them.
 */
import { describe, expect, it } from 'vitest';
import { AuditBatchSchema, AuditEventSchema, PLAIN_EVENT_MEMBERS, decodeAuditBatch, encodeAuditBatch, parseAuditEvent } from '../../../data-plane/snapshot/audit-protocol.js';

const base = {
  id: '0192abcd-1234-7bbb-8ccc-0123456789ab',
  time: '2026-12-01T10:00:00.000Z',
  node: 'node-1',
  requestId: '42',
  traceId: '0af7651916cd43dd8448eb211c80319c',
  route: '/mcp',
  keyId: 'key-1',
  keyHashPrefix: null,
  userId: 'user-1',
  method: 'tools/call',
  server: 'docs',
  tool: 'search',
  arguments: { q: 'x', nested: [1, { deep: true }] },
  result: { content: [{ type: 'text', text: 'ok' }] },
  outcome: 'ok',
  denyReason: null,
  upstreamStatus: 200,
  latencyMs: 1.25,
  resultBytes: 42,
  tokens: null,
  costUsd: null,
  guardrail: null,
};

const s = (n: number): string => 'a'.repeat(n);
const VALUES: Record<string, unknown[]> = {
  id: ['short', s(8), s(64), s(65), 'has space!x', 'ok_ok-OK99', 7, null],
  time: [
    '2026-12-01T10:00:00Z', '2026-02-31T00:00:00.000Z', '2026-13-01T00:00:00.000Z', '2026-12-01T10:00:00+02:00', '2026-12-01', 'yesterday', 0, null,
    '2024-02-29T23:59:59.999Z', '2026-02-29T00:00:00.000Z', '2000-02-29T00:00:00.000Z', '1900-02-29T00:00:00.000Z', '0000-01-01T00:00:00.000Z',
    '2026-04-31T00:00:00.000Z', '2026-12-01T24:00:00.000Z', '2026-12-01T23:60:00.000Z', '2026-12-01T23:59:60.000Z', '2026-00-10T00:00:00.000Z',
    '2026-12-00T00:00:00.000Z', '2026-12-01T10:00:00.000z', '2026-12-01 10:00:00.000Z', '2026-12-01T1a:00:00.000Z', '+2026-12-01T10:00:00.00Z',
    '２026-12-01T10:00:00.000Z', '2026-12-01T10:00:00.0000Z',
  ],
  node: ['', s(200), s(201), 5, null],
  requestId: [undefined, null, s(200), s(201), 3],
  traceId: [undefined, null, '0AF7651916CD43DD8448EB211C80319C', 'abc', s(32), 1],
  route: [undefined, null, s(201), {}],
  keyId: [undefined, null, s(200), s(201), []],
  keyHashPrefix: [undefined, null, s(16), s(17)],
  userId: [undefined, null, s(201), true],
  method: [undefined, '', s(200), s(201), null],
  server: [undefined, null, s(201), 1],
  tool: [undefined, null, '🚀'.repeat(100), '🚀'.repeat(101)],
  arguments: [undefined, null, 'text', 5, [1, 2], { a: { b: { c: 1 } } }],
  result: [undefined, null, { content: [] }, ['x']],
  outcome: [undefined, '', s(64), s(65), 3],
  denyReason: [undefined, null, s(500), s(501), 1],
  upstreamStatus: [undefined, null, 200, 200.5, -1, 2 ** 60, '200'],
  latencyMs: [undefined, 0, -0.001, 1e9, '1', null],
  resultBytes: [undefined, null, 0, -1, 1.5, 2 ** 60],
  tokens: [undefined, null, { input: 1, output: 2 }, { input: 1, output: 2, cacheRead: 3, cacheWrite: 4 }, { input: -1, output: 0 }, { input: 1 }, 'x'],
  costUsd: [undefined, null, 0, 0.0001, -1, '1'],
  guardrail: [undefined, null, [], [{ kind: 'github-pat', where: 'arguments.token' }], [{ kind: 'x' }], Array.from({ length: 101 }, () => ({ kind: 'k', where: 'w' })), 'x'],
};

function candidates(): unknown[] {
  const out: unknown[] = [base, null, 'event', [base], {}];
  for (const [field, values] of Object.entries(VALUES)) {
    for (const value of values) {
      const event: Record<string, unknown> = { ...base };
      if (value === undefined) delete event[field];
      else event[field] = value;
      out.push(event);
    }
  }
  // Members the schema does not know, including names that exist on Object.prototype (as JSON.parse makes them).
  for (const extra of ['{"extra":1}', '{"__proto__":{"polluted":true}}', '{"constructor":"x"}', '{"toString":1}', '{"hasOwnProperty":null}']) {
    out.push(Object.assign(JSON.parse(JSON.stringify(base)) as object, JSON.parse(extra) as object));
  }
  return out;
}

describe('parseAuditEvent', () => {
  it('accepts exactly what the schema accepts, with the same content', () => {
    let quick = 0;
    for (const candidate of candidates()) {
      const fast = parseAuditEvent(candidate);
      const schema = AuditEventSchema.safeParse(candidate);
      expect({ candidate, ok: fast.ok }).toEqual({ candidate, ok: schema.success });
      if (fast.ok && schema.success) {
        expect(fast.event).toEqual(schema.data);
        if (fast.exact) quick += 1;
      }
    }
    // The common event takes the quick path (the point of it), and so do most valid variations.
    expect(parseAuditEvent(JSON.parse(JSON.stringify(base)))).toMatchObject({ ok: true, exact: true });
    expect(quick).toBeGreaterThan(40);
  });

  it('checks by hand only members the schema has', () => {
    for (const member of PLAIN_EVENT_MEMBERS) expect(Object.keys(AuditEventSchema.shape)).toContain(member);
  });

  it('never passes an unknown member through, nor lets one reach the prototype', () => {
    const hostile = JSON.parse(`{"__proto__":{"polluted":true},"extra":1,${JSON.stringify(base).slice(1)}`) as unknown;
    const parsed = parseAuditEvent(hostile);
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    expect(parsed.exact).toBe(false);
    expect(Object.keys(parsed.event)).not.toContain('extra');
    expect(Object.hasOwn(parsed.event, '__proto__')).toBe(false);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('audit batch layout', () => {
  const lines = [JSON.stringify(base), JSON.stringify({ ...base, id: 'second-event-id', arguments: { text: 'a,\\n],"x":[' } }), JSON.stringify({ ...base, id: 'third-event-id' })];
  const encode = (ls: string[]) => encodeAuditBatch(Buffer.from(ls.map((l) => `${l}\n`).join(''))).toString();

  it('encodes no lines as an empty batch (which the schema refuses)', () => {
    const body = encodeAuditBatch(Buffer.alloc(0)).toString();
    expect(JSON.parse(body)).toEqual({ events: [] });
    expect(AuditBatchSchema.safeParse(decodeAuditBatch(body)!.body).success).toBe(false);
  });

  it('round-trips events with their texts, for one event or many', () => {
    for (const ls of [lines, lines.slice(0, 1)]) {
      const decoded = decodeAuditBatch(encode(ls))!;
      expect(decoded.texts).toEqual(ls);
      expect(decoded.body).toEqual({ events: ls.map((l) => JSON.parse(l) as unknown) });
      expect(JSON.parse(encode(ls))).toEqual(decoded.body);
    }
  });

  it('reads any other spelling as the JSON it is, without texts, and refuses what is not JSON', () => {
    for (const text of [JSON.stringify({ events: lines.map((l) => JSON.parse(l) as unknown) }), JSON.stringify({ events: [] }, null, 1), '{"events":[\n]}']) {
      const decoded = decodeAuditBatch(text)!;
      expect(decoded.texts).toEqual([]);
      expect(decoded.body).toEqual(JSON.parse(text));
    }
    expect(decodeAuditBatch(`{"events":[\n${lines[0]}\n${lines[1]}\n]}`)).toBeNull();
    expect(decodeAuditBatch(`{"events":[\n${lines[0]},\n,\n]}`)).toBeNull();
    expect(decodeAuditBatch('{"events":[\nnot json\n]}')).toBeNull();
  });

  it('stops reading lines one past the most a batch may hold', () => {
    const many = Array.from({ length: 1500 }, () => lines[0]!);
    const decoded = decodeAuditBatch(encode(many))!;
    expect((decoded.body as { events: unknown[] }).events).toHaveLength(1001);
    expect(AuditBatchSchema.safeParse(decoded.body).success).toBe(false);
  });
});
