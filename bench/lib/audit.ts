/**
 * The audit phase of `npm run bench` (issue 8), in the same run as the /mcp baselines: `/mcp` tools/call
 * through a node with the audit trail and the secrets guardrail on (every call recorded to the outbox,
 * fsynced in batches and shipped to the control plane; arguments and results scanned and redacted under a
 * `redact` policy on the server) against a node with both off (GATEHOUSE_AUDIT=off), as a ratio
 * (target ≥ 0.9). It also reports whether the "on" node dropped any event and how long its outbox took to
 * drain after the load, and the CPU each request cost (node on and off, and the control plane storing the
 * "on" node's events) during the recorded runs: on a shared 2-core box the req/s ratio moves with whatever
 * else runs, the CPU per request much less, and the control plane's share competes with the node for cores.
 */
import { request } from 'undici';
import { BENCH_METRICS_TOKEN, startGatehouseNode, type ControlPlaneProcess, type NodeProcess } from './gatehouse.js';
import { runLoad, type Generator, type LoadResult, type LoadSpec } from './load.js';
import { cpuSeconds } from './procs.js';

export interface AuditBenchOptions {
  generator: Generator;
  cp: ControlPlaneProcess;
  nodeToken: string;
  serverName: string;
  key: string;
  connections: number;
  durationS: number;
  warmupS: number;
  rounds: number;
  log(message: string): void;
}

export interface AuditResults {
  off: LoadResult | null;
  on: LoadResult | null;
  /** on ÷ off requests/s (target ≥ 0.9). */
  rpsRatio: number | null;
  p99Ratio: number | null;
  droppedEvents: number | null;
  /** Seconds from the end of the load until the node's outbox was empty. */
  drainS: number | null;
  /** CPU µs per request during the recorded runs (median over rounds); null without /proc. */
  cpuUsPerRequest: { nodeOff: number; nodeOn: number; controlPlaneOn: number } | null;
}

async function metric(nodeUrl: string, name: string): Promise<number | null> {
  const res = await request(`${nodeUrl}/metrics`, { headers: { authorization: `Bearer ${BENCH_METRICS_TOKEN}` } });
  const text = await res.body.text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : null;
}

