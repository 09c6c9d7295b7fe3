/**
 * Reading configuration documents (pure, no database): both spellings and both header forms give the same
 * desired state, repository field paths map back to where the value is in the document, the {stored}
 * marker, stdio env, budgets and rate limits in either shape, and typed problems at JSON paths.
 */
import { describe, expect, it } from 'vitest';
import { readConfigDocument } from '../../../control-plane/config/document.js';
import { IssueList } from '../../../control-plane/repos/errors.js';

function read(document: unknown) {
  const issues = new IssueList();
  const desired = readConfigDocument(document, issues);
  return { desired, issues: issues.all.map((i) => `${i.field ?? '(document)'} ${i.code}`) };
}

describe('readConfigDocument', () => {
  it('reads the article shape and the camelCase shape into the same server input', () => {
    const snake = read({
      mcp_servers: [
        { name: 'crm', connection_type: 'HTTP', connection_string: 'https://c.example', auth_type: 'headers', headers: { Authorization: 'env.T', 'X-Tenant-ID': { stored: 'x' } } },
      ],
    });
    const camel = read({
      mcpServers: [
        { name: 'crm', connectionType: 'http', connectionString: 'https://c.example', authType: 'HEADERS', headers: [{ name: 'Authorization', value: 'env.T' }, { name: 'X-Tenant-ID' }] },
      ],
    });
    expect(snake.issues).toEqual([]);
    expect(camel.issues).toEqual([]);
    expect(snake.desired.servers?.[0]?.input).toEqual(camel.desired.servers?.[0]?.input);
    expect(snake.desired.servers?.[0]?.input.headers).toEqual([
      { name: 'Authorization', value: 'env.T' },
      { name: 'X-Tenant-ID', value: null },
    ]);
    // Sections left out are null (not touched, not pruned); an empty list is a section with nothing in it.
    expect(snake.desired.users).toBeNull();
    expect(read({ users: [] }).desired.users).toEqual([]);
  });

  it("maps repository fields back to document paths in the document's spelling", () => {
    const { desired } = read({
      mcp_servers: [
        {
          name: 'local',
          connection_type: 'stdio',
          stdio: { command: 'node', args: ['s.js'], env: { API_KEY: 'v' } },
          tools_to_execute: ['a', 'b'],
          headers: [{ name: 'X-A', value: 'v' }],
        },
      ],
    });
    const paths = desired.servers![0]!.paths;
    expect(paths.resolve('toolsToExecute.1')).toBe('mcp_servers[0].tools_to_execute[1]');
    expect(paths.resolve('stdio.env.0.value')).toBe('mcp_servers[0].stdio.env.API_KEY');
    expect(paths.resolve('headers.0.name')).toBe('mcp_servers[0].headers[0].name');
    expect(paths.resolve('connectionString')).toBe('mcp_servers[0].connectionString');
    expect(paths.resolve(null)).toBe('mcp_servers[0]');
    expect(desired.servers![0]!.input.stdio).toEqual({ command: 'node', args: ['s.js'], env: [{ name: 'API_KEY', value: 'v' }] });
  });

  it('reads key grants, budgets and rate limits in either shape', () => {
    const { desired, issues } = read({
      virtual_keys: [
        { name: 'a', user: 'A@Example.com', mcp_servers: ['crm', { server: 'kb', tools: ['search'] }], budget: { daily_usd: 10 }, rate_limit: { rpm: 60 } },
        { name: 'b', user: 'b@example.com', servers: [], allowNoServers: true, budgets: [{ maxUsd: 5, period: 'monthly' }], rateLimit: { tokensPerMinute: 1000 } },
      ],
    });
    expect(issues).toEqual([]);
    const [a, b] = desired.keys!;
    expect(a).toMatchObject({ user: 'a@example.com', servers: [{ server: 'crm', tools: ['*'] }, { server: 'kb', tools: ['search'] }] });
    expect(a!.limits).toMatchObject({ budgets: [{ maxUsd: 10, period: 'DAILY' }], rateLimit: { requestsPerMinute: 60, tokensPerMinute: null } });
    expect(b!.limits).toMatchObject({ budgets: [{ maxUsd: 5, period: 'MONTHLY' }], rateLimit: { requestsPerMinute: null, tokensPerMinute: 1000 } });
    expect(b!.allowNoServers).toBe(true);
  });

  it('reports problems at their JSON paths', () => {
    expect(read([]).issues).toEqual(['(document) INVALID_VALUE']);
    expect(
      read({
        version: 2,
        providers: [{ name: 'anthropic' }],
        mcp_servers: [{ name: 'x', connection_type: 'http', 'tools to execute': ['*'], headers: { A: 1 } }, 'nope'],
        virtual_keys: [{ name: 'k', user: 'u@example.com', mcp_servers: [{ server: 'crm' }], budget: {}, budgets: [{ maxUsd: 0, period: 'fortnightly' }] }],
      }).issues,
    ).toEqual([
      'version NOT_SUPPORTED',
      'mcp_servers[0]["tools to execute"] UNKNOWN_FIELD',
      'mcp_servers[1] INVALID_VALUE',
      'mcp_servers[0].headers.A INVALID_VALUE',
      'virtual_keys[0].mcp_servers[0].tools REQUIRED',
      'virtual_keys[0].budgets DUPLICATE',
      'virtual_keys[0].budget REQUIRED',
      'virtual_keys[0].budgets[0].period INVALID_VALUE',
      'virtual_keys[0].budgets[0].maxUsd INVALID_VALUE',
      'providers[0].baseUrl REQUIRED',
    ]);
  });
});
