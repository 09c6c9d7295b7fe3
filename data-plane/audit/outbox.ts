/**
 * The node's audit outbox: events recorded on the request path are buffered in memory for at most
 * `flushIntervalMs` (or `flushEvents` events), then appended as JSON lines to the current segment file in
 * `<stateDir>/audit/`, and the file is fsynced at most `syncIntervalMs` later (one fsync for many writes:
 * each cost ~150 µs of CPU here, ~1% of a core at one per 20 ms flush). A cursor file says how far
 * the shipper got; segments it has passed are deleted. So a node that restarts (or whose control plane is
 * away for hours) resends exactly what was not acknowledged, and the control plane stores each event id once.
 *
 * `record` never blocks and never throws: it is the record stage's sink. When the undelivered backlog
 * exceeds `maxBytes`, new events are dropped and counted (`dropped`), never the ones already stored.
 * A process crash (not a clean stop) loses at most the events of the last flush interval (what was written
 * is in the OS's hands); a crash of the machine, at most those of the last sync interval as well. The
 * shipper may send events written and not yet synced: whatever of them a machine crash takes from the
 * file is then already stored (the control plane has them) or lost as just said. The cursor file may lag
 * the acknowledgements by up to `cursorIntervalMs` (it is written before a delivered segment is deleted,
 * at most that often otherwise, and on close): a crash then resends what it lagged by, which the control
 * plane counts as duplicates, so delivery stays at least once and the store exactly once. Without a state dir the
 * outbox keeps its backlog in memory only. It does not send anything (shipper.ts does).
 */