export async function measureAudit(o: AuditBenchOptions): Promise<AuditResults> {
  const nodes: NodeProcess[] = [];
  try {
    const set = await o.cp.gql<{ setAuditSettings: { errors: unknown[] } }>(
      `mutation($t: String!) { setAuditSettings(input: { scope: SERVER, target: $t, guardrail: REDACT }) { errors { code message } } }`,
      { t: o.serverName },
    );
    if (set.setAuditSettings.errors.length) throw new Error(`setAuditSettings: ${JSON.stringify(set.setAuditSettings.errors)}`);
    const off = await startGatehouseNode({ controlPlaneUrl: o.cp.url, nodeToken: o.nodeToken, nodeId: 'bench-node-audit-off', env: { GATEHOUSE_AUDIT: 'off' } });
    nodes.push(off);
    const on = await startGatehouseNode({ controlPlaneUrl: o.cp.url, nodeToken: o.nodeToken, nodeId: 'bench-node-audit-on' });
    nodes.push(on);
    const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: `${o.serverName}-echo`, arguments: { text: 'hello' } } });
    for (const node of nodes) {
      for (let i = 0; ; i++) {
        const res = await request(`${node.url}/mcp`, { method: 'POST', headers: { authorization: `Bearer ${o.key}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body });
        await res.body.text();
        if (res.statusCode === 200) break;
        if (i > 300) throw new Error(`${node.url} did not become ready`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const spec = (node: NodeProcess): LoadSpec => ({ url: `${node.url}/mcp`, body, authorization: `Bearer ${o.key}`, connections: o.connections, durationS: o.durationS, warmupS: o.warmupS });
    const runs: { off: LoadResult[]; on: LoadResult[] } = { off: [], on: [] };
    const cpu: { off: number[]; on: number[]; cp: number[] } = { off: [], on: [], cp: [] };
    for (let round = 0; round < o.rounds; round++) {
      for (const which of round % 2 === 0 ? (['off', 'on'] as const) : (['on', 'off'] as const)) {
        o.log(`load: /mcp tools/call, audit + guardrail (redact) ${which}, ${o.warmupS} s warm-up + ${o.durationS} s`);
        const node = which === 'off' ? off : on;
        let before: [number | null, number | null] = [null, null];
        let after: [number | null, number | null] = [null, null];
        const r = await runLoad(o.generator, spec(node), {
          start: () => (before = [cpuSeconds([node.proc.pid]), cpuSeconds([o.cp.proc.pid])]),
          end: () => (after = [cpuSeconds([node.proc.pid]), cpuSeconds([o.cp.proc.pid])]),
        });
        if (before[0] !== null && after[0] !== null && before[1] !== null && after[1] !== null && r.requests > 0) {
          cpu[which].push(((after[0] - before[0]) * 1e6) / r.requests);
          if (which === 'on') cpu.cp.push(((after[1] - before[1]) * 1e6) / r.requests);
        }
        o.log(`  ${Math.round(r.rps)} req/s, p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms, ${r.errors} errors`);
        runs[which].push(r);
      }
    }
    const median = (rs: LoadResult[]): LoadResult | null => [...rs].sort((a, b) => a.rps - b.rps)[Math.floor((rs.length - 1) / 2)] ?? null;
    const mid = (xs: number[]): number | null => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)] ?? null;
    const [nodeOff, nodeOn, controlPlaneOn] = [mid(cpu.off), mid(cpu.on), mid(cpu.cp)];
    const offResult = median(runs.off);
    const onResult = median(runs.on);
    const drainStart = performance.now();
    let drainS: number | null = null;
    for (let i = 0; i < 600; i++) {
      if ((await metric(on.url, 'gatehouse_audit_buffer_events')) === 0) {
        drainS = (performance.now() - drainStart) / 1000;
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    return {
      off: offResult,
      on: onResult,
      rpsRatio: offResult && onResult ? onResult.rps / offResult.rps : null,
      p99Ratio: offResult && onResult ? onResult.p99Ms / offResult.p99Ms : null,
      droppedEvents: await metric(on.url, 'gatehouse_audit_dropped_events'),
      drainS,
      cpuUsPerRequest: nodeOff !== null && nodeOn !== null && controlPlaneOn !== null ? { nodeOff, nodeOn, controlPlaneOn } : null,
    };
  } finally {
    await o.cp.gql(`mutation($t: String!) { setAuditSettings(input: { scope: SERVER, target: $t, guardrail: OFF }) { errors { code } } }`, { t: o.serverName }).catch(() => undefined);
    for (const node of nodes) await node.close();
  }
}

export function renderAudit(r: AuditResults): string {
  const row = (label: string, x: LoadResult | null): string =>
    `  ${label.padEnd(44)} ${x ? `${Math.round(x.rps).toString().padStart(7)} req/s   p99 ${x.p99Ms.toFixed(2).padStart(7)} ms` : 'not measured'}\n`;
  const verdict = r.rpsRatio === null ? 'not judged' : r.rpsRatio >= 0.9 ? 'MET' : 'NOT MET';
  return (
    '\nAudit trail + secrets guardrail (issue 8): /mcp tools/call, same run\n' +
    row('audit + guardrail off (GATEHOUSE_AUDIT=off)', r.off) +
    row('audit on, guardrail redact', r.on) +
    `  on ÷ off: ${r.rpsRatio === null ? '-' : r.rpsRatio.toFixed(2)}× req/s (target ≥ 0.9×: ${verdict}), p99 ${r.p99Ratio === null ? '-' : r.p99Ratio.toFixed(2)}×\n` +
    `  events dropped: ${r.droppedEvents ?? '-'}; outbox drained ${r.drainS === null ? 'not within 60 s' : `${r.drainS.toFixed(1)} s`} after the load\n` +
    (r.cpuUsPerRequest
      ? `  CPU per request (median run): node ${r.cpuUsPerRequest.nodeOff.toFixed(0)} µs off, ${r.cpuUsPerRequest.nodeOn.toFixed(0)} µs on; ` +
        `control plane storing the "on" node's events ${r.cpuUsPerRequest.controlPlaneOn.toFixed(0)} µs\n`
      : '')
  );
}
