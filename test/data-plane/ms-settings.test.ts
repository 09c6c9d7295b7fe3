/**
 * The node's millisecond settings (node/ms-settings.ts): one rule for GATEHOUSE_DRAIN_MS,
 * GATEHOUSE_UPSTREAM_PROBE_MS and GATEHOUSE_AUDIT_LINGER_MS (and main.ts's GATEHOUSE_REPORT_INTERVAL_MS, 1 or
 * more). Unset or blank is the default, a number of 0 or more is used, anything else refuses the start
 * naming the variable. Before, each was read its own way: GATEHOUSE_DRAIN_MS=abc silently became the 10 s
 * default, and GATEHOUSE_REPORT_INTERVAL_MS=0 (or abc) made the link report every millisecond.
 */
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InvalidSettingError, msFromEnv, nodeMsSettings } from '../../data-plane/node/ms-settings.js';
import { startNode } from '../../data-plane/node/node.js';
import { removeAtExit, spawnOwned } from '../support/processes.js';
import { NODE_BUNDLE } from '../support/node-process.js';

describe('msFromEnv', () => {
  it('is the default when the variable is unset or blank', () => {
    expect(msFromEnv({}, 'X_MS', 250)).toBe(250);
    expect(msFromEnv({ X_MS: '' }, 'X_MS', 250)).toBe(250);
    expect(msFromEnv({ X_MS: '  \t' }, 'X_MS', 250)).toBe(250);
    expect(msFromEnv({ X_MS: ' ' }, 'X_MS')).toBeUndefined();
  });

  it('is the number given, 0 or more, whitespace around it ignored', () => {
    expect(msFromEnv({ X_MS: '0' }, 'X_MS', 250)).toBe(0);
    expect(msFromEnv({ X_MS: ' 1500 ' }, 'X_MS', 250)).toBe(1500);
    expect(msFromEnv({ X_MS: '2.5' }, 'X_MS')).toBe(2.5);
  });

  it.each(['abc', '-1', '10ms', 'Infinity', 'NaN', '1 000'])('refuses %j, naming the variable', (value) => {
    let thrown: unknown;
    try {
      msFromEnv({ X_MS: value }, 'X_MS', 250);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(InvalidSettingError);
    expect((thrown as InvalidSettingError).variable).toBe('X_MS');
    expect((thrown as InvalidSettingError).message).toMatch(/^X_MS must be a number of milliseconds/);
  });

  it('takes a higher minimum for a setting 0 would break', () => {
    expect(msFromEnv({ X_MS: '1' }, 'X_MS', undefined, 1)).toBe(1);
    expect(msFromEnv({}, 'X_MS', undefined, 1)).toBeUndefined();
    expect(() => msFromEnv({ X_MS: '0' }, 'X_MS', undefined, 1)).toThrow('X_MS must be a number of milliseconds, 1 or more (got "0")');
  });

  it('reads the three node settings, each by that rule', () => {
    expect(nodeMsSettings({})).toEqual({ drainMs: 10_000, upstreamProbeMs: undefined, auditLingerMs: undefined });
    expect(nodeMsSettings({ GATEHOUSE_DRAIN_MS: ' 0', GATEHOUSE_UPSTREAM_PROBE_MS: '0', GATEHOUSE_AUDIT_LINGER_MS: '60000 ' })).toEqual({ drainMs: 0, upstreamProbeMs: 0, auditLingerMs: 60_000 });
    expect(() => nodeMsSettings({ GATEHOUSE_UPSTREAM_PROBE_MS: '-5' })).toThrow(/GATEHOUSE_UPSTREAM_PROBE_MS/);
    expect(() => nodeMsSettings({ GATEHOUSE_AUDIT_LINGER_MS: 'soon' })).toThrow(/GATEHOUSE_AUDIT_LINGER_MS/);
  });
});

describe('a node given a millisecond setting it cannot use', () => {
  it('startNode refuses before it makes or locks its state dir', async () => {
    const stateDir = join(removeAtExit(mkdtempSync(join(tmpdir(), 'gatehouse-ms-'))), 'state');
    await expect(
      startNode({ controlPlaneUrl: 'http://127.0.0.1:1', port: 0, stateDir, env: { GATEHOUSE_AUDIT_LINGER_MS: '-1' } }),
    ).rejects.toBeInstanceOf(InvalidSettingError);
    expect(existsSync(stateDir)).toBe(false);
  });

  it.each([
    ['GATEHOUSE_DRAIN_MS', 'abc', 0],
    // The snapshot link's report interval, read by main.ts: 0 would report every millisecond.
    ['GATEHOUSE_REPORT_INTERVAL_MS', '0', 1],
  ])('the node process given %s=%j exits non-zero with the variable named on stderr, no stack trace', async (variable, value, min) => {
    const stateDir = removeAtExit(mkdtempSync(join(tmpdir(), 'gatehouse-ms-')));
    const owned = spawnOwned(process.execPath, [NODE_BUNDLE, '--control-plane', 'http://127.0.0.1:1', '--port', '0', '--host', '127.0.0.1', '--state-dir', stateDir], {
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', GATEHOUSE_NODE_TOKEN: 'unused', [variable]: value },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    let stdout = '';
    owned.proc.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    owned.proc.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    const code = await owned.exited;
    await owned.stop();
    expect(code).toBe(2);
    expect(stderr.startsWith(`gatehouse node: ${variable} must be a number of milliseconds, ${min} or more (got "${value}")\n`), stderr).toBe(true);
    expect(stderr).not.toMatch(/\n\s+at /);
    expect(stdout).not.toMatch(/listening/);
  }, 30_000);
});
