// Builds the data-plane node into dist/gatehouse-node.mjs: one ESM file of the node's own modules (its
// dependencies stay in node_modules and are imported from there), with the guardrail's rule files beside it
// in dist/rules/ (guardrail/rules.ts reads them relative to its own module, which is then the bundle).
//
// Why a build: operators, the tests and the bench run this file with node itself. Under tsx every start
// transformed and loaded the node's ~150 modules one by one: ~2 s more per start on the 2-core box and
// ~30 MB more resident memory for as long as the node runs (tsx keeps its transform and source-map state).
// Per request the two run the same instructions (bench/dev/instructions.ts, 2026-12-01: B/A 1.00).
//
// `npm run node` builds before it starts (~0.1 s), so it never runs stale sources; `npm ci` builds through
// `prepare`, the test suite once in its global setup. Files are written under a temporary name and renamed,
// so a node starting while another build runs never reads half a file. Plain JavaScript, because it runs
// before anything is built.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, readdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** The built node, relative to the repository. */
export const NODE_BUNDLE = 'dist/gatehouse-node.mjs';

/** Builds the node into `NODE_BUNDLE` (and its rule files), returning the bundle's absolute path. */
export async function buildNode() {
  const out = join(ROOT, NODE_BUNDLE);
  const rulesFrom = join(ROOT, 'data-plane/guardrail/rules');
  const rulesTo = join(ROOT, 'dist/rules');
  mkdirSync(rulesTo, { recursive: true });
  for (const file of readdirSync(rulesFrom)) {
    const temporary = join(rulesTo, `.${file}.${process.pid}`);
    copyFileSync(join(rulesFrom, file), temporary);
    renameSync(temporary, join(rulesTo, file));
  }
  const temporary = `${out}.${process.pid}.tmp`;
  await build({
    absWorkingDir: ROOT,
    entryPoints: ['data-plane/node/main.ts'],
    outfile: temporary,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node22',
    packages: 'external',
    logLevel: 'warning',
  });
  renameSync(temporary, out);
  return out;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await buildNode();
