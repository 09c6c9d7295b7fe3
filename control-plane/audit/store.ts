/**
 * The tamper-evident audit store: appends the events nodes ship (idempotent on event id), chaining each
 * row to the previous one of this process's partition (chain.ts), and signs a checkpoint of the chain head
 * every `checkpointEvery` events or `checkpointIntervalMs`.
 *
 * How the partition chains join: every control-plane process writes its own partition (a fresh id per
 * start unless GATEHOUSE_AUDIT_PARTITION names one), so replicas never contend for a chain head and each
 * partition is one unbroken chain from its genesis hash. A checkpoint signs this partition's head *and* the
 * latest checkpointed head of every other partition it can see, and links to this partition's previous
 * checkpoint: the checkpoints form one signed record of all chains at points in time, so dropping a whole
 * partition, or rows before a checkpointed head, fails verification too.
 *
 * Appends are serialised in-process (one chain head per partition); the `id` unique index makes a batch
 * that raced another replica with the same events fail and be resent by the node, never stored twice.
 * It does not authenticate nodes (the route does) or decide what nodes record.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Statement } from 'better-sqlite3';
import { CompiledQuery, type Kysely } from 'kysely';
import { parseAuditEvent, type AuditEvent, type AuditIngestResult } from '../../data-plane/snapshot/audit-protocol.js';
import { ed25519PublicKey, signFlattened, verifyFlattened } from '../../data-plane/snapshot/jws.js';
import type { PublicJwk, SignedSnapshot } from '../../data-plane/snapshot/schema.js';
import type { SigningKey } from '../../data-plane/snapshot/sign.js';
import { escapedUnshowable, hasUnshowable } from '../../data-plane/snapshot/tool-names.js';
import { sqliteHandle } from '../db/database.js';
import type { AuditEventsTable, Database } from '../db/schema.js';
import type { Logger } from '../log.js';
import { applyKeysetPage, encodeCursor, type PageRequest } from '../repos/pagination.js';
import { isUniqueViolation } from '../repos/errors.js';
import { inTransaction, type Db } from '../repos/transaction.js';
import { checkRow, genesisHash, indexedColumns, rowHash, type BrokenReason, type StoredAuditRow } from './chain.js';

export const CHECKPOINT_TYPE = 'gatehouse-audit-checkpoint+jws';

export interface CheckpointPayload {
  partition: string;
  seq: number;
  hash: string;
  createdAt: string;
  /** This partition's previous checkpoint, or null for its first. */
  previous: { seq: number; hash: string } | null;
  /** The latest checkpointed head of every other partition, as this process saw them. */
  others: { partition: string; seq: number; hash: string }[];
}

export interface AuditStoreOptions {
  db: Kysely<Database>;
  signingKey: SigningKey;
  logger: Logger;
  partition?: string;
  checkpointEvery?: number;
  checkpointIntervalMs?: number;
  now?: () => Date;
}

/** A default partition id: this host plus random bits, new per process start. */
export function newPartitionId(): string {
  return `${hostname().replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 40)}-${randomBytes(6).toString('hex')}`;
}

/** PostgreSQL: rows per multi-row insert. */
const INSERT_CHUNK = 200;
/**
 * SQLite: rows per optimistic multi-row insert (see `append`). One statement per 50 rows instead of per
 * row saves the per-statement work (a JS-to-native call, VDBE setup and reset): 141k -> 116k instructions
 * per event stored (bench/dev/audit-ingest.ts --callgrind). Not tuned further; a chunk holding a stored
 * id is redone row by row, so a larger one costs more on a resent batch.
 */
const SQLITE_CHUNK = 50;

/** The columns every stored row fills, in the order the inserts list them (checked against the table's type). */
const INSERT_COLUMNS = ['id', 'partition', 'seq', 'time', 'received_at', 'node', 'key_id', 'user_id', 'server', 'tool', 'outcome', 'event', 'prev_hash', 'hash'] as const satisfies readonly (keyof AuditEventsTable)[];
const insertPrefix = `insert into audit_events (${INSERT_COLUMNS.join(', ')}) values`;
let fullChunkStatement: string | null = null;

