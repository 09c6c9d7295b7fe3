import { defineConfig } from 'vitest/config';

// Tests run in forked processes so that native modules (better-sqlite3) and spawned
// child processes (nodes, stdio upstreams, Claude Code) stay isolated per file.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    pool: 'forks',
    // No maxWorkers, so vitest's default (CPUs - 1): one file at a time on a 2-core box (~490 s a full run).
    // Four forks took it to 310-360 s, but failed 2 runs of 7 on a race of Kysely's migrator (it introspects
    // every schema's tables while other files drop theirs: 42P01, 42703), which migrateToLatest now asks
    // again (control-plane/db/database.ts; test: migrate-beside-dropped-schemas). Four forks on two cores
    // were not run again since: raise it where a CI run proves it.
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
