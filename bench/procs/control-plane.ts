/**
 * The bench's control plane, in its own process so that its work (compiling, signing and pushing
 * snapshots) never runs on the bench's event loop: the revocation timings are taken by the parent from
 * the outside, and a compile on the same loop would delay the very responses being timed.
 *
 * It is the real thing (`createControlPlane`: SQLite in a temp dir, GraphQL, publisher, node stream) plus
 * one bench-only command over the IPC channel: `seed`, which bulk-inserts users, servers and keys in one
 * transaction with the repositories' own row shapes and then times a publish. Exits when the parent goes
 * away (IPC disconnect) or on SIGTERM.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createControlPlane, type ControlPlane } from '../../control-plane/app.js';
import { SecretBox } from '../../control-plane/crypto/secret-box.js';
import { hashToken, issueToken, previewToken, VIRTUAL_KEY_PREFIX } from '../../control-plane/crypto/tokens.js';
import type { NewUser, NewVirtualKey } from '../../control-plane/db/schema.js';
import { createLogger } from '../../control-plane/log.js';
import { bumpConfigVersion } from '../../control-plane/repos/config-state.js';
import { serializeGrants } from '../../control-plane/repos/key-grants.js';
import { createMcpServer } from '../../control-plane/repos/mcp-servers.js';
import { isCpRequest, type CpMessage, type SeedRequest, type SeedResult } from '../lib/ipc.js';
import { monotonicUs } from '../lib/procs.js';

/** Rows per INSERT statement: 11 columns × 1,000 stays far under SQLite's bound-parameter limit. */
const BATCH = 1_000;

function send(message: CpMessage): void {
  process.send?.(message);
}

/** Wall-clock milliseconds with sub-millisecond precision, comparable across processes on one machine. */
function epochNow(): number {
  return performance.timeOrigin + performance.now();
}

const dataDir = mkdtempSync(join(tmpdir(), 'gatehouse-bench-cp-'));
const adminToken = `gha_bench${randomBytes(16).toString('hex')}`;
const masterKey = randomBytes(32);
let cp: ControlPlane | null = null;

async function shutdown(code: number): Promise<never> {
  try {
    await cp?.close();
  } catch {
    // Exiting anyway.
  }
  rmSync(dataDir, { recursive: true, force: true });
  process.exit(code);
}

