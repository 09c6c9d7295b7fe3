/**
 * The node's spend reporter (data-plane/limits/spend-reporter.ts): reports that could not be sent survive a
 * node restart in the state dir and are sent by the next process (at-least-once; the control plane dedupes
 * by request id); a successful send empties the file; unsent spend counts in the window spend it answers.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { SpendEvent } from '../../../data-plane/limits/limiter.js';
import { SpendReporter } from '../../../data-plane/limits/spend-reporter.js';

const event = (requestId: string, costNanos: number): SpendEvent => ({
  requestId,
  keyId: 'k1',
  userId: 'u1',
  kind: 'llm',
  model: 'claude-x',
  inputTokens: 1,
  outputTokens: 2,
  cacheCreationTokens: 3,
  cacheReadTokens: 4,
  costNanos,
  at: new Date().toISOString(),
});

describe('SpendReporter', () => {
  it('keeps unsent reports across a restart and sends them from the next process', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'gatehouse-spend-')), 'spend-outbox.jsonl');
    // The control plane refuses reports (down for writes) but answers the window spend it has persisted.
    const down = new SpendReporter({ file, intervalMs: 60_000, fetch: async (method) => (method === 'GET' ? Response.json({ costNanos: 100 }) : new Response('no', { status: 503 })) });
    down.report(event('r1', 10));
    down.report(event('r2', 20));
    await new Promise((r) => setImmediate(r));
    await down.flush();
    // What this node has not sent yet counts in the window spend it answers.
    expect(await down.windowSpend({ keyId: 'k1' }, 0, Date.now() + 1000)).toBe(130);
    expect(readFileSync(file, 'utf8').trim().split('\n')).toHaveLength(2);
    await down.close(); // the process goes away with r1 and r2 unsent

    const sent: unknown[] = [];
    const up = new SpendReporter({
      file,
      intervalMs: 60_000,
      fetch: async (_method, _path, body) => {
        sent.push(body);
        return Response.json({ recorded: 2 });
      },
    });
    await up.flush();
    expect(sent).toContainEqual({ events: [expect.objectContaining({ requestId: 'r1', costNanos: 10 }), expect.objectContaining({ requestId: 'r2', costNanos: 20 })] });
    expect(up.queued).toBe(0);
    expect(readFileSync(file, 'utf8')).toBe('');
    await up.close();
  });
});

describe('SpendReporter and a report the control plane refuses', () => {
  it('drops only that report (logged) and delivers the rest, instead of resending one batch forever', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'gatehouse-spend-')), 'spend-outbox.jsonl');
    const stored: string[] = [];
    let posts = 0;
    const warnings: unknown[] = [];
    // A control plane (of another version, say) that refuses any batch holding `poison` with 400.
    const reporter = new SpendReporter({
      file,
      intervalMs: 60_000,
      logger: { warn: (fields: object) => warnings.push(fields) },
      fetch: async (_method, _path, body) => {
        posts++;
        const events = (body as { events: { requestId: string }[] }).events;
        if (events.some((e) => e.requestId === 'poison')) return Response.json({ type: 'invalid_request', message: 'invalid spend report' }, { status: 400 });
        stored.push(...events.map((e) => e.requestId));
        return Response.json({ recorded: events.length });
      },
    });
    for (let i = 0; i < 40; i++) reporter.report(event(i === 17 ? 'poison' : `r${i}`, 10));
    await new Promise((r) => setImmediate(r));
    await reporter.flush();
    expect(reporter.queued).toBe(0);
    expect(stored.sort()).toEqual(Array.from({ length: 40 }, (_, i) => `r${i}`).filter((id) => id !== 'r17').sort());
    expect(warnings).toContainEqual(expect.objectContaining({ requestId: 'poison', status: 400 }));
    expect(readFileSync(file, 'utf8')).toBe('');
    // Halving finds it in a handful of requests, not one per report.
    expect(posts).toBeLessThan(20);
    // A control plane that is away (503) still keeps everything for later.
    const away = new SpendReporter({ intervalMs: 60_000, fetch: async () => new Response('down', { status: 503 }) });
    away.report(event('kept', 10));
    await away.flush();
    expect(away.queued).toBe(1);
    await away.close();
    await reporter.close();
  });
});
