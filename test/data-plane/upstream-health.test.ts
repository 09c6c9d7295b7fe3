/**
 * Upstream health on the node (issue 5 item 4), without a network: the NodeReport contract field (old
 * reports without it still validate), the scrubbing of reasons, and the tracker's rules (transitions
 * only; a 401 to one user's own credential never marks the server refused).
 */
import { describe, expect, it } from 'vitest';
import type { ResolvedServer } from '../../data-plane/config/runtime.js';
import { SHARED_IDENTITY, userIdentity } from '../../data-plane/pipeline/credentials.js';
import { MAX_UPSTREAM_REASON, NodeReportSchema, type NodeReport } from '../../data-plane/snapshot/stream-protocol.js';
import { UpstreamFailure, scrubReason } from '../../data-plane/upstream/failures.js';
import { UpstreamHealthTracker } from '../../data-plane/upstream/health.js';

const server: ResolvedServer = {
  id: 's1',
  name: 'crm',
  connectionType: 'HTTP',
  authType: 'HEADERS',
  url: new URL('https://user:pw@crm.internal/mcp'),
  headers: { authorization: 'Bearer crm-secret-value', 'x-api-key': 'key-12345' },
  stdio: null,
  toolsToExecute: null,
  allowedExtraHeaders: [],
  toolTimeoutMs: 1_000,
  disabled: false,
  unavailable: null,
  fingerprint: 'f',
  secrets: ['Bearer crm-secret-value', 'crm-secret-value', 'key-12345', 'https://user:pw@crm.internal/mcp'],
};

const baseReport: NodeReport = {
  nodeId: 'n1',
  appliedVersion: 3,
  missingEnv: [],
  lastRejection: null,
  health: 'OK',
  startedAt: new Date().toISOString(),
};

describe('NodeReport.upstreams (the contract)', () => {
  it('is optional: a report from a node that predates it validates', () => {
    expect(NodeReportSchema.safeParse(baseReport).success).toBe(true);
  });

  it('carries a status, a reason and the observation time per server', () => {
    const upstreams = [
      { server: 'crm', status: 'credentials_refused', reason: "upstream server 'crm' refused the gateway's credentials (HTTP 401)", at: new Date().toISOString() },
      { server: 'wiki', status: 'reachable', reason: null, at: new Date().toISOString() },
    ];
    const parsed = NodeReportSchema.parse({ ...baseReport, upstreams });
    expect(parsed.upstreams).toEqual(upstreams);
  });

  it('refuses unknown statuses, over-long reasons and times that are not ISO', () => {
    const at = new Date().toISOString();
    for (const bad of [
      { server: 'crm', status: 'down', reason: null, at },
      { server: 'crm', status: 'unreachable', reason: 'x'.repeat(MAX_UPSTREAM_REASON + 1), at },
      { server: 'crm', status: 'timeout', reason: null, at: 'yesterday' },
      { server: '', status: 'timeout', reason: null, at },
    ]) {
      expect(NodeReportSchema.safeParse({ ...baseReport, upstreams: [bad] }).success, JSON.stringify(bad)).toBe(false);
    }
  });
});

describe('scrubReason', () => {
  it('removes the server secrets, URLs, credential-shaped values and control characters, and stays short', () => {
    const text =
      'failed for https://user:pw@crm.internal/mcp with crm-secret-value; upstream said: Authorization: Bearer other-token-xyz, ' +
      'api_key=sk-live-987 token abc.def\nnext line\u0007 redirected to http://other-host.internal:9/cb?sig=zz9' +
      ' padding'.repeat(60);
    const reason = scrubReason(text, server);
    for (const leak of ['crm-secret-value', 'user:pw', 'crm.internal', 'other-token-xyz', 'sk-live-987', 'abc.def', 'other-host', 'sig=zz9', '\n', '\u0007']) {
      expect(reason, leak).not.toContain(leak);
    }
    expect(reason).toContain('[url]');
    expect(reason.length).toBeLessThanOrEqual(200);
  });

  it('keeps an ordinary reason as it is', () => {
    expect(scrubReason("upstream server 'crm' is unreachable: connection refused", server)).toBe("upstream server 'crm' is unreachable: connection refused");
  });
});

describe('UpstreamHealthTracker', () => {
  const refused = () => new UpstreamFailure('credentials_refused', "upstream server 'crm' refused the gateway's credentials (HTTP 401)");

  it('records transitions (and tells its listener), and only confirms the time of a repeated status', () => {
    const tracker = new UpstreamHealthTracker();
    let transitions = 0;
    tracker.onTransition(() => transitions++);
    tracker.reachable('crm');
    tracker.reachable('crm');
    expect(transitions).toBe(1);
    tracker.failed(server, SHARED_IDENTITY, new UpstreamFailure('unreachable', "upstream server 'crm' is unreachable: connection refused"));
    tracker.failed(server, SHARED_IDENTITY, new UpstreamFailure('unreachable', "upstream server 'crm' is unreachable: connection reset"));
    expect(transitions).toBe(2);
    // The latest reason of the same status is kept (it rides the next periodic report).
    expect(tracker.report()).toEqual([{ server: 'crm', status: 'unreachable', reason: "upstream server 'crm' is unreachable: connection reset", at: expect.any(String) }]);
    tracker.failed(server, SHARED_IDENTITY, new UpstreamFailure('timeout', "upstream server 'crm' timed out after 1000 ms"));
    expect(tracker.status('crm')).toBe('timeout');
    expect(transitions).toBe(3);
  });

  it('lets only the shared credential mark a server credentials_refused; a user\'s refused credential means the upstream is up', () => {
    const tracker = new UpstreamHealthTracker();
    tracker.failed(server, userIdentity('u1'), refused());
    expect(tracker.status('crm')).toBe('reachable');
    tracker.failed(server, SHARED_IDENTITY, refused());
    expect(tracker.status('crm')).toBe('credentials_refused');
    expect(tracker.report()[0]?.reason).toMatch(/HTTP 401/);
  });

  it('ignores failures that say nothing about the upstream, and forgets servers no longer configured', () => {
    const tracker = new UpstreamHealthTracker();
    tracker.failed(server, SHARED_IDENTITY, new UpstreamFailure('cancelled', 'the caller went away'));
    tracker.failed(server, SHARED_IDENTITY, new UpstreamFailure('reconfigured', 'reconfigured'));
    expect(tracker.status('crm')).toBeNull();
    tracker.reachable('crm');
    tracker.reachable('wiki');
    tracker.retain(new Set(['wiki']));
    expect(tracker.report().map((h) => h.server)).toEqual(['wiki']);
  });
});
