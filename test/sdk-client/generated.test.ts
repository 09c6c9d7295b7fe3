/**
 * Guards the SDK against drift from the API: sdk-client/generated/graphql.ts must be exactly what GraphQL
 * Code Generator makes now from control-plane/schema.graphql and sdk-client/operations.graphql (so a schema
 * change that breaks an operation, or a forgotten `npm run codegen`, fails here), and every operation stays
 * well under the server's 2,000-token limit.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { generate } from '@graphql-codegen/cli';
import { parse } from 'graphql';
import { describe, expect, it } from 'vitest';
import config, { GENERATED_FILE } from '../../sdk-client/codegen.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

describe('sdk-client generated types and documents', () => {
  it('are what `npm run codegen` generates from schema.graphql and operations.graphql today', async () => {
    const outputs = await generate({ ...config, cwd: root, silent: true }, false);
    const fresh = (outputs as Array<{ filename: string; content: string }>).find((o) => o.filename.endsWith(GENERATED_FILE));
    expect(fresh, 'codegen produced the generated file').toBeDefined();
    const committed = readFileSync(new URL(`../../${GENERATED_FILE}`, import.meta.url), 'utf8');
    // A mismatch means: run `npm run codegen` and commit the result.
    expect(committed).toBe(fresh!.content);
  }, 60_000);

  it('keeps every operation well under the 2,000-token limit', () => {
    const text = readFileSync(new URL('../../sdk-client/operations.graphql', import.meta.url), 'utf8');
    const document = parse(text);
    const fragments = new Map(document.definitions.flatMap((d) => (d.kind === 'FragmentDefinition' ? [[d.name.value, d] as const] : [])));
    for (const op of document.definitions) {
      if (op.kind !== 'OperationDefinition') continue;
      // An operation is sent with the fragments it spreads, so count those too (roughly: each once).
      const body = text.slice(op.loc!.start, op.loc!.end);
      const used = [...body.matchAll(/\.\.\.(\w+)/g)].map((m) => fragments.get(m[1]!)!);
      let tokens = 0;
      for (const node of [op, ...used]) {
        for (let t = node.loc!.startToken; t !== node.loc!.endToken; t = t.next!) tokens++;
      }
      expect(tokens, op.name?.value).toBeLessThan(1000);
    }
  });
});