import { closeSync, fstatSync, ftruncateSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, unlinkSync, writeFileSync } from 'node:fs';
import { open, readFile, rename, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { AuditEvent } from '../snapshot/audit-protocol.js';
import type { Logger } from '../log.js';

export interface OutboxOptions {
  /** `<stateDir>/audit`; null keeps the backlog in memory only. */
  dir: string | null;
  logger: Logger;
  flushIntervalMs?: number;
  /** Written events are fsynced at most this long after their write (default 100 ms); `flush()` syncs at once. */
  syncIntervalMs?: number;
  flushEvents?: number;
  /** A segment is closed and a new one started past this size. */
  segmentBytes?: number;
  /** Undelivered bytes beyond which new events are dropped (and counted). */
  maxBytes?: number;
  /** Events larger than this (as JSON) lose their arguments/result, keeping the rest. */
  maxEventBytes?: number;
  /** The cursor file is rewritten at most this often while batches are acknowledged (default 1000 ms). */
  cursorIntervalMs?: number;
}

export interface OutboxStats {
  /** Events recorded and not yet acknowledged by the control plane. */
  depth: number;
  /** Undelivered bytes (on disk or pending). */
  bytes: number;
  dropped: number;
  shipped: number;
}

/**
 * A run of events the shipper may send, as the bytes on disk (so sending them needs no decoding, splitting
 * or re-encoding), and where it ends (to acknowledge).
 */
export interface OutboxBatch {
  /** How many events. */
  count: number;
  /** The events as JSON lines, each ending in a newline (UTF-8). JSON text never holds a raw newline. */
  data: Buffer;
  bytes: number;
  end: Position;
}

const EMPTY = Buffer.alloc(0);

/** Events are encoded into chunks of this size (larger for a larger event). */
const CHUNK_BYTES = 256 * 1024;

/** Writes every byte of `parts` at the end of the file (`writev` may write less than asked). */
async function writeAll(handle: FileHandle, parts: Buffer[], bytes: number): Promise<void> {
  let { bytesWritten } = await handle.writev(parts);
  while (bytesWritten < bytes) {
    const rest = Buffer.concat(parts).subarray(bytesWritten);
    bytesWritten += (await handle.write(rest)).bytesWritten;
  }
}

/** A batch's events, one JSON text each. */
export function batchLines(batch: OutboxBatch): string[] {
  const lines: string[] = [];
  for (let start = 0, nl = batch.data.indexOf(0x0a); nl !== -1; start = nl + 1, nl = batch.data.indexOf(0x0a, start)) lines.push(batch.data.toString('utf8', start, nl));
  return lines;
}

interface Position {
  segment: number;
  offset: number;
}

const CURSOR_FILE = 'cursor.json';
const SEGMENT = /^seg-(\d{12})\.jsonl$/;
const segmentName = (n: number): string => `seg-${String(n).padStart(12, '0')}.jsonl`;

export class AuditOutbox {
  /**
   * Events not yet written: each is encoded into `chunk` as it is recorded (its JSON string is garbage at
   * once, instead of living until the flush and being promoted to the old generation, then joined and
   * encoded again), so a flush hands the file whole buffers. `chunk[chunkStart, chunkUsed)` is the current
   * chunk's unwritten part, `queued` the unwritten parts of earlier chunks (and of a failed write). Bytes
   * before `chunkStart` may still be in a write in flight, so a chunk is only ever appended to.
   */
  private chunk: Buffer = Buffer.allocUnsafe(0);
  private chunkStart = 0;
  private chunkUsed = 0;
  private queued: Buffer[] = [];
  private pendingEvents = 0;
  private pendingBytes = 0;
  private flushTimer: NodeJS.Timeout | null = null;
  /** Whether `flushTimer` is the immediate one (`flushEvents` reached), so later events need not re-arm it. */
  private flushTimerImmediate = false;
  private flushing: Promise<void> = Promise.resolve();
  private closed = false;
  /** Segment being written, its handle and its written size (what the shipper may read; fsynced within `syncIntervalMs`). */
  private writeSegment = 1;
  private handle: FileHandle | null = null;
  /** The segment the shipper reads, kept open between batches (it is read batch after batch). */
  private reader: { segment: number; handle: FileHandle } | null = null;
  private written = new Map<number, number>();
  /** Written and not yet fsynced; when the last fsync was (performance.now()); the timer of the next one. */
  private unsynced = false;
  /** A write failed: the segment may hold part of it past its written size. */
  private tornTail = false;
  private syncedAt = Number.NEGATIVE_INFINITY;
  private syncTimer: NodeJS.Timeout | null = null;
  private cursor: Position = { segment: 1, offset: 0 };
  /** Whether `cursor` is ahead of the cursor file, and when that file was last written (performance.now()). */
  private cursorDirty = false;
  private cursorWrittenAt = Number.NEGATIVE_INFINITY;
  /** Bytes per line of the last batch read (a first guess until then), to size the next read. */
  private lineBytes = 1024;
  /** In-memory mode: the backlog itself. */
  private memory: string[] = [];
  private readonly stats: OutboxStats = { depth: 0, bytes: 0, dropped: 0, shipped: 0 };
  /** Who waits for written events, and how large the backlog must be to wake them. */
  private readonly waiters = new Map<() => void, number>();
  private readonly flushIntervalMs: number;
  private readonly syncIntervalMs: number;
  private readonly flushEvents: number;
  private readonly segmentBytes: number;
  private readonly maxBytes: number;
  private readonly maxEventBytes: number;
  private readonly cursorIntervalMs: number;

  constructor(private readonly options: OutboxOptions) {
    this.flushIntervalMs = options.flushIntervalMs ?? 20;
    this.syncIntervalMs = options.syncIntervalMs ?? 100;
    this.flushEvents = options.flushEvents ?? 512;
    this.segmentBytes = options.segmentBytes ?? 8 * 1024 * 1024;
    this.maxBytes = options.maxBytes ?? 1024 * 1024 * 1024;
    this.maxEventBytes = options.maxEventBytes ?? 256 * 1024;
    this.cursorIntervalMs = options.cursorIntervalMs ?? 1000;
    if (options.dir) this.recover(options.dir);
  }

  /** Reads the segments and cursor left by a previous run: trims a torn last line, counts the backlog. */
  private recover(dir: string): void {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const segments = readdirSync(dir)
      .map((f) => SEGMENT.exec(f))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .sort((a, b) => a - b);
    try {
      const saved = JSON.parse(readFileSync(join(dir, CURSOR_FILE), 'utf8')) as Position;
      if (Number.isSafeInteger(saved.segment) && Number.isSafeInteger(saved.offset)) this.cursor = saved;
    } catch {
      // No cursor yet: ship from the first segment there is.
      this.cursor = { segment: segments[0] ?? 1, offset: 0 };
    }
    // Segments before the cursor were delivered (a crash between ack and delete left them).
    for (const n of segments.filter((s) => s < this.cursor.segment)) unlinkSync(join(dir, segmentName(n)));
    const live = segments.filter((s) => s >= this.cursor.segment);
    if (live.length > 0 && live[0]! > this.cursor.segment) this.cursor = { segment: live[0]!, offset: 0 };
    for (const n of live) {
      const path = join(dir, segmentName(n));
      const fd = openSync(path, 'r+');
      try {
        const size = fstatSync(fd).size;
        const content = Buffer.alloc(size);
        readSync(fd, content, 0, size, 0);
        // A crash mid-append leaves a line without its newline: it was never acknowledged to anyone, drop it.
        const end = content.lastIndexOf(0x0a) + 1;
        if (end !== size) ftruncateSync(fd, end);
        this.written.set(n, end);
        // A machine crash can take the unsynced tail of a segment whose events were already shipped and
        // acknowledged (the cursor file survived): the cursor then points past the end, and new events
        // appended from there must not be skipped.
        if (n === this.cursor.segment && this.cursor.offset > end) this.cursor = { segment: n, offset: end };
        const from = n === this.cursor.segment ? this.cursor.offset : 0;
        let count = 0;
        for (let i = from; i < end; i++) if (content[i] === 0x0a) count++;
        this.stats.depth += count;
        this.stats.bytes += end - from;
      } finally {
        closeSync(fd);
      }
    }
    // Keep appending to the last segment, or start the first.
    this.writeSegment = live.length > 0 ? live[live.length - 1]! : this.cursor.segment;
    if (!this.written.has(this.writeSegment)) {
      writeFileSync(join(dir, segmentName(this.writeSegment)), '', { mode: 0o600 });
      this.written.set(this.writeSegment, 0);
    }
    if (this.stats.depth > 0) this.options.logger.info({ events: this.stats.depth }, 'audit events from before the restart are waiting to be shipped');
  }

  /**
   * The record stage's sink: never blocks, never throws. `resultJson`: the event's result already as JSON
   * (the sink had to serialise it to measure it), spliced in rather than serialised again; the event's own
   * `result` is then left undefined.
   */
  record(event: AuditEvent, resultJson?: string): void {
    if (this.closed) {
      this.stats.dropped += 1;
      return;
    }
    let line: string;
    try {
      line = JSON.stringify(event);
      // An event always has members (id, method, outcome, …), so the result goes before its closing brace.
      if (resultJson !== undefined) line = `${line.slice(0, -1)},"result":${resultJson}}`;
      if (line.length > this.maxEventBytes) {
        const { arguments: _a, result: _r, ...rest } = event;
        line = JSON.stringify({ ...rest, denyReason: rest.denyReason ?? null, result: { truncated: true, bytes: line.length } });
      }
    } catch {
      this.stats.dropped += 1;
      return;
    }
    // A UTF-8 byte is at least one UTF-16 unit: a line this long cannot fit whatever it encodes to.
    if (this.stats.bytes + line.length + 1 > this.maxBytes) {
      this.stats.dropped += 1;
      return;
    }
    // At most 3 bytes per UTF-16 unit, plus the newline: room for the worst case, so nothing is cut off.
    if (this.chunk.length - this.chunkUsed < line.length * 3 + 1) this.nextChunk(line.length * 3 + 1);
    const bytes = this.chunk.write(line, this.chunkUsed) + 1;
    if (this.stats.bytes + bytes > this.maxBytes) {
      // Not kept: the bytes just written past `chunkUsed` are overwritten by the next event.
      this.stats.dropped += 1;
      return;
    }
    this.chunk[this.chunkUsed + bytes - 1] = 0x0a;
    this.chunkUsed += bytes;
    this.pendingEvents += 1;
    this.pendingBytes += bytes;
    this.stats.depth += 1;
    this.stats.bytes += bytes;
    if (this.pendingEvents >= this.flushEvents) this.scheduleFlush(0);
    else this.scheduleFlush(this.flushIntervalMs);
  }

  /** Queues the current chunk's unwritten part and starts a new chunk with room for at least `min` bytes. */
  private nextChunk(min: number): void {
    if (this.chunkUsed > this.chunkStart) this.queued.push(this.chunk.subarray(this.chunkStart, this.chunkUsed));
    this.chunk = Buffer.allocUnsafe(Math.max(CHUNK_BYTES, min));
    this.chunkStart = 0;
    this.chunkUsed = 0;
  }

  /** Everything recorded and not yet written, as buffers in order; the pending counts start again at zero. */
  private takePending(): Buffer[] {
    const parts = this.queued;
    if (this.chunkUsed > this.chunkStart) parts.push(this.chunk.subarray(this.chunkStart, this.chunkUsed));
    this.queued = [];
    this.chunkStart = this.chunkUsed;
    this.pendingEvents = 0;
    this.pendingBytes = 0;
    return parts;
  }

  private scheduleFlush(delay: number): void {
    // Armed already, as soon or sooner: every event past `flushEvents` would otherwise clear and set a timer.
    if (this.flushTimer && (delay > 0 || this.flushTimerImmediate)) return;
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimerImmediate = delay === 0;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = null;
      void this.serially(() => this.flushNow(false));
    }, delay);
  }

  /** Appends and fsyncs everything pending; resolves once it is durable. */
  flush(): Promise<void> {
    return this.serially(() => this.flushNow(true));
  }

  /** Writes and syncs run one after another, in the order asked for. */
  private serially(step: () => Promise<void>): Promise<void> {
    const run = this.flushing.then(step);
    this.flushing = run.catch((error: unknown) => {
      this.options.logger.error({ err: error instanceof Error ? error.message : String(error) }, 'audit outbox write failed');
    });
    return this.flushing;
  }

  /** Fsyncs what was written, if anything was. */
  private async sync(): Promise<void> {
    if (this.syncTimer) clearTimeout(this.syncTimer);
    this.syncTimer = null;
    if (!this.unsynced || !this.handle) return;
    this.unsynced = false;
    try {
      await this.handle.datasync();
    } catch (error) {
      this.unsynced = true;
      throw error;
    }
    this.syncedAt = performance.now();
  }

  /** Syncs now if the last sync is `syncIntervalMs` old, else makes sure one comes by then. */
  private async syncSoon(): Promise<void> {
    const wait = this.syncedAt + this.syncIntervalMs - performance.now();
    if (wait <= 0) return this.sync();
    this.syncTimer ??= setTimeout(() => {
      this.syncTimer = null;
      void this.serially(() => this.sync());
    }, wait);
  }

  private async flushNow(syncNow: boolean): Promise<void> {
    if (this.pendingEvents === 0) return syncNow ? this.sync() : undefined;
    const events = this.pendingEvents;
    const bytes = this.pendingBytes;
    const parts = this.takePending();
    const dir = this.options.dir;
    if (!dir) {
      for (const part of parts) {
        for (let start = 0, nl = part.indexOf(0x0a); nl !== -1; start = nl + 1, nl = part.indexOf(0x0a, start)) this.memory.push(part.toString('utf8', start, nl));
      }
      this.wake();
      return;
    }
    try {
      if ((this.written.get(this.writeSegment) ?? 0) >= this.segmentBytes) await this.rotate(dir);
      this.handle ??= await open(join(dir, segmentName(this.writeSegment)), 'a', 0o600);
      // A write that failed half-way may have left a torn tail: the segment must end where its written
      // events do, since the shipper reads it by offset.
      if (this.tornTail) await this.handle.truncate(this.written.get(this.writeSegment) ?? 0);
      this.tornTail = false;
      await writeAll(this.handle, parts, bytes);
    } catch (error) {
      this.tornTail = true;
      // Put them back: the next flush tries again (a full disk may clear up).
      this.queued = [...parts, ...this.queued];
      this.pendingEvents += events;
      this.pendingBytes += bytes;
      if (!this.closed) this.scheduleFlush(1000);
      throw error;
    }
    this.written.set(this.writeSegment, (this.written.get(this.writeSegment) ?? 0) + bytes);
    this.unsynced = true;
    this.wake();
    // Written is kept, whatever the sync does: a failed sync is tried again at the next one.
    await (syncNow ? this.sync() : this.syncSoon());
  }

  private async rotate(dir: string): Promise<void> {
    // A segment is synced before it is left: only the one being written can hold unsynced events.
    await this.sync();
    await this.handle?.close();
    this.handle = null;
    this.writeSegment += 1;
    await writeFile(join(dir, segmentName(this.writeSegment)), '', { mode: 0o600 });
    this.written.set(this.writeSegment, 0);
  }

  /** Wakes the waiters whose backlog is reached (all of them on close). */
  private wake(all = false): void {
    for (const [w, minBacklog] of this.waiters) if (all || this.stats.depth >= minBacklog) w();
  }

  /**
   * Resolves when newly written events may be available and the backlog is at least `minBacklog` events
   * (a shipper waiting for a full batch is not woken by every flush), or after `timeoutMs`.
   */
  waitForEvents(timeoutMs: number, signal?: AbortSignal, minBacklog = 0): Promise<void> {
    // An aborted signal fires no more 'abort' events: without this, a stop landing while the shipper read
    // a batch left it waiting out the whole timeout (a node's close took a second longer).
    if (signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.waiters.set(done, minBacklog);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  /** The next written, unacknowledged events (at most `maxEvents` / `maxBytes`), or null when there are none. */
  async nextBatch(maxEvents: number, maxBytes: number): Promise<OutboxBatch | null> {
    const dir = this.options.dir;
    if (!dir) {
      if (this.memory.length === 0) return null;
      const lines: string[] = [];
      let bytes = 0;
      for (const line of this.memory) {
        const size = Buffer.byteLength(line) + 1;
        if (lines.length >= maxEvents || (lines.length > 0 && bytes + size > maxBytes)) break;
        lines.push(line);
        bytes += size;
      }
      return { count: lines.length, data: Buffer.from(lines.join('\n') + '\n'), bytes, end: { segment: 0, offset: lines.length } };
    }
    let { segment, offset } = this.cursor;
    for (;;) {
      const written = this.written.get(segment);
      if (written === undefined) return null;
      if (offset < written) break;
      // This segment is done; move on if a later one exists.
      if (segment >= this.writeSegment) return null;
      await this.acknowledge({ count: 0, data: EMPTY, bytes: 0, end: { segment: segment + 1, offset: 0 } });
      ({ segment, offset } = this.cursor);
    }
    const available = Math.min(this.written.get(segment)! - offset, maxBytes);
    if (this.reader?.segment !== segment) {
      await this.closeReader();
      this.reader = { segment, handle: await open(join(dir, segmentName(segment)), 'r') };
    }
    // Read about what `maxEvents` lines take (from the sizes seen so far), not all that is there: while a
    // backlog drains after an outage, reading `maxBytes` for every batch read ~6x what was sent.
    const expected = Math.ceil(this.lineBytes * maxEvents * 1.25) + 64 * 1024;
    let { chunk, count, start } = await this.readLines(offset, Math.min(available, expected), maxEvents);
    // Not one whole line in that much (a long event): read all the batch may hold before deciding.
    if (count === 0 && available > chunk.length) ({ chunk, count, start } = await this.readLines(offset, available, maxEvents));
    if (count === 0) {
      // One line longer than a whole batch: it can never be sent, so it is dropped (and counted).
      const nl = (await readFile(join(dir, segmentName(segment)))).indexOf(0x0a, offset);
      this.options.logger.error({ segment, offset }, 'an audit event is larger than a batch may be; dropping it');
      await this.acknowledge({ count: 1, data: EMPTY, bytes: nl + 1 - offset, end: { segment, offset: nl + 1 } }, false);
      return this.nextBatch(maxEvents, maxBytes);
    }
    this.lineBytes = start / count;
    return { count, data: chunk.subarray(0, start), bytes: start, end: { segment, offset: offset + start } };
  }

  /** Reads `length` bytes of the shipper's segment at `offset`; how many whole lines (at most `maxLines`) they hold, and where those end. */
  private async readLines(offset: number, length: number, maxLines: number): Promise<{ chunk: Buffer; count: number; start: number }> {
    const reader = this.reader!;
    let chunk = Buffer.allocUnsafe(length);
    try {
      const { bytesRead } = await reader.handle.read(chunk, 0, length, offset);
      chunk = chunk.subarray(0, bytesRead);
    } catch (error) {
      await this.closeReader();
      throw error;
    }
    let count = 0;
    let start = 0;
    while (count < maxLines) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl === -1) break;
      count += 1;
      start = nl + 1;
    }
    return { chunk, count, start };
  }

  /**
   * The control plane stored (or already had) these events, or (`delivered` false) they can never be
   * delivered and are dropped: either way the cursor moves past them for good.
   */
  async acknowledge(batch: OutboxBatch, delivered = true): Promise<void> {
    this.stats.depth = Math.max(0, this.stats.depth - batch.count);
    this.stats.bytes = Math.max(0, this.stats.bytes - batch.bytes);
    if (delivered) this.stats.shipped += batch.count;
    else this.stats.dropped += batch.count;
    const dir = this.options.dir;
    if (!dir) {
      this.memory.splice(0, batch.end.offset);
      return;
    }
    const previous = this.cursor.segment;
    this.cursor = batch.end;
    this.cursorDirty = true;
    // Before a delivered segment goes, the file must point past it; otherwise a lagging cursor only means
    // a few duplicates after a crash.
    if (this.cursor.segment !== previous || performance.now() - this.cursorWrittenAt >= this.cursorIntervalMs) await this.writeCursor(dir);
    if (this.reader && this.reader.segment < this.cursor.segment) await this.closeReader();
    for (let n = previous; n < this.cursor.segment; n++) {
      this.written.delete(n);
      await unlink(join(dir, segmentName(n))).catch(() => undefined);
    }
  }

  private async closeReader(): Promise<void> {
    const reader = this.reader;
    this.reader = null;
    await reader?.handle.close().catch(() => undefined);
  }

  private async writeCursor(dir: string): Promise<void> {
    const cursor = this.cursor;
    await writeFile(join(dir, `${CURSOR_FILE}.tmp`), JSON.stringify(cursor), { mode: 0o600 });
    await rename(join(dir, `${CURSOR_FILE}.tmp`), join(dir, CURSOR_FILE));
    this.cursorWrittenAt = performance.now();
    if (this.cursor === cursor) this.cursorDirty = false;
  }

  /** Counts events that will never be delivered (the control plane refused them as malformed). */
  countDropped(n: number): void {
    this.stats.dropped += n;
  }

  snapshot(): OutboxStats {
    return { ...this.stats };
  }

  /** Events recorded and not yet acknowledged (what `snapshot().depth` says, without a copy). */
  get backlog(): number {
    return this.stats.depth;
  }

  /** Flushes what is pending and closes the segment: a clean stop loses nothing. */
  async close(): Promise<void> {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    await this.flush();
    if (this.syncTimer) clearTimeout(this.syncTimer);
    this.syncTimer = null;
    this.closed = true;
    if (this.cursorDirty && this.options.dir) {
      await this.writeCursor(this.options.dir).catch((error: unknown) => {
        this.options.logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'could not save the audit outbox cursor; delivered events may be sent again');
      });
    }
    await this.handle?.close().catch(() => undefined);
    this.handle = null;
    await this.closeReader();
    this.wake(true);
  }
}