/** Appends one row's values to `params` in `INSERT_COLUMNS` order, for either dialect's insert. */
function pushRowValues(params: (string | number | null)[], event: AuditEvent, json: string, partition: string, seq: number, receivedAt: string, prevHash: string, hash: string): void {
  const c = indexedColumns(event);
  params.push(c.id, partition, seq, c.time, receivedAt, c.node, c.key_id, c.user_id, c.server, c.tool, c.outcome, json, prevHash, hash);
}


/**
 * SQLite's multi-row insert for `rows` chained rows: what they share is given once, by name (@partition,
 * @receivedAt, and @seq, the first row's: row k's is @seq + k), then eleven values a row in order (see
 * `append`). Binding a value (a UTF-8 copy of the string, then SQLite's own copy) costs about as much per
 * row as SQLite's insert of it: 11 a row instead of 14.
 */
function chunkStatement(rows: number): string {
  const tuples: string[] = [];
  for (let k = 0; k < rows; k++) {
    const shared: Partial<Record<(typeof INSERT_COLUMNS)[number], string>> = { partition: '@partition', seq: `@seq + ${k}`, received_at: '@receivedAt' };
    tuples.push(`(${INSERT_COLUMNS.map((column) => shared[column] ?? '?').join(', ')})`);
  }
  return `${insertPrefix} ${tuples.join(', ')}`;
}

/** `insert into audit_events (…) values ($1, …), (…)` for `rows` rows (PostgreSQL placeholders); a full chunk's is made once. */
function insertStatement(rows: number): string {
  if (rows === INSERT_CHUNK && fullChunkStatement !== null) return fullChunkStatement;
  const tuples: string[] = [];
  for (let r = 0; r < rows; r++) tuples.push(`(${INSERT_COLUMNS.map((_, c) => `$${r * INSERT_COLUMNS.length + c + 1}`).join(', ')})`);
  const text = `${insertPrefix} ${tuples.join(', ')}`;
  if (rows === INSERT_CHUNK) fullChunkStatement = text;
  return text;
}

/**
 * The event's caller-chosen names (its `tool`, its `method`) with each control or format character as a
 * `\u{…}` escape (snapshot/tool-names.ts, the rule of every tool name both planes keep), in place; whether
 * any changed. Two regex tests per event when none has such a character.
 */
function escapeNames(event: AuditEvent): boolean {
  let changed = false;
  if (typeof event.tool === 'string' && hasUnshowable(event.tool)) {
    event.tool = escapedUnshowable(event.tool);
    changed = true;
  }
  if (hasUnshowable(event.method)) {
    event.method = escapedUnshowable(event.method);
    changed = true;
  }
  return changed;
}

/** An event to store and the JSON text it is stored (and chained) as. */
interface StoredEvent {
  event: AuditEvent;
  json: string;
}

export class AuditStore {
  readonly partition: string;
  private head: { seq: number; hash: string; receivedAt: string } | null = null;
  private lastCheckpoint: { seq: number; hash: string } | null | undefined = undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private timer: NodeJS.Timeout | null = null;
  /** SQLite: the row insert and the chunk insert, prepared once (see `append`). */
  private insertRow: Statement<unknown[]> | null = null;
  private insertChunk: Statement<unknown[]> | null = null;
  private readonly checkpointEvery: number;
  private readonly now: () => Date;

  constructor(private readonly options: AuditStoreOptions) {
    this.partition = options.partition ?? newPartitionId();
    this.checkpointEvery = options.checkpointEvery ?? 1000;
    this.now = options.now ?? (() => new Date());
  }

