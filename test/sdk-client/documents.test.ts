/**
 * Guards the SDK against drift from the API: every document in sdk-client/documents.ts validates against
 * the committed control-plane/schema.graphql, stays under the server's token limit, and the enum value
 * lists in sdk-client/types.ts equal the schema's enums.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { GraphQLEnumType, buildSchema, parse, validate } from 'graphql';
import { describe, expect, it } from 'vitest';
import { documents } from '../../sdk-client/documents.js';
import { ADMIN_ROLES, AUTH_TYPES, CONNECTION_TYPES, MCP_SERVER_STATUSES, SECRET_SOURCES } from '../../sdk-client/types.js';

// This file builds its own schema from the SDL and validates with the same `graphql` instance, so the
// ESM/CJS double-load that affects Pothos-built schemas under vitest does not arise here.
const schema = buildSchema(readFileSync(fileURLToPath(new URL('../../control-plane/schema.graphql', import.meta.url)), 'utf8'));

describe('sdk-client documents', () => {
  it.each(Object.entries(documents))('%s validates against schema.graphql', (_name, document) => {
    const errors = validate(schema, parse(document));
    expect(errors.map((e) => e.message)).toEqual([]);
  });

  it.each(Object.entries(documents))('%s stays well under the 2,000-token limit', (_name, document) => {
    // The lexer links every token of the document, from <SOF> to <EOF>.
    let tokens = 0;
    for (let t = parse(document).loc?.startToken.next; t && t.kind !== '<EOF>'; t = t.next) tokens++;
    expect(tokens).toBeLessThan(1000);
  });

  it('names every operation uniquely, so server logs tell them apart', () => {
    const names = Object.values(documents).map((d) => /^(?:query|mutation) (\w+)/.exec(d)?.[1]);
    expect(names.every((n) => n !== undefined)).toBe(true);
    expect(new Set(names).size).toBe(names.length);
  });

  it.each([
    ['AdminRole', ADMIN_ROLES],
    ['AuthType', AUTH_TYPES],
    ['ConnectionType', CONNECTION_TYPES],
    ['McpServerStatus', MCP_SERVER_STATUSES],
    ['SecretSource', SECRET_SOURCES],
  ] as const)('enum %s matches the schema', (name, values) => {
    const type = schema.getType(name);
    expect(type).toBeInstanceOf(GraphQLEnumType);
    expect((type as GraphQLEnumType).getValues().map((v) => v.name).sort()).toEqual([...values].sort());
  });
});
