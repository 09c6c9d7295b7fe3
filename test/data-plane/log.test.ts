/** Logging and error texts never carry secrets: pino redaction paths and the upstream error scrubber. */
import { describe, expect, it } from 'vitest';
import { StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { buildRuntime } from '../../data-plane/config/runtime.js';
import { GATEWAY_ERRORS, httpError, rpcGatewayError } from '../../data-plane/errors.js';
import { createLogger } from '../../data-plane/log.js';
import { describeError, scrub } from '../../data-plane/upstream/failures.js';
import { buildSnapshot, LogCapture } from './helpers.js';

describe('createLogger', () => {
  it('redacts header values, authorization, x-api-key, cookies and env wherever they are logged', () => {
    const capture = new LogCapture();
    const logger = createLogger('t', { destination: capture.stream });
    logger.info({ headers: { authorization: 'Bearer gk_1', 'x-custom': 'v1' } }, 'top');
    logger.info({ req: { headers: { authorization: 'Bearer gk_2', cookie: 'c=2', 'x-api-key': 'k2' } } }, 'nested');
    logger.info({ upstream: { request: { headers: { 'x-secret': 'v3' } } } }, 'deep');
    logger.info({ authorization: 'Bearer gk_4', 'x-api-key': 'k4', cookie: 'c4', env: { TOKEN: 'e4' } }, 'flat');
    const text = capture.text();
    for (const secret of ['gk_1', 'v1', 'gk_2', 'c=2', 'k2', 'v3', 'gk_4', 'k4', 'c4', 'e4']) expect(text).not.toContain(secret);
    expect(text).toContain('[redacted]');
  });
});

describe('describeError', () => {
  it('gives fixed, secret-free reasons for network and HTTP failures', async () => {
    const snap = await buildSnapshot({
      servers: [{ name: 'crm', url: { secret: 'http://user:pw@crm.internal:9000/mcp?token=abcd1234' }, headers: { authorization: { secret: 'Bearer sekrit-value' } } }],
      keys: [],
    });
    const server = buildRuntime(snap.payload, snap.dataKey, {}).runtime.servers.get('crm');
    if (!server) throw new Error('no server');
    const refused = new TypeError('fetch failed', { cause: Object.assign(new Error('connect ECONNREFUSED 10.0.0.1:9000'), { code: 'ECONNREFUSED' }) });
    expect(describeError(refused, server)).toBe('connection refused');
    expect(describeError(new StreamableHTTPError(502, 'Error POSTing to endpoint: Bearer sekrit-value'), server)).toBe('HTTP 502');
    expect(describeError(new Error('Error POSTing to endpoint (HTTP 401): bad token'), server)).toBe('HTTP 401');
    const odd = describeError(new Error('failed talking to http://user:pw@crm.internal:9000/mcp?token=abcd1234 with Bearer sekrit-value'), server);
    expect(odd).not.toContain('sekrit');
    expect(odd).not.toContain('abcd1234');
    expect(odd).not.toContain('pw@');
    expect(scrub('value Bearer sekrit-value here', server)).toBe('value [redacted] here');
  });
});

describe('error table', () => {
  it('maps every code to a status, a {type, message} body and a JSON-RPC code', () => {
    expect(httpError('virtual_key_required')).toMatchObject({ status: 401, body: { type: 'virtual_key_required' }, headers: { 'www-authenticate': 'Bearer' } });
    expect(httpError('invalid_key').headers['www-authenticate']).toBe('Bearer error="invalid_token"');
    expect(httpError('key_revoked').status).toBe(403);
    expect(httpError('key_expired').status).toBe(403);
    expect(httpError('tool_blocked').status).toBe(403);
    expect(httpError('rate_limited').status).toBe(429);
    expect(httpError('budget_exceeded').status).toBe(402);
    expect(httpError('payload_too_large').status).toBe(413);
    expect(httpError('not_ready').status).toBe(503);
    expect(rpcGatewayError(1, 'tool_blocked')).toEqual({ jsonrpc: '2.0', id: 1, error: { code: -32003, message: GATEWAY_ERRORS.tool_blocked.message, data: { type: 'tool_blocked' } } });
  });
});
