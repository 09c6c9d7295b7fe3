import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

// Tests run in forked processes so that native modules (better-sqlite3) and spawned
// child processes (nodes, stdio upstreams, Claude Code) stay isolated per file.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    pool: 'forks',
    // At least four files at once: most of a file's time is spent waiting on the processes and sockets it
    // started, not on its own CPU, and vitest's default (CPUs - 1) ran one file at a time on a 2-core box.
    maxWorkers: Math.max(4, availableParallelism() - 1),
    testTimeout: 30_000,
    hookTimeout: 60_000,
    reporters: ['default'],
  },
});