  start(): void {
    this.timer = setInterval(() => {
      void this.serial(() => this.checkpointIfBehind()).catch((error: unknown) =>
        this.options.logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'audit checkpoint failed'),
      );
    }, this.options.checkpointIntervalMs ?? 30_000);
    this.timer.unref();
  }

  /** Stops the timer and writes a last checkpoint, so a clean shutdown leaves its whole chain signed. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.serial(() => this.checkpointIfBehind()).catch(() => undefined);
  }

  /**
   * Validates and stores a node's batch; events already stored (by id) are counted, not stored again.
   * `texts[i]`, when given, is `raw[i]`'s JSON text as the node sent it: an event accepted exactly as sent
   * (nothing stripped, the node's own id) is stored as that text instead of being serialised again.
   */
  async ingest(nodeId: string, raw: readonly unknown[], texts: readonly string[] = []): Promise<AuditIngestResult> {
    const rejected: AuditIngestResult['rejected'] = [];
    const byId = new Map<string, StoredEvent>();
    raw.forEach((candidate, index) => {
      const parsed = parseAuditEvent(candidate);
      if (!parsed.ok) {
        rejected.push({ index, reason: parsed.reason });
        return;
      }
      // A node records for itself only. The event is the batch's own object or the schema's fresh copy: stamped in place.
      const event = parsed.event;
      // A caller chose these names: ones with control or format characters are stored escaped, so an ANSI
      // escape or a bidi override never reaches GraphQL, an export or a terminal (the event's text then is
      // serialised again, so the stored JSON, its hash and its columns all hold the escaped name).
      const escaped = escapeNames(event);
      const text = !escaped && parsed.exact && event.node === nodeId ? (texts[index] ?? null) : null;
      event.node = nodeId;
      byId.set(event.id, { event, json: text ?? JSON.stringify(event) });
    });
    const events = [...byId.values()];
    const inBatchDuplicates = raw.length - rejected.length - events.length;
    if (events.length === 0) return { accepted: 0, duplicates: inBatchDuplicates, rejected };
    const stored = await this.serial(() => this.append(events));
    return { accepted: stored, duplicates: inBatchDuplicates + events.length - stored, rejected };
  }

  /** Writes a checkpoint of the current head now (tests, shutdown). */
  checkpoint(): Promise<void> {
    return this.serial(() => this.checkpointIfBehind());
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async loadHead(): Promise<{ seq: number; hash: string; receivedAt: string }> {
    if (this.head) return this.head;
    const row = await this.options.db
      .selectFrom('audit_events')
      .select(['seq', 'hash', 'received_at'])
      .where('partition', '=', this.partition)
      .orderBy('seq', 'desc')
      .limit(1)
      .executeTakeFirst();
    this.head = row ? { seq: Number(row.seq), hash: row.hash, receivedAt: row.received_at } : { seq: 0, hash: genesisHash(this.partition), receivedAt: '' };
    return this.head;
  }

  private async append(events: StoredEvent[]): Promise<number> {
    const head = await this.loadHead();
    let next = head;
    const sqlite = sqliteHandle(this.options.db);
    try {
      await inTransaction(this.options.db, async (trx) => {
        // received_at never goes backwards within a partition, even if the clock does.
        const nowIso = this.now().toISOString();
        const receivedAt = nowIso > head.receivedAt ? nowIso : head.receivedAt;
        let { seq, hash } = head;
        if (sqlite) {
          // SQLite: statements prepared once, run inside this transaction (it holds the one connection).
          // Optimistically, a full chunk of the batch is one multi-row insert of rows chained as if all
          // were new, which is what nodes send but after a lost answer. A chunk holding an id already
          // stored fails as a whole (a plain insert: SQLite undoes the failed statement only, the
          // transaction goes on) and is stored again row by row, where an id already stored changes
          // nothing (`on conflict do nothing`) and takes no place in the chain: no lookup of the batch's
          // ids first, and exactly-once storage whichever way a row went in.
          this.insertRow ??= sqlite.prepare(`${insertPrefix} (${INSERT_COLUMNS.map(() => '?').join(', ')}) on conflict (id) do nothing`);
          this.insertChunk ??= sqlite.prepare(chunkStatement(SQLITE_CHUNK));
          // Rows before this index go in one by one: a chunk there failed (so a worst-case batch costs twice, not a chunk per row).
          let rowByRowUntil = 0;
          for (let i = 0; i < events.length; ) {
            if (i >= rowByRowUntil && events.length - i >= SQLITE_CHUNK) {
              const params: (string | number | null)[] = [];
              let chunkSeq = seq;
              let chunkHash = hash;
              for (let k = i; k < i + SQLITE_CHUNK; k++) {
                const { event, json } = events[k]!;
                chunkSeq += 1;
                const prevHash = chunkHash;
                chunkHash = rowHash({ partition: this.partition, seq: chunkSeq, receivedAt, prevHash, event: json });
                const c = indexedColumns(event);
                params.push(c.id, c.time, c.node, c.key_id, c.user_id, c.server, c.tool, c.outcome, json, prevHash, chunkHash);
              }
              try {
                this.insertChunk.run(params, { partition: this.partition, receivedAt, seq: seq + 1 });
                seq = chunkSeq;
                hash = chunkHash;
                i += SQLITE_CHUNK;
                continue;
              } catch (error) {
                // Anything but a stored id (or the chain's own (partition, seq), which the row path meets again) fails the batch.
                if (!isUniqueViolation(error)) throw error;
                rowByRowUntil = i + SQLITE_CHUNK;
              }
            }
            const { event, json } = events[i]!;
            const rowSeq = seq + 1;
            const rowHashValue = rowHash({ partition: this.partition, seq: rowSeq, receivedAt, prevHash: hash, event: json });
            const values: (string | number | null)[] = [];
            pushRowValues(values, event, json, this.partition, rowSeq, receivedAt, hash, rowHashValue);
            if (this.insertRow.run(values).changes === 1) {
              seq = rowSeq;
              hash = rowHashValue;
            }
            i += 1;
          }
        } else {
          // PostgreSQL: the batch's ids already stored (one array parameter), then its new rows in multi-row
          // inserts written as SQL (a full chunk's text made once). Built through Kysely's query builder, 14
          // values a row cost ~10 µs per event to compile; the statement and its parameters are the same.
          const ids = events.map((e) => e.event.id);
          const found = await trx.executeQuery(CompiledQuery.raw('select id from audit_events where id = any($1::text[])', [ids]));
          const known = new Set((found.rows as { id: string }[]).map((r) => r.id));
          let params: (string | number | null)[] = [];
          const flush = async (): Promise<void> => {
            if (params.length === 0) return;
            await trx.executeQuery(CompiledQuery.raw(insertStatement(params.length / INSERT_COLUMNS.length), params));
            params = [];
          };
          for (const { event, json } of events) {
            if (known.has(event.id)) continue;
            seq += 1;
            const prevHash = hash;
            hash = rowHash({ partition: this.partition, seq, receivedAt, prevHash, event: json });
            pushRowValues(params, event, json, this.partition, seq, receivedAt, prevHash, hash);
            if (params.length >= INSERT_CHUNK * INSERT_COLUMNS.length) await flush();
          }
          await flush();
        }
        next = { seq, hash, receivedAt };
      });
    } catch (error) {
      // The commit may or may not have happened (a lost connection): read the head again next time.
      this.head = null;
      throw error;
    }
    const stored = next.seq - head.seq;
    this.head = next;
    if (this.lastCheckpoint === undefined) await this.loadLastCheckpoint();
    if (next.seq - (this.lastCheckpoint?.seq ?? 0) >= this.checkpointEvery) {
      await this.checkpointIfBehind().catch((error: unknown) =>
        this.options.logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'audit checkpoint failed'),
      );
    }
    return stored;
  }

  private async loadLastCheckpoint(): Promise<void> {
    const row = await this.options.db
      .selectFrom('audit_checkpoints')
      .select(['seq', 'hash'])
      .where('partition', '=', this.partition)
      .orderBy('seq', 'desc')
      .limit(1)
      .executeTakeFirst();
    this.lastCheckpoint = row ? { seq: Number(row.seq), hash: row.hash } : null;
  }

  private async checkpointIfBehind(): Promise<void> {
    const head = await this.loadHead();
    if (this.lastCheckpoint === undefined) await this.loadLastCheckpoint();
    if (head.seq === 0 || head.seq === (this.lastCheckpoint?.seq ?? 0)) return;
    const { db, signingKey } = this.options;
    const others = await db
      .selectFrom('audit_checkpoints as c')
      .select(['c.partition', 'c.seq', 'c.hash'])
      .where('c.partition', '!=', this.partition)
      .where(({ eb, selectFrom }) =>
        eb('c.seq', '=', selectFrom('audit_checkpoints as d').select(({ fn }) => fn.max('d.seq').as('m')).whereRef('d.partition', '=', 'c.partition')),
      )
      .orderBy('c.partition')
      .execute();
    const payload: CheckpointPayload = {
      partition: this.partition,
      seq: head.seq,
      hash: head.hash,
      createdAt: this.now().toISOString(),
      previous: this.lastCheckpoint ?? null,
      others: others.map((o) => ({ partition: o.partition, seq: Number(o.seq), hash: o.hash })),
    };
    const jws = signFlattened(Buffer.from(JSON.stringify(payload)), { alg: 'EdDSA', kid: signingKey.kid, typ: CHECKPOINT_TYPE }, signingKey.privateKey);
    await db
      .insertInto('audit_checkpoints')
      .values({ partition: this.partition, seq: head.seq, hash: head.hash, created_at: payload.createdAt, kid: signingKey.kid, jws: JSON.stringify(jws) })
      .execute();
    this.lastCheckpoint = { seq: head.seq, hash: head.hash };
  }
}