async function seed(request: SeedRequest): Promise<SeedResult> {
  if (!cp) throw new Error('control plane not started');
  const db = cp.db;
  const box = new SecretBox(new Uint8Array(masterKey));
  const started = performance.now();
  const at = new Date().toISOString();
  const revealed: SeedResult['revealed'] = [];

  await db.transaction().execute(async (trx) => {
    // One bump up front; createMcpServer bumps too, inside the same transaction, so nodes see one change.
    await bumpConfigVersion(trx);
    const serverNames: string[] = [];
    for (let i = 0; i < request.servers; i++) {
      const name = `srv_${request.label}_${i}`;
      // Through the repository, so headers are sealed under the master key exactly as GraphQL would.
      await createMcpServer(trx, box, {
        name,
        connectionType: 'HTTP',
        connectionString: request.upstreamUrl,
        authType: 'HEADERS',
        headers: [{ name: 'Authorization', value: `Bearer bench-upstream-secret-${i}` }],
        toolsToExecute: ['*'],
      });
      serverNames.push(name);
    }
    if (serverNames.length === 0) {
      const existing = await trx.selectFrom('mcp_servers').select('name').where('name', '!=', request.grantServer).limit(500).execute();
      serverNames.push(...existing.map((r) => r.name));
    }

    const userIds: string[] = [];
    for (let start = 0; start < request.users; start += BATCH) {
      const rows: NewUser[] = [];
      for (let i = start; i < Math.min(request.users, start + BATCH); i++) {
        const id = randomUUID();
        userIds.push(id);
        rows.push({ id, email: `bench-${request.label}-${i}@example.com`, name: null, created_at: at, updated_at: at });
      }
      if (rows.length > 0) await trx.insertInto('users').values(rows).execute();
    }
    if (userIds.length === 0) {
      const existing = await trx.selectFrom('users').select('id').limit(1).execute();
      if (existing[0]) userIds.push(existing[0].id);
    }
    if (userIds.length === 0) throw new Error('seed needs at least one user');

    // Revealed keys are spread over the batch, so they are not all at one end of the snapshot.
    const revealEvery = request.reveal > 0 ? Math.max(1, Math.floor(request.keys / request.reveal)) : Infinity;
    for (let start = 0; start < request.keys; start += BATCH) {
      const rows: NewVirtualKey[] = [];
      for (let i = start; i < Math.min(request.keys, start + BATCH); i++) {
        const grants = [{ server: request.grantServer, tools: ['*'] }];
        const extra = serverNames.length > 0 ? serverNames[i % serverNames.length] : undefined;
        if (extra !== undefined) grants.push({ server: extra, tools: ['echo'] });
        const id = randomUUID();
        let hash: string;
        let preview: string;
        if (i % revealEvery === 0 && revealed.length < request.reveal) {
          // A real `gk_` value, returned to the parent so it can present it.
          const token = issueToken(VIRTUAL_KEY_PREFIX);
          revealed.push({ id, key: token.value });
          hash = token.hash;
          preview = token.preview;
        } else {
          // Nobody will present these: any unique value hashes the same way, and issueToken's base62
          // encoding would spend ~2 s of the bench on 100k values nobody reads.
          const value = VIRTUAL_KEY_PREFIX + randomBytes(32).toString('base64url');
          hash = hashToken(value);
          preview = previewToken(value);
        }
        rows.push({
          id,
          name: `bench ${request.label} ${i}`,
          user_id: userIds[i % userIds.length] as string,
          key_hash: hash,
          key_preview: preview,
          servers: serializeGrants(grants),
          expires_at: null,
          revoked_at: null,
          last_used_at: null,
          created_at: at,
          updated_at: at,
        });
      }
      if (rows.length > 0) await trx.insertInto('virtual_keys').values(rows).execute();
    }
  });
  const committed = performance.now();
  const committedAtUs = monotonicUs();
  await cp.publisher.changed();
  const published = performance.now();
  const publishedAt = epochNow();
  const publishedAtUs = monotonicUs();

  const count = async (table: 'users' | 'mcp_servers' | 'virtual_keys'): Promise<number> =>
    Number((await db.selectFrom(table).select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);
  return {
    revealed,
    totals: { users: await count('users'), servers: await count('mcp_servers'), keys: await count('virtual_keys') },
    insertMs: committed - started,
    publishMs: published - committed,
    publishedAt,
    version: cp.publisher.version ?? -1,
    committedAtUs,
    publishedAtUs,
  };
}

process.on('message', (message: unknown) => {
  if (!isCpRequest(message)) return;
  if (message.type === 'stats') {
    send({ type: 'result', id: message.id, ok: true, data: cp?.publisher.lastPublish ?? null });
    return;
  }
  seed(message).then(
    (data) => send({ type: 'result', id: message.id, ok: true, data }),
    (error: unknown) => send({ type: 'result', id: message.id, ok: false, error: error instanceof Error ? (error.stack ?? error.message) : String(error) }),
  );
});
process.on('disconnect', () => void shutdown(0));
process.on('SIGTERM', () => void shutdown(0));
process.on('SIGINT', () => void shutdown(0));

try {
  cp = await createControlPlane({
    port: 0,
    host: '127.0.0.1',
    dataDir,
    env: { GATEHOUSE_ADMIN_TOKEN: adminToken, GATEHOUSE_MASTER_KEY: masterKey.toString('base64') },
    sharedNodeToken: true,
    logger: createLogger('bench-control-plane', { level: process.env.LOG_LEVEL ?? 'info' }),
  });
  send({ type: 'ready', url: cp.url, adminToken, nodeToken: cp.nodeToken });
} catch (error) {
  process.stderr.write(`bench control plane failed to start: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  await shutdown(1);
}
