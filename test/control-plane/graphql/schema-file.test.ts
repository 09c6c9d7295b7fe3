/**
 * The committed control-plane/schema.graphql matches the schema the code builds, so every API change
 * shows up in review. Fix a failure with `npm run schema:print`.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { printedSchema, SCHEMA_FILE } from '../../../control-plane/graphql/print-schema.js';

describe('schema.graphql', () => {
  it('is up to date (run npm run schema:print)', () => {
    expect(readFileSync(SCHEMA_FILE, 'utf8')).toBe(printedSchema());
  });

  it('keeps the public operation names automation relies on', () => {
    const sdl = printedSchema();
    for (const name of [
      'mcpServers(', 'mcpServer(', 'users(', 'virtualKeys(', 'nodes(', 'adminTokens(', 'configVersion:',
      'createMcpServer(', 'updateMcpServer(', 'deleteMcpServer(', 'createUser(', 'createVirtualKey(', 'rotateVirtualKey(',
      'revokeVirtualKey(', 'updateVirtualKey(', 'createAdminToken(', 'revokeAdminToken(',
    ]) {
      expect(sdl).toContain(`  ${name}`);
    }
  });
});
