/**
 * The owned processes of test/support/processes.ts: a stop reaches every process of the group (a child's
 * own children too), and a worker that exits without stopping them (a test or hook that timed out, an
 * uncaught error) takes them with it, and removes the directories it was asked to.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { processRunning, spawnOwned } from './processes.js';
import { waitFor } from './wait.js';

const ROOT = resolve(import.meta.dirname, '../..');
const TSX = join(ROOT, 'node_modules/.bin/tsx');

/** A shell that starts a grandchild and prints its pid: what tsx and npm do with the node they start. */
const WITH_GRANDCHILD = ['-c', 'sleep 600 & echo $!; wait'];

describe('owned test processes', () => {
  it('a stop ends the child and what it started', async () => {
    const owned = spawnOwned('sh', WITH_GRANDCHILD, { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    owned.proc.stdout?.on('data', (c: Buffer) => (out += c.toString()));
    const grandchild = Number(await waitFor(() => /^(\d+)\n/.exec(out)?.[1], { what: 'the grandchild pid' }));
    expect(processRunning(grandchild)).toBe(true);
    await owned.stop({ graceMs: 2_000 });
    expect(processRunning(grandchild)).toBe(false);
    expect(owned.alive()).toBe(false);
  });

  for (const ending of ['process.exit(0)', 'throw new Error("a test that timed out")']) {
    it(`a worker that ends with ${ending.split('(')[0]} kills what it did not stop, and removes its temp dirs`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'gatehouse-owned-'));
      const temp = mkdtempSync(join(tmpdir(), 'gatehouse-owned-temp-'));
      const script = join(dir, 'worker.ts');
      writeFileSync(
        script,
        [
          `import { removeAtExit, spawnOwned } from ${JSON.stringify(join(ROOT, 'test/support/processes.ts'))};`,
          `removeAtExit(${JSON.stringify(temp)});`,
          `const owned = spawnOwned('sh', ${JSON.stringify(WITH_GRANDCHILD)}, { stdio: ['ignore', 'inherit', 'ignore'] });`,
          `console.log('child ' + owned.proc.pid);`,
          // Once the grandchild is up (its pid printed), end as a worker would.
          `setTimeout(() => { ${ending}; }, 300);`,
        ].join('\n'),
      );
      const worker = spawn(TSX, [script], { stdio: ['ignore', 'pipe', 'ignore'] });
      let out = '';
      worker.stdout.on('data', (c: Buffer) => (out += c.toString()));
      await new Promise((r) => worker.once('exit', r));
      const child = Number(/child (\d+)/.exec(out)?.[1]);
      const grandchild = Number(/^(\d+)$/m.exec(out)?.[1]);
      expect(child).toBeGreaterThan(0);
      expect(grandchild).toBeGreaterThan(0);
      await waitFor(() => !processRunning(child) && !processRunning(grandchild), { timeoutMs: 5_000, what: 'the child and grandchild gone' });
      expect(existsSync(temp)).toBe(false);
      rmSync(dir, { recursive: true, force: true });
    }, 30_000);
  }
});
