// Builds the `gatehouse` CLI into dist/gatehouse.mjs (one ESM file, dependencies included) so that it
// starts without compiling TypeScript: `npm run build:cli`, run by `npm ci`/`npm install` through the
// `prepare` script. Plain JavaScript, because it runs before anything else is built.
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

await build({
  absWorkingDir: root,
  entryPoints: ['sdk-client/cli.ts'],
  outfile: 'dist/gatehouse.mjs',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node22',
  minify: true,
  sourcemap: 'linked',
  legalComments: 'linked',
  logLevel: 'warning',
});