// ---- Reading ----

export interface AuditFilter {
  keyId?: string | null | undefined;
  userId?: string | null | undefined;
  server?: string | null | undefined;
  tool?: string | null | undefined;
  outcome?: string | null | undefined;
  /** Event time bounds (inclusive), ISO-8601. */
  from?: string | null | undefined;
  to?: string | null | undefined;
}

export interface StoredAuditEvent {
  rowId: number;
  partition: string;
  seq: number;
  receivedAt: string;
  hash: string;
  event: AuditEvent;
}

function toStored(row: StoredAuditRow): StoredAuditEvent {
  return { rowId: Number(row.row_id), partition: row.partition, seq: Number(row.seq), receivedAt: row.received_at, hash: row.hash, event: JSON.parse(row.event) as AuditEvent };
}

function filtered(db: Db, filter: AuditFilter) {
  let q = db.selectFrom('audit_events').selectAll();
  if (filter.keyId) q = q.where('key_id', '=', filter.keyId);
  if (filter.userId) q = q.where('user_id', '=', filter.userId);
  if (filter.server) q = q.where('server', '=', filter.server);
  if (filter.tool) q = q.where('tool', '=', filter.tool);
  if (filter.outcome) q = q.where('outcome', '=', filter.outcome);
  if (filter.from) q = q.where('time', '>=', filter.from);
  if (filter.to) q = q.where('time', '<=', filter.to);
  return q;
}

