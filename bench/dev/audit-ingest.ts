/**
 * Developer tool (not part of `npm run bench`): control-plane CPU per audit event ingested, on SQLite in a
 * temp dir, in batches of the size a node ships at load, split into the steps `AuditStore.ingest` takes.
 *
 * Usage: node --import tsx bench/dev/audit-ingest.ts [events=20000] [batch=1000] [--postgres URL] [--cpu-prof FILE] [--callgrind]
 * (with --postgres: in a fresh schema of that database, dropped at the end; the database server's own
 * CPU is not counted, only this process's. With --cpu-prof: a V8 CPU profile of the measured ingest loop
 * only, not of the start-up and the batches' preparation that `node --cpu-prof` would mostly show.)
 *
 * CPU time on a shared box moves by ±30% between identical runs; instructions do not. For an A/B, run it as
 * `valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=/dev/null node --single-threaded
 * --import tsx bench/dev/audit-ingest.ts 15000 750 --callgrind`: it turns instrumentation on around the
 * measured ingest loop only, and valgrind's closing "Collected" line ÷ events is instructions per event
 * (user space only: the kernel's writes and fsyncs are not in it).
 *
 * Event ids are made as nodes make them (data-plane/audit/recorder.ts: time-ordered, UUID version 7
 * layout), not random: the id index takes them near its end, as it does in production; random ids cost
 * the unique index a descent to a random leaf per row and read higher than what a control plane pays.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Session } from 'node:inspector/promises';
import { sql } from 'kysely';
import { AuditStore } from '../../control-plane/audit/store.js';
import { rowHash } from '../../control-plane/audit/chain.js';
import { migrateToLatest, openDatabase } from '../../control-plane/db/database.js';
import { createLogger } from '../../control-plane/log.js';
import { timeOrderedId } from '../../data-plane/audit/recorder.js';
import { AuditEventSchema, decodeAuditBatch, encodeAuditBatch, parseAuditEvent } from '../../data-plane/snapshot/audit-protocol.js';
import { generateSigningKey, importSigningKey } from '../../data-plane/snapshot/sign.js';

const total = Number(process.argv[2] ?? 20_000);
const batchSize = Number(process.argv[3] ?? 1000);

function event(i: number): Record<string, unknown> {
  return {
    id: timeOrderedId(Date.now()),
    time: new Date(Date.now() + i).toISOString(),
    node: 'bench-node',
    requestId: String(i),
    traceId: randomUUID().replace(/-/g, ''),
    route: 'mcp',
    keyId: 'key_0123456789abcdef',
    userId: 'user_0123456789',
    method: 'tools/call',
    server: 'bench',
    tool: 'echo',
    arguments: { text: 'hello' },
    result: { content: [{ type: 'text', text: 'ok' }] },
    outcome: 'ok',
    upstreamStatus: 200,
    latencyMs: 1.234,
    resultBytes: 42,
  };
}

const option = (name: string): string | undefined => {
  const at = process.argv.indexOf(name);
  return at >= 0 ? process.argv[at + 1] : undefined;
};
const pgUrl = option('--postgres');
const profileFile = option('--cpu-prof');
const schema = `gh_bench_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
const dir = mkdtempSync(join(tmpdir(), 'gh-audit-ingest-'));
if (pgUrl) {
  const admin = openDatabase(pgUrl).db;
  await sql.raw(`create schema ${schema}`).execute(admin);
  await admin.destroy();
}
const { db } = pgUrl ? openDatabase(pgUrl, { searchPath: schema }) : openDatabase(join(dir, 'cp.db'));
await migrateToLatest(db, pgUrl ? schema : undefined);
const store = new AuditStore({ db, signingKey: await importSigningKey(await generateSigningKey()), logger: createLogger('bench', { level: 'warn' }) });
// Laid out as a node sends them (one event per line) and read as the route reads them.
const encode = (events: Record<string, unknown>[]): string => encodeAuditBatch(Buffer.from(events.map((e) => `${JSON.stringify(e)}\n`).join(''))).toString();
const batches = Array.from({ length: Math.ceil(total / batchSize) }, (_, b) => encode(Array.from({ length: batchSize }, (_, i) => event(b * batchSize + i))));
const ingest = (text: string) => {
  const decoded = decodeAuditBatch(text)!;
  return store.ingest('bench-node', (decoded.body as { events: unknown[] }).events, decoded.texts);
};

const cpu = (): number => {
  const u = process.cpuUsage();
  return u.user + u.system;
};
// Warm-up batch, then the measured ones.
await ingest(encode(Array.from({ length: batchSize }, (_, i) => event(i))));
const profiler = profileFile ? new Session() : null;
if (profiler) {
  profiler.connect();
  await profiler.post('Profiler.enable');
  await profiler.post('Profiler.start');
}
// Asynchronously: valgrind takes the command while this process waits in the event loop.
const callgrind = (on: boolean) => (process.argv.includes('--callgrind') ? promisify(execFile)('callgrind_control', ['-i', on ? 'on' : 'off', String(process.pid)]) : null);
await callgrind(true);
const u0 = process.cpuUsage();
let c0 = cpu();
for (const text of batches) await ingest(text);
const ingestUs = (cpu() - c0) / total;
// The kernel's share (system time: writes, fsync, and on PostgreSQL the socket) apart from this process's own work.
const systemUs = process.cpuUsage(u0).system / total;
await callgrind(false);
if (profiler && profileFile) {
  const { profile } = await profiler.post('Profiler.stop');
  writeFileSync(profileFile, JSON.stringify(profile));
  profiler.disconnect();
}

const sample = (JSON.parse(batches[0]!) as { events: Record<string, unknown>[] }).events;
c0 = cpu();
for (let r = 0; r < 5; r++) for (const e of sample) AuditEventSchema.safeParse(e);
const zodUs = (cpu() - c0) / (5 * sample.length);
c0 = cpu();
for (let r = 0; r < 5; r++) for (const e of sample) parseAuditEvent(e);
const checkUs = (cpu() - c0) / (5 * sample.length);
c0 = cpu();
for (let r = 0; r < 5; r++) for (const e of sample) JSON.stringify(e);
const stringifyUs = (cpu() - c0) / (5 * sample.length);
c0 = cpu();
for (let r = 0; r < 5; r++) for (const e of sample) rowHash({ partition: 'p', seq: 1, receivedAt: 'x', prevHash: 'y', event: JSON.stringify(e) });
const hashUs = (cpu() - c0) / (5 * sample.length) - stringifyUs;
c0 = cpu();
for (const text of batches.slice(0, 5)) decodeAuditBatch(text);
const parseUs = (cpu() - c0) / (5 * batchSize);

console.log(`ingest ${ingestUs.toFixed(1)} µs/event (batch ${batchSize}); of it: system ${systemUs.toFixed(1)}, batch decode ${parseUs.toFixed(1)}, event check ${checkUs.toFixed(1)} (the schema alone: ${zodUs.toFixed(1)}), stringify (only for events not stored as sent) ${stringifyUs.toFixed(1)}, chain hash ${hashUs.toFixed(1)}; the rest is the row insert`);
if (pgUrl) await sql.raw(`drop schema ${schema} cascade`).execute(db);
await db.destroy();
rmSync(dir, { recursive: true, force: true });
