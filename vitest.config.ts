import { defineConfig } from 'vitest/config';

// Tests run in forked processes so that native modules (better-sqlite3) and spawned
// child processes (nodes, stdio upstreams, Claude Code) stay isolated per file.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
    reporters: ['default'],
  },
});