/** One page of events in arrival order (row id), filtered. */
export async function listAuditEvents(db: Db, filter: AuditFilter, page: PageRequest): Promise<StoredAuditEvent[]> {
  const rows = await applyKeysetPage(filtered(db, filter), ['row_id'], page, { integer: true }).execute();
  return rows.map((r) => toStored(r as StoredAuditRow));
}

export function auditEventCursor(event: StoredAuditEvent): string {
  return encodeCursor([String(event.rowId)]);
}

/** Every matching event in arrival order, a page at a time (the JSONL export streams this). */
export async function* iterateAuditEvents(db: Db, filter: AuditFilter, pageSize = 500): AsyncGenerator<StoredAuditEvent> {
  let after = 0;
  for (;;) {
    const rows = await filtered(db, filter).where('row_id', '>', after).orderBy('row_id').limit(pageSize).execute();
    for (const row of rows) yield toStored(row as StoredAuditRow);
    if (rows.length < pageSize) return;
    after = Number(rows[rows.length - 1]!.row_id);
  }
}

// ---- Verifying ----

/**
 * The lowest seq of `partition` whose row was received at or after `from` (one past the partition's last
 * seq when none was): a bisection of point reads on the (partition, seq) index, ~log2(rows) of them.
 * Seqs missing (deleted rows) are stepped over by reading the next row present.
 */
