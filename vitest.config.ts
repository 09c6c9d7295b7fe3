import { defineConfig } from 'vitest/config';

// Tests run in forked processes so that native modules (better-sqlite3) and spawned
// child processes (nodes, stdio upstreams, Claude Code) stay isolated per file.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    pool: 'forks',
    // Four files at once: most files wait on the nodes, control planes and upstreams they spawn, so four
    // forks overlap those waits (a full run on the 2-core box: ~490-590 s one file at a time, the default
    // there, against ~310-360 s). Files migrate PostgreSQL schemas while others drop theirs; Kysely's
    // migrator introspects every schema meanwhile, which migrateToLatest retries (control-plane/db/database.ts;
    // test: migrate-beside-dropped-schemas).
    maxWorkers: 4,
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
