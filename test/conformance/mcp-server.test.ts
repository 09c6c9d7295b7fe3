/**
 * The official MCP conformance suite (`@modelcontextprotocol/conformance`, a devDependency), server mode,
 * against a node's `/mcp`. `harness.ts` says what stands in front of the node and why.
 *
 * The suite declares Node >= 22; it runs here on the Node that runs the tests, with `node20-compat.mjs`
 * (which says why that is enough, and why a Node 22 binary is not a devDependency) when that Node is older
 * than 22. `GATEHOUSE_CONFORMANCE_NODE=/path/to/node22` runs it on another binary instead.
 *
 * Every server scenario the installed suite knows is classified below, either run here (and every check
 * must pass) or listed with the reason it does not apply to `/mcp`, so that a newer suite with new
 * scenarios fails this test until someone looks at them.
 */
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startConformanceTarget, type ConformanceTarget } from './harness.js';

/** Scenarios that apply to a stateless, tools-only, aggregated server: run, and must pass. */
const APPLICABLE = [
  'server-initialize',
  'ping',
  'tools-list',
  'tools-call-simple-text',
  'tools-call-image',
  'tools-call-audio',
  'tools-call-embedded-resource',
  'tools-call-mixed-content',
  'tools-call-error',
  // In the suite's "pending" set, but it checks what a gateway must not do: strip JSON Schema keywords.
  'json-schema-2020-12',
] as const;

/**
 * Scenarios that do not apply, and why. SPEC §4: `/mcp` is one aggregated, tools-only server; what the
 * upstreams offer beyond tools (resources, prompts, progress, logging, sessions) is `/mcp/{server}`'s job.
 */
const NOT_APPLICABLE: Readonly<Record<string, string>> = {
  'logging-set-level': 'no logging capability on /mcp (server logging is passed through on /mcp/{server})',
  'completion-complete': 'no completions capability: completions belong to prompts and resource templates, which /mcp does not offer',
  'tools-call-with-logging': 'needs logging/setLevel and notifications/message streamed during a call: /mcp answers each POST with one application/json response',
  'tools-call-with-progress': 'needs notifications/progress streamed during a call: /mcp answers with one application/json response (progress is passed through on /mcp/{server})',
  'tools-call-sampling': 'needs a server-to-client request (sampling/createMessage) during a call: stateless /mcp has no stream to send one on',
  'tools-call-elicitation': 'needs a server-to-client request (elicitation/create) during a call: stateless /mcp has no stream to send one on',
  'elicitation-sep1034-defaults': 'elicitation: a server-to-client request, see tools-call-elicitation',
  'elicitation-sep1330-enums': 'elicitation: a server-to-client request, see tools-call-elicitation',
  'server-sse-polling': 'SSE resumability (SEP-1699) needs an Mcp-Session-Id and SSE responses; stateless /mcp answers application/json (the scenario then only reports INFO/WARNING)',
  'server-sse-multiple-streams': 'needs an Mcp-Session-Id; without one the scenario stops at a WARNING before sending anything',
  'resources-list': 'no resources capability on /mcp',
  'resources-read-text': 'no resources capability on /mcp',
  'resources-read-binary': 'no resources capability on /mcp',
  'resources-templates-read': 'no resources capability on /mcp',
  'resources-subscribe': 'no resources capability on /mcp',
  'resources-unsubscribe': 'no resources capability on /mcp',
  'prompts-list': 'no prompts capability on /mcp',
  'prompts-get-simple': 'no prompts capability on /mcp',
  'prompts-get-with-args': 'no prompts capability on /mcp',
  'prompts-get-embedded-resource': 'no prompts capability on /mcp',
  'prompts-get-with-image': 'no prompts capability on /mcp',
  'dns-rebinding-protection':
    'scoped by the suite to localhost servers without authentication; a node is a network service that refuses every request without a virtual key, which a rebinding page cannot read',
};

/** The whole suite takes a few seconds; this only bounds a hung run (below the 60 s hook timeout). */
const CLI_TIMEOUT_MS = 50_000;