async function firstSeqReceivedFrom(db: Db, partition: string, from: string): Promise<number> {
  const last = await db.selectFrom('audit_events').select(['seq', 'received_at']).where('partition', '=', partition).orderBy('seq', 'desc').limit(1).executeTakeFirst();
  // A partition that ended before the window (an earlier process's) costs this one read.
  if (!last || last.received_at < from) return last ? Number(last.seq) + 1 : 1;
  let lo = 1;
  let hi = Number(last.seq);
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    const row = await db.selectFrom('audit_events').select(['seq', 'received_at']).where('partition', '=', partition).where('seq', '>=', mid).orderBy('seq').limit(1).executeTakeFirst();
    if (!row || row.received_at >= from) hi = mid;
    else lo = Number(row.seq) + 1;
  }
  return lo;
}

export interface BrokenLink {
  partition: string;
  seq: number;
  rowId: number | null;
  eventId: string | null;
  reason: BrokenReason;
}

export interface ChainVerification {
  ok: boolean;
  checkedEvents: number;
  checkedCheckpoints: number;
  /** Checkpoints signed by a key this control plane no longer trusts (after a rotation): not checked. */
  uncheckedCheckpoints: number;
  partitions: number;
  firstBroken: BrokenLink | null;
}

/**
 * Walks every partition's chain in seq order over rows received in [from, to] (all rows when unbounded),
 * linking the first one to the row before it, then checks every checkpoint made in that window: its
 * signature, and that its head row is still there with that hash. Reports the first broken link.
 *
 * The window is found on the chain's own (partition, seq) index, not an index of received_at (0020
 * dropped it: one index less on every row stored). `append` stamps received_at so that it never decreases
 * along a partition's seq, so the rows received in the window are one run of seqs: its start is found by
 * bisection (`firstSeqReceivedFrom`) and the walk stops at the first row received after `to`. A row whose
 * received_at was edited could mislead either; it is caught all the same, because received_at is in every
 * row's hash: the bisection ends just after the row that sent it on (checked here as the row before the
 * window), and the row the walk stops at is checked before it is believed.
 */
