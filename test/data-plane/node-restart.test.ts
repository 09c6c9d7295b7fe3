/**
 * A node restarted at once on its state dir, with real processes: the next process starts, and the audit
 * events the previous one recorded arrive. Before, a node whose control plane hung one request (the report
 * after an apply, which its close waited for without a deadline) never finished closing, and a node killed
 * outright left its state-dir lock to go stale in 10 s: either way the next start on that state dir gave
 * up after ~5 s with StateDirLockedError. Now the link's requests end with its stop, the lock names its
 * holder (a closing holder is waited for, a dead one's lock taken over at once), and a running node's
 * lock is still refused (node-process.test.ts).
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer, request, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestControlPlane, type TestControlPlane } from '../support/control-plane.js';
import { postMcp } from '../support/mcp-http.js';
import { spawnNode, type NodeProcess } from '../support/node-process.js';
import { processRunning, removeAtExit } from '../support/processes.js';
import { startHttpUpstream, type HttpUpstream } from '../support/upstreams.js';
import { waitFor } from '../support/wait.js';

/** The control plane behind a forwarder that can stop answering some routes (held open, never answered). */
interface HangingControlPlane {
  url: string;
  /** Requests whose path matches are held from now on; `null` answers everything again (held ones dropped). */
  hold(paths: RegExp | null): void;
  held(path: RegExp): number;
  close(): Promise<void>;
}

