/**
 * Secret leaks through GraphQL input errors: graphql-js quotes the offending value in its messages, and
 * for a variable that value is the whole input object, write-only secrets (header values, provider API
 * keys, stdio env) included. Every such error must still say where and why, but never carry the value.
 * Real control plane (yoga, the schema, the admin token).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { messageWithoutInput } from '../../control-plane/graphql/input-echo.js';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';

const SECRET = 'SUPERSECRET-4c1f9e77a2';
const NUMERIC_SECRET = 918273645546372;

let cp: TestControlPlane;
beforeAll(async () => {
  cp = await startTestControlPlane();
});
afterAll(async () => {
  await cp?.close();
});

async function post(query: string, variables?: Record<string, unknown>): Promise<{ status: number; text: string }> {
  const res = await fetch(`${cp.url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${cp.adminToken}` },
    body: JSON.stringify({ query, variables }),
  });
  return { status: res.status, text: await res.text() };
}

const CREATE = `mutation($input: CreateMcpServerInput!) { createMcpServer(input: $input) { mcpServer { id } errors { field code message } } }`;
const PROVIDER = `mutation($input: UpsertProviderInput!) { upsertProvider(input: $input) { errors { field code message } } }`;
const server = (extra: Record<string, unknown>, header: Record<string, unknown> = { name: 'Authorization', value: `Bearer ${SECRET}` }): Record<string, unknown> => ({
  input: { name: 'leaky', connectionType: 'HTTP', connectionString: 'http://127.0.0.1:1/mcp', authType: 'HEADERS', headers: [header], ...extra },
});

describe('GraphQL input errors never quote the input', () => {
  const cases: [string, string, Record<string, unknown> | undefined, string][] = [
    ['an unknown field beside a secret header', CREATE, server({}, { name: 'Authorization', value: `Bearer ${SECRET}`, extra: 1 }), 'Field "extra" is not defined by type "SecretInput"'],
    ['an unknown top-level field of an input holding secrets', CREATE, server({ bogus: true }), 'Field "bogus" is not defined by type "CreateMcpServerInput"'],
    ['a bad enum beside secrets', CREATE, server({ connectionType: 'HTTPX' }), 'input.connectionType'],
    ['a secret given as a number', CREATE, server({}, { name: 'Authorization', value: NUMERIC_SECRET }), 'String cannot represent a non string value'],
    ['an unknown field beside a provider API key', PROVIDER, { input: { name: 'anthropic', kind: 'ANTHROPIC', apiKey: SECRET, extra: 1 } }, 'Field "extra" is not defined by type "UpsertProviderInput"'],
    ['a provider API key given as an object', PROVIDER, { input: { name: 'anthropic', kind: 'ANTHROPIC', apiKey: { value: SECRET } } }, 'input.apiKey'],
    ['a secret literal of the wrong type', `mutation { createMcpServer(input: { name: "x", connectionType: HTTP, headers: [{ name: "A", value: ${NUMERIC_SECRET} }] }) { errors { message } } }`, undefined, 'String cannot represent a non string value'],
    ['an object literal where a secret string goes', `mutation { upsertProvider(input: { name: "anthropic", kind: ANTHROPIC, apiKey: { v: "${SECRET}" } }) { errors { message } } }`, undefined, 'String cannot represent a non string value'],
  ];
  for (const [label, query, variables, says] of cases) {
    it(label, async () => {
      const answer = await post(query, variables);
      expect(answer.status).toBeLessThan(500);
      const messages = (JSON.parse(answer.text) as { errors?: { message: string }[] }).errors?.map((e) => e.message).join('\n') ?? '';
      expect(messages).toContain(says);
      expect(answer.text).not.toContain(SECRET);
      expect(answer.text).not.toContain(String(NUMERIC_SECRET));
      expect(cp.logs.text()).not.toContain(SECRET);
    });
  }

  it('messageWithoutInput keeps the path and the reason', () => {
    expect(messageWithoutInput('Variable "$input" got invalid value { a: "s" } at "input.headers[0]"; Field "x" is not defined by type "SecretInput".', 'Field "x" is not defined by type "SecretInput".')).toBe(
      'Variable "$input" got an invalid value at "input.headers[0]"; Field "x" is not defined by type "SecretInput".',
    );
    expect(messageWithoutInput('Variable "$input" got invalid value 5 at "input.apiKey"; String cannot represent a non string value: 5', 'String cannot represent a non string value: 5')).toBe(
      'Variable "$input" got an invalid value at "input.apiKey"; String cannot represent a non string value.',
    );
    expect(messageWithoutInput('Cannot query field "x" on type "Query".', undefined)).toBeNull();
  });
});