export async function verifyAuditChain(db: Db, trustedKeys: readonly PublicJwk[], range: { from?: string | null; to?: string | null } = {}): Promise<ChainVerification> {
  const result: ChainVerification = { ok: true, checkedEvents: 0, checkedCheckpoints: 0, uncheckedCheckpoints: 0, partitions: 0, firstBroken: null };
  const partitions = await db.selectFrom('audit_events').select('partition').distinct().orderBy('partition').execute();
  result.partitions = partitions.length;
  const broken = (link: BrokenLink): ChainVerification => ({ ...result, ok: false, firstBroken: link });
  const at = (row: StoredAuditRow, reason: BrokenReason): BrokenLink => ({ partition: row.partition, seq: Number(row.seq), rowId: Number(row.row_id), eventId: row.id, reason });

  for (const { partition } of partitions) {
    // The row `seq`, checked in itself (its own hash), for the row before the window: where the bisection
    // turned, so a received_at edited to send it on is caught there.
    const rowBefore = async (seq: number): Promise<{ row: StoredAuditRow | undefined; reason: BrokenReason | null }> => {
      const raw = seq >= 1 ? ((await db.selectFrom('audit_events').selectAll().where('partition', '=', partition).where('seq', '=', seq).executeTakeFirst()) as StoredAuditRow | undefined) : undefined;
      if (!raw) return { row: undefined, reason: null };
      const row = { ...raw, row_id: Number(raw.row_id), seq: Number(raw.seq) };
      return { row, reason: checkRow(row, { seq: row.seq - 1, hash: row.prev_hash }) };
    };
    let previous: { seq: number; hash: string } | null | undefined = undefined;
    const start = range.from ? await firstSeqReceivedFrom(db, partition, range.from) : 1;
    let afterSeq = start - 1;
    walk: for (;;) {
      const rows = (await db.selectFrom('audit_events').selectAll().where('partition', '=', partition).where('seq', '>', afterSeq).orderBy('seq').limit(1000).execute()) as StoredAuditRow[];
      for (const raw of rows) {
        const row = { ...raw, row_id: Number(raw.row_id), seq: Number(raw.seq) };
        if (previous === undefined) {
          // The first row in the window links to the one before it (outside the window), if it should have one.
          const before = await rowBefore(row.seq - 1);
          if (before.row && before.reason) return broken(at(before.row, before.reason));
          previous = before.row ? { seq: before.row.seq, hash: before.row.hash } : null;
        }
        const reason = checkRow(row, previous);
        if (reason) return broken(at(row, reason));
        // Received after the window (and its hash says so truly): so is every later row of this partition.
        if (range.to && row.received_at > range.to) break walk;
        previous = { seq: row.seq, hash: row.hash };
        result.checkedEvents += 1;
      }
      if (rows.length < 1000) break;
      afterSeq = Number(rows[rows.length - 1]!.seq);
    }
    if (previous === undefined) {
      // Nothing at or after the window's start: the row that put it there is checked all the same.
      const before = await rowBefore(start - 1);
      if (before.row && before.reason) return broken(at(before.row, before.reason));
    }
  }

  let cq = db.selectFrom('audit_checkpoints').selectAll();
  if (range.from) cq = cq.where('created_at', '>=', range.from);
  if (range.to) cq = cq.where('created_at', '<=', range.to);
  const keys = new Map(trustedKeys.map((k) => [k.kid, ed25519PublicKey(k)]));
  for (const checkpoint of await cq.orderBy('partition').orderBy('seq').execute()) {
    const seq = Number(checkpoint.seq);
    const at = { partition: checkpoint.partition, seq, rowId: null, eventId: null };
    const key = keys.get(checkpoint.kid);
    if (!key) {
      result.uncheckedCheckpoints += 1;
      continue;
    }
    let payload: CheckpointPayload | null = null;
    try {
      const bytes = verifyFlattened(JSON.parse(checkpoint.jws) as SignedSnapshot, key);
      payload = bytes ? (JSON.parse(bytes.toString('utf8')) as CheckpointPayload) : null;
    } catch {
      payload = null;
    }
    if (!payload || payload.partition !== checkpoint.partition || payload.seq !== seq || payload.hash !== checkpoint.hash) {
      return broken({ ...at, reason: 'checkpoint_signature' });
    }
    const row = await db.selectFrom('audit_events').select(['row_id', 'id', 'hash']).where('partition', '=', checkpoint.partition).where('seq', '=', seq).executeTakeFirst();
    if (!row || row.hash !== checkpoint.hash) return broken({ ...at, rowId: row ? Number(row.row_id) : null, eventId: row?.id ?? null, reason: 'checkpoint_mismatch' });
    result.checkedCheckpoints += 1;
  }
  return result;
}