interface Check {
  id: string;
  status: 'SUCCESS' | 'FAILURE' | 'WARNING' | 'INFO' | 'SKIPPED';
  errorMessage?: string;
}

/** How to start the suite's CLI (`node` + leading args), or why it cannot be run here. */
function locateSuite(): { node: string; prefix: string[] } | { missing: string } {
  const require = createRequire(import.meta.url);
  let cli: string;
  try {
    cli = join(dirname(require.resolve('@modelcontextprotocol/conformance/package.json')), 'dist', 'index.js');
  } catch {
    return { missing: 'the @modelcontextprotocol/conformance devDependency is not installed (run npm ci)' };
  }
  if (!existsSync(cli)) return { missing: `no conformance CLI at ${cli}` };
  const node = process.env.GATEHOUSE_CONFORMANCE_NODE || process.execPath;
  const probe = spawnSync(node, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  const major = /^v(\d+)\./.exec(probe.stdout ?? '')?.[1];
  if (probe.status !== 0 || major === undefined) return { missing: `${node} does not run (GATEHOUSE_CONFORMANCE_NODE?)` };
  const compat = fileURLToPath(new URL('./node20-compat.mjs', import.meta.url));
  return { node, prefix: Number(major) >= 22 ? [cli] : ['--import', pathToFileURL(compat).href, cli] };
}

function run(node: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(node, args, { timeout: CLI_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

const suite = locateSuite();

if ('missing' in suite) {
  it.skip(`MCP conformance suite not run: ${suite.missing}`, () => undefined);
} else {
  const { node, prefix } = suite;

  describe('MCP conformance suite, server mode, against /mcp', () => {
    let target: ConformanceTarget;
    let out: string;
    let output = '';
    const checksOf = new Map<string, Check[]>();

    beforeAll(async () => {
      target = await startConformanceTarget();
      out = mkdtempSync(join(tmpdir(), 'gatehouse-conformance-'));
      // One run of the whole suite (a CLI start costs more than all scenarios together); each scenario
      // leaves its checks in `<out>/server-<scenario>-<timestamp>/checks.json`. Not-applicable scenarios
      // fail there and are ignored here; the exit code is therefore not used.
      const { stdout, stderr } = await run(node, [...prefix, 'server', '--url', target.url, '--suite', 'all', '-o', out]);
      output = `${stdout}\n${stderr}`;
      for (const dir of readdirSync(out)) {
        const scenario = /^server-(.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$/.exec(dir)?.[1];
        if (scenario) checksOf.set(scenario, JSON.parse(readFileSync(join(out, dir, 'checks.json'), 'utf8')) as Check[]);
      }
    }, 60_000);

    afterAll(async () => {
      await target?.close();
      if (out) rmSync(out, { recursive: true, force: true });
    });

    it('every server scenario of the installed suite is either run here or listed as not applicable', async () => {
      const listed = await run(node, [...prefix, 'list', '--server']);
      expect(listed.code, listed.stderr).toBe(0);
      const known = [...listed.stdout.matchAll(/^\s+- (\S+)/gm)].map((m) => m[1] ?? '');
      expect(known.length).toBeGreaterThan(0);
      const classified = new Set<string>([...APPLICABLE, ...Object.keys(NOT_APPLICABLE)]);
      expect(known.filter((name) => !classified.has(name)), 'new scenarios to classify').toEqual([]);
      // And nothing classified here has disappeared from the suite unnoticed.
      expect([...classified].filter((name) => !known.includes(name)), 'scenarios no longer in the suite').toEqual([]);
    });

    for (const scenario of APPLICABLE) {
      it(`${scenario}: every check passes`, () => {
        const checks = checksOf.get(scenario) ?? [];
        expect(checks.length, `no checks recorded for ${scenario}; CLI output:\n${output}`).toBeGreaterThan(0);
        const notPassed = checks.filter((c) => c.status !== 'SUCCESS').map((c) => `${c.id}: ${c.status} ${c.errorMessage ?? ''}`);
        expect(notPassed).toEqual([]);
      });
    }
  });
}
