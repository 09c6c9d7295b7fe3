import { defineConfig } from 'vitest/config';

// Tests run in forked processes so that native modules (better-sqlite3) and spawned
// child processes (nodes, stdio upstreams, Claude Code) stay isolated per file.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    pool: 'forks',
    // No maxWorkers, so vitest's default (CPUs - 1): one file at a time on a 2-core box. Four forks took a
    // full run there from 787 s to 310-360 s, but then files migrate PostgreSQL schemas while others drop
    // theirs, and Kysely's migrator, which introspects every schema's tables, failed 2 runs of 7 (42P01
    // "relation gh_….mcp_servers does not exist", 42703 "column target of relation audit_settings does not
    // exist"; migrateToLatest retries only 3F000). That race remains wherever files run in parallel (3+ CPUs);
    // set maxWorkers: 4 again once the retry covers it.
    // Each fork imports the test file's modules with Node's own loader and tsx (a devDependency, as in
    // `npm start`) instead of Vite's module runner, which serves and evaluates them one RPC at a time: every
    // file loads most of the planes' ~200 modules again, and a full run spent 531 s importing (summed over the
    // forks) against 418 s this way. tsx, not Node's type stripping: the sources use parameter properties and
    // `.js` specifiers for `.ts` files. No test uses vi.mock, which this mode supports only in part.
    execArgv: ['--import', 'tsx'],
    experimental: { viteModuleRunner: false },
    testTimeout: 30_000,
    hookTimeout: 60_000,
    reporters: ['default'],
  },
});
