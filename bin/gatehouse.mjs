#!/usr/bin/env node
// `gatehouse` (package.json "bin"; `npx gatehouse` in this repository). Runs the CLI that `npm run
// build:cli` bundled into dist/ (npm ci and npm install build it through `prepare`), so it starts
// without compiling TypeScript. Without a build, it compiles the source with tsx, slower but the same CLI.
const built = new URL('../dist/gatehouse.mjs', import.meta.url);
try {
  await import(built.href);
} catch (error) {
  const missing = error?.code === 'ERR_MODULE_NOT_FOUND' && String(error.message).includes(built.pathname);
  if (!missing) throw error;
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL('../sdk-client/cli.ts', import.meta.url).href);
}
