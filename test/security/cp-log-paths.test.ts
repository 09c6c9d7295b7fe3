/**
 * The control plane's "request failed" log line names the path, and the one-time link routes carry a
 * usable token in theirs: a failure before the link is spent must not put the token in a log.
 */
import { describe, expect, it } from 'vitest';
import { loggablePath } from '../../control-plane/app.js';

describe('paths in control-plane logs', () => {
  it.each([
    ['/connect/ghc_' + 'a'.repeat(43), '/connect/…'],
    ['/connect/ghc_abc/extra\nline', '/connect/…'],
    ['/oauth/start/gho_' + 'b'.repeat(43), '/oauth/start/…'],
  ])('%s is logged without its token', (path, logged) => {
    expect(loggablePath(path)).toBe(logged);
    expect(loggablePath(path)).not.toMatch(/gh[co]_/);
  });

  it.each(['/graphql', '/nodes/audit', '/connect', '/oauth/callback', '/metrics'])('%s is logged as it is', (path) => {
    expect(loggablePath(path)).toBe(path);
  });
});
