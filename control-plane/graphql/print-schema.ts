/**
 * Writes the GraphQL schema's SDL to control-plane/schema.graphql (`npm run schema:print`). The file is
 * committed so every API change shows up in review; a test fails when it is stale.
 */
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { schema } from './schema.js';

// graphql 16 ships CJS (`main`) and ESM (`module`) builds; Node gives Pothos the CJS one, while vitest
// would hand a plain `import 'graphql'` here the ESM one, and printSchema refuses types from another
// realm. Requiring it loads the same instance Pothos built the schema with, under tsx and vitest alike.
const { printSchema } = createRequire(import.meta.url)('graphql') as typeof import('graphql');

export const SCHEMA_FILE = fileURLToPath(new URL('../schema.graphql', import.meta.url));

export function printedSchema(): string {
  return `${printSchema(schema)}\n`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(SCHEMA_FILE, printedSchema());
  console.log(`wrote ${SCHEMA_FILE}`);
}
