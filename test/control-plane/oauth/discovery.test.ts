/**
 * Spec vectors for discovery (control-plane/oauth/discovery.ts): the authorization-server metadata URLs in
 * MCP 2025-11-25 `basic/authorization` §Authorization Server Metadata Discovery order, and the Bearer
 * challenge parameters of RFC 9728 §5.1 / RFC 6750 §3.
 */
import { describe, expect, it } from 'vitest';
import { authorizationServerMetadataCandidates, parseBearerChallenge } from '../../../control-plane/oauth/discovery.js';

describe('MCP 2025-11-25 authorization server metadata discovery order', () => {
  it('issuer with a path: RFC 8414 path insertion, OIDC path insertion, OIDC path appending', () => {
    expect(authorizationServerMetadataCandidates(new URL('https://auth.example.com/tenant1')).map(String)).toEqual([
      'https://auth.example.com/.well-known/oauth-authorization-server/tenant1',
      'https://auth.example.com/.well-known/openid-configuration/tenant1',
      'https://auth.example.com/tenant1/.well-known/openid-configuration',
    ]);
  });

  it('issuer without a path: RFC 8414, then OIDC discovery', () => {
    expect(authorizationServerMetadataCandidates(new URL('https://auth.example.com')).map(String)).toEqual([
      'https://auth.example.com/.well-known/oauth-authorization-server',
      'https://auth.example.com/.well-known/openid-configuration',
    ]);
  });
});

describe('RFC 9728 §5.1 WWW-Authenticate resource_metadata', () => {
  it('reads quoted and token parameters of the Bearer challenge', () => {
    expect(
      parseBearerChallenge('Bearer error="invalid_token", error_description="Missing \\"token\\"", scope="files:read files:write", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp"'),
    ).toEqual({
      error: 'invalid_token',
      error_description: 'Missing "token"',
      scope: 'files:read files:write',
      resource_metadata: 'https://mcp.example.com/.well-known/oauth-protected-resource/mcp',
    });
  });

  it('finds the Bearer challenge among others, and nothing when there is none', () => {
    expect(parseBearerChallenge('Basic realm="x", Bearer resource_metadata=https://a.example/m')).toEqual({ resource_metadata: 'https://a.example/m' });
    expect(parseBearerChallenge('Basic realm="x"')).toEqual({});
    expect(parseBearerChallenge(null)).toEqual({});
  });
});