async function hangingProxy(target: string): Promise<HangingControlPlane> {
  let holding: RegExp | null = null;
  const held: Array<{ path: string; res: ServerResponse }> = [];
  const server: Server = createServer((req, res) => {
    const path = req.url ?? '/';
    if (holding?.test(path)) {
      held.push({ path, res });
      return;
    }
    const forwarded = request(new URL(path, target), { method: req.method, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    forwarded.on('error', () => res.destroy());
    req.pipe(forwarded);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    hold(paths) {
      holding = paths;
      if (paths === null) for (const { res } of held.splice(0)) res.destroy();
    },
    held: (path) => held.filter((h) => path.test(h.path)).length,
    async close() {
      for (const { res } of held.splice(0)) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('a node restarted at once on its state dir', () => {
  let upstream: HttpUpstream;
  let cp: TestControlPlane;
  let proxy: HangingControlPlane;
  let key: string;
  const stateDir = removeAtExit(mkdtempSync(join(tmpdir(), 'gatehouse-restart-')));
  const nodes: NodeProcess[] = [];

  const start = async (): Promise<NodeProcess> => {
    const node = await spawnNode({ controlPlaneUrl: proxy.url, nodeToken: cp.cp.nodeToken as string, nodeId: 'restarted', stateDir });
    nodes.push(node);
    return node;
  };
  const serving = (node: NodeProcess) =>
    waitFor(async () => (await postMcp(node.url, key, { id: 0, method: 'tools/list' })).status === 200, { timeoutMs: 20_000, what: 'the node serving the key' });
  const calls = async (node: NodeProcess, from: number, to: number): Promise<void> => {
    for (let i = from; i < to; i++) {
      const r = await postMcp(node.url, key, { id: i, method: 'tools/call', params: { name: 'docs-echo', arguments: { text: `call-${i}` } } });
      expect(r.status).toBe(200);
    }
  };
  /** The argument texts of every stored audit event of docs' echo tool. */
  const stored = async (): Promise<Set<string>> => {
    const texts = new Set<string>();
    let after: string | null = null;
    for (;;) {
      const page: { auditEvents: { edges: Array<{ node: { arguments: { text?: string } | null } }>; pageInfo: { hasNextPage: boolean; endCursor: string | null } } } = await cp.gql(
        'query($after: String) { auditEvents(first: 100, after: $after, filter: { server: "docs", tool: "echo" }) { edges { node { arguments } } pageInfo { hasNextPage endCursor } } }',
        { after },
      );
      for (const edge of page.auditEvents.edges) if (edge.node.arguments?.text) texts.add(edge.node.arguments.text);
      if (!page.auditEvents.pageInfo.hasNextPage) return texts;
      after = page.auditEvents.pageInfo.endCursor;
    }
  };
  const allStored = (from: number, to: number) =>
    waitFor(
      async () => {
        const texts = await stored();
        return Array.from({ length: to - from }, (_, i) => `call-${from + i}`).every((t) => texts.has(t));
      },
      { timeoutMs: 30_000, what: `audit events call-${from}..call-${to - 1} stored` },
    );

  beforeAll(async () => {
    upstream = await startHttpUpstream({ label: 'docs' });
    cp = await startTestControlPlane();
    proxy = await hangingProxy(cp.url);
    await cp.gql('mutation($u: String!) { createMcpServer(input: { name: "docs", connectionType: HTTP, connectionString: $u, toolsToExecute: ["*"] }) { errors { code } } }', { u: upstream.url });
    const user = await cp.gql<{ createUser: { user: { id: string } } }>('mutation { createUser(input: { email: "restart@example.com" }) { user { id } } }');
    const created = await cp.gql<{ createVirtualKey: { key: string } }>(
      'mutation($u: ID!) { createVirtualKey(input: { userId: $u, name: "restart", servers: [{ server: "docs", tools: ["*"] }] }) { key } }',
      { u: user.createUser.user.id },
    );
    key = created.createVirtualKey.key;
  }, 60_000);
  afterAll(async () => {
    for (const node of nodes) await node.stop();
    await proxy?.close();
    await cp?.close();
    await upstream?.close();
  });

  it('starts while the previous node closes, though its control plane hangs a report; the events recorded before arrive', async () => {
    const first = await start();
    await serving(first);
    // The control plane stops answering reports and audit batches: nothing recorded below reaches it yet.
    proxy.hold(/^\/nodes\/(report|audit)/);
    await calls(first, 0, 20);
    // A change applied: the report after the apply hangs.
    const applied = () => first.logs.filter((l) => l.includes('snapshot delta applied')).length;
    const before = applied();
    await cp.gql('mutation { createUser(input: { email: "another@example.com" }) { user { id } } }');
    await waitFor(() => applied() > before, { timeoutMs: 20_000, what: 'the change applied' });
    await waitFor(() => proxy.held(/^\/nodes\/report/) > 0, { timeoutMs: 20_000, what: 'its report held' });

    first.proc.kill('SIGTERM');
    const second = await start();
    await first.stop();
    proxy.hold(null);
    await serving(second);
    await allStored(0, 20);
  }, 120_000);

  it('starts at once after the previous node was killed outright, and ships what that one recorded', async () => {
    const first = nodes.at(-1) as NodeProcess;
    proxy.hold(/^\/nodes\/audit/);
    await calls(first, 20, 40);
    // Written to its outbox (not necessarily synced: a killed process's writes stay in the page cache).
    const outbox = join(stateDir, 'audit');
    await waitFor(() => readdirSync(outbox).some((f) => f.endsWith('.jsonl') && readFileSync(join(outbox, f), 'utf8').includes('"call-39"')), { what: 'the last event written' });

    const killedPid = (JSON.parse(first.logs.find((l) => l.includes('data-plane node listening')) ?? '{}') as { pid?: number }).pid;
    await first.kill();
    // The node itself, not only the tsx in front of it (a SIGKILL to tsx alone left its node running).
    expect(killedPid).toBeTypeOf('number');
    expect(processRunning(killedPid as number)).toBe(false);
    const second = await start();
    proxy.hold(null);
    await serving(second);
    await allStored(20, 40);
    expect(second.logs.join('\n')).toMatch(/gone without releasing it; taking its lock over/);
  }, 120_000);
});

describe('a node whose state dir is removed under it', () => {
  let cp: TestControlPlane;
  beforeAll(async () => {
    cp = await startTestControlPlane();
  });
  afterAll(async () => {
    await cp?.close();
  });

  it('exits (status 1, saying why) instead of running on, also when it was its cwd that went', async () => {
    // A relative state dir in a cwd that is then removed: recursive mkdir there loops for ever in libuv.
    const cwd = mkdtempSync(join(tmpdir(), 'gatehouse-cwd-'));
    const node = await spawnNode({ controlPlaneUrl: cp.url, nodeToken: cp.cp.nodeToken as string, nodeId: 'orphaned', cwd, stateDir: 'state' });
    try {
      await node.waitForLog(/snapshot applied/);
      // The node writes into it meanwhile (the outbox, a persisted snapshot): remove until it is gone.
      await waitFor(
        () => {
          rmSync(cwd, { recursive: true, force: true });
          return !existsSync(cwd);
        },
        { what: 'the cwd removed' },
      );
      await waitFor(() => node.proc.exitCode !== null, { timeoutMs: 20_000, what: 'the node to exit' });
      expect(node.proc.exitCode).toBe(1);
      expect(node.logs.join('\n')).toMatch(/the state dir was removed or its lock taken over: this node stops/);
    } finally {
      await node.stop();
    }
  }, 60_000);
});
