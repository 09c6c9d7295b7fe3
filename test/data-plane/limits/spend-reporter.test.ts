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
