/**
 * Vitest global setup: builds the data-plane node (data-plane/node/build.mjs → dist/gatehouse-node.mjs) once
 * before any test file runs, so every node a test spawns is the file operators run, from these sources.
 */
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';

export default function setup(): void {
  execFileSync(process.execPath, [resolve(import.meta.dirname, '../../data-plane/node/build.mjs')], { stdio: 'inherit' });
}
