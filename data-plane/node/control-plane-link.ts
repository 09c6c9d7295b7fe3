/**
 * The node's link to the control plane: opens the snapshot stream (SSE), verifies and applies each
 * snapshot, persists the last good one, and reports status. Reconnects with capped exponential backoff;
 * while the control plane is away the node keeps serving what it has (SPEC §3).
 *
 * It does not build runtimes or serve traffic: `apply` is handed in by the node.
 */
import { existsSync, readFileSync } from 'node:fs';
import { appendFile, mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createParser } from 'eventsource-parser';
import type { JWK } from 'jose';
import { SnapshotError } from '../snapshot/errors.js';
import { DeltaEnvelopeSchema, SnapshotEnvelopeSchema, type SnapshotDelta, type SnapshotPayload } from '../snapshot/schema.js';
import { unwrapDataKey } from '../snapshot/seal.js';
import { DELTA_EVENT, NODE_ID_HEADER, NODE_KEY_HEADER, NODE_REPORT_PATH, NODE_STREAM_PATH, SNAPSHOT_EVENT, type NodeReport } from '../snapshot/stream-protocol.js';
import { TrustStore, verifyDelta, verifySnapshot } from '../snapshot/verify.js';
import type { Logger } from '../log.js';

export type MissingEnv = NodeReport['missingEnv'];

export interface LinkOptions {
  controlPlaneUrl: string;
  nodeToken: string;
  nodeId: string;
  nodePublicJwk: JWK;
  nodePrivateJwk: JWK;
  /** Where the last good snapshot and the trust store are kept; null keeps nothing on disk. */
  stateDir: string | null;
  /** Signing keys configured for this node; when absent, the persisted or first-use keys are used. */
  trustedJwks: unknown[] | null;
  apply(payload: SnapshotPayload, dataKey: Uint8Array): { missingEnv: MissingEnv };
  /** Applies a verified delta on top of the runtime of `delta.baseVersion` (the one applied last). */
  applyDelta(delta: SnapshotDelta): void;
  /** Tool catalogs to include in reports (see NodeReport.catalogs). */
  catalogs?: () => NonNullable<NodeReport['catalogs']>;
  logger: Logger;
  reportIntervalMs?: number;
}

const SNAPSHOT_FILE = 'snapshot.json';
/** Deltas applied since SNAPSHOT_FILE, one signed envelope per line, replayed in order at start-up. */
const DELTAS_FILE = 'deltas.jsonl';
const TRUST_FILE = 'trust.json';

/** Write-then-rename, asynchronously: the new runtime is already serving, so disk I/O must not block requests. */
async function writeAtomic(path: string, content: string): Promise<void> {
  await writeFile(`${path}.tmp`, content, { mode: 0o600 });
  await rename(`${path}.tmp`, path);
}

export class ControlPlaneLink {
  appliedVersion: number | null = null;
  private trust: TrustStore | null = null;
  /** The JSON of the keys `trust` was built from, to skip rebuilding it for every delta. */
  private trustText = '';
  private missingEnv: MissingEnv = [];
  private lastRejection: NodeReport['lastRejection'] = null;
  private readonly startedAt = new Date().toISOString();
  private abort: AbortController | null = null;
  private stopped = false;
  private reportTimer: NodeJS.Timeout | null = null;
  /** Envelopes are handled one at a time, in arrival order. */
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly options: LinkOptions) {}

  /** Loads trust, then the last good snapshot from disk if there is one. Returns whether one was applied. */
  async loadFromDisk(): Promise<boolean> {
    await this.loadTrust();
    const dir = this.options.stateDir;
    if (!dir || !this.trust || !existsSync(join(dir, SNAPSHOT_FILE))) return false;
    try {
      await this.handleEnvelope(JSON.parse(readFileSync(join(dir, SNAPSHOT_FILE), 'utf8')) as unknown, false);
    } catch (error) {
      this.options.logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'snapshot on disk was not usable');
      return false;
    }
    // Without its deltas the snapshot on disk would bring back keys revoked since it was written.
    const deltas = existsSync(join(dir, DELTAS_FILE)) ? readFileSync(join(dir, DELTAS_FILE), 'utf8').split('\n').filter((l) => l.trim() !== '') : [];
    for (const line of deltas) {
      try {
        await this.handleDelta(JSON.parse(line) as unknown, false);
      } catch (error) {
        // A delta older than the snapshot (left by a crash between the two writes) is expected; others are not.
        const code = error instanceof SnapshotError ? error.code : 'malformed';
        if (code !== 'rollback') this.options.logger.warn({ code, err: error instanceof Error ? error.message : String(error) }, 'a delta on disk was not usable');
      }
    }
    this.options.logger.info({ version: this.appliedVersion, deltas: deltas.length }, 'serving the last verified snapshot from disk');
    return this.appliedVersion !== null;
  }

  start(): void {
    void this.connectLoop();
    this.reportTimer = setInterval(() => void this.report(), this.options.reportIntervalMs ?? 10_000);
    this.reportTimer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort?.abort();
    if (this.reportTimer) clearInterval(this.reportTimer);
    await this.queue.catch(() => undefined);
  }

  /** Verify → unwrap → apply → persist → report. A refusal is logged and reported; the old snapshot stays. */
  handleEnvelope(raw: unknown, persist = true): Promise<void> {
    return this.enqueue(() => this.applyEnvelope(raw, persist), persist);
  }

  /** The same for a delta. A gap (it does not apply to what this node runs) makes the node reconnect for a whole snapshot. */
  handleDelta(raw: unknown, persist = true): Promise<void> {
    return this.enqueue(() => this.applyDeltaEnvelope(raw, persist), persist);
  }

  /** Runs one apply after the previous one; live (`persist`) failures are logged and reported, replayed ones thrown. */
  private enqueue(work: () => Promise<void>, persist: boolean): Promise<void> {
    const run = this.queue.then(async () => {
      try {
        await work();
      } catch (error) {
        if (!persist) throw error;
        const code = error instanceof SnapshotError ? error.code : 'apply_failed';
        const message = error instanceof Error ? error.message : String(error);
        this.lastRejection = { code, message, at: new Date().toISOString() };
        this.options.logger.error({ code, reason: message, appliedVersion: this.appliedVersion }, 'snapshot refused; still serving the last good one');
        if (code === 'gap') this.abort?.abort(); // the control plane sends a whole snapshot on reconnect
      }
      if (persist) await this.report();
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async applyEnvelope(raw: unknown, persist: boolean): Promise<void> {
    if (!this.trust) await this.loadTrust();
    if (!this.trust) throw new SnapshotError('unknown_key_id', 'no trusted signing keys yet');
    const envelope = SnapshotEnvelopeSchema.safeParse(raw);
    if (!envelope.success) throw new SnapshotError('malformed', 'snapshot envelope does not match the schema');
    const payload = await verifySnapshot(envelope.data.snapshot, this.trust, { currentVersion: this.appliedVersion });
    if (payload.version === this.appliedVersion) {
      // Same configuration, possibly a new signing key set (a control plane restarted mid-rotation).
      await this.adoptTrust(payload.trustedKeys, persist);
      return;
    }
    const dataKey = await unwrapDataKey(envelope.data.dataKey, this.options.nodePrivateJwk);
    const { missingEnv } = this.options.apply(payload, dataKey);
    this.appliedVersion = payload.version;
    this.missingEnv = missingEnv;
    if (missingEnv.length > 0) {
      this.options.logger.warn({ missingEnv }, 'servers unavailable on this node: environment variables not set');
    }
    this.options.logger.info({ version: payload.version, keys: payload.keys.length, servers: payload.servers.length }, 'snapshot applied');
    if (persist && this.options.stateDir) {
      await mkdir(this.options.stateDir, { recursive: true });
      await writeAtomic(join(this.options.stateDir, SNAPSHOT_FILE), JSON.stringify(envelope.data));
      await writeAtomic(join(this.options.stateDir, DELTAS_FILE), '');
    }
    await this.adoptTrust(payload.trustedKeys, persist);
  }

  private async applyDeltaEnvelope(raw: unknown, persist: boolean): Promise<void> {
    if (!this.trust) throw new SnapshotError('unknown_key_id', 'no trusted signing keys yet');
    const envelope = DeltaEnvelopeSchema.safeParse(raw);
    if (!envelope.success) throw new SnapshotError('malformed', 'delta envelope does not match the schema');
    const delta = await verifyDelta(envelope.data.delta, this.trust, { currentVersion: this.appliedVersion });
    this.options.applyDelta(delta);
    this.appliedVersion = delta.version;
    this.options.logger.info(
      { version: delta.version, baseVersion: delta.baseVersion, upsertKeys: delta.upsertKeys.length, removeKeys: delta.removeKeyIds.length },
      'snapshot delta applied',
    );
    if (persist && this.options.stateDir) {
      await appendFile(join(this.options.stateDir, DELTAS_FILE), JSON.stringify(envelope.data) + '\n', { mode: 0o600 });
    }
    await this.adoptTrust(delta.trustedKeys, persist);
  }

  /** Trusts exactly the keys a verified snapshot lists (how signing keys rotate), and remembers them. */
  private async adoptTrust(keys: SnapshotPayload['trustedKeys'], persist: boolean): Promise<void> {
    const text = JSON.stringify(keys);
    if (this.trust && text === this.trustText) return;
    this.trust = await TrustStore.fromJwks(keys);
    this.trustText = text;
    if (persist && this.options.stateDir) {
      await mkdir(this.options.stateDir, { recursive: true });
      await writeAtomic(join(this.options.stateDir, TRUST_FILE), JSON.stringify(keys));
    }
  }

  private async loadTrust(): Promise<void> {
    if (this.trust) return;
    const { trustedJwks, stateDir, logger } = this.options;
    // Keys learned from verified snapshots come first: they follow every rotation since the node was
    // seeded, whereas the configured keys (--trust-jwks) only seed a node that has none yet.
    if (stateDir && existsSync(join(stateDir, TRUST_FILE))) {
      this.trust = await TrustStore.fromJwks(JSON.parse(readFileSync(join(stateDir, TRUST_FILE), 'utf8')) as unknown[]);
      return;
    }
    if (trustedJwks) {
      this.trust = await TrustStore.fromJwks(trustedJwks);
      return;
    }
    try {
      const res = await fetch(new URL('/nodes/jwks', this.options.controlPlaneUrl), { headers: this.authHeaders() });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const body = (await res.json()) as { keys: unknown[] };
      this.trust = await TrustStore.fromJwks(body.keys);
      logger.warn({ kids: this.trust.kids() }, 'trusting the control plane signing keys on first use; pin them with --trust-jwks for production');
    } catch (error) {
      logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'could not fetch signing keys from the control plane');
    }
  }

  private authHeaders(): Record<string, string> {
    return { authorization: `Bearer ${this.options.nodeToken}`, [NODE_ID_HEADER]: this.options.nodeId };
  }

  private async connectLoop(): Promise<void> {
    let attempt = 0;
    while (!this.stopped) {
      const connected = await this.connectOnce().catch((error: unknown) => {
        if (!this.stopped) this.options.logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'control plane stream failed');
        return false;
      });
      if (this.stopped) return;
      attempt = connected ? 0 : attempt + 1;
      // Capped exponential backoff with jitter, so a fleet of nodes does not reconnect in lockstep.
      const delay = Math.min(10_000, 250 * 2 ** Math.min(attempt, 6)) * (0.5 + Math.random() / 2);
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }

  /** One stream connection; resolves when it ends. Returns whether it had connected. */
  private async connectOnce(): Promise<boolean> {
    if (!this.trust) await this.loadTrust();
    this.abort = new AbortController();
    const res = await fetch(new URL(NODE_STREAM_PATH, this.options.controlPlaneUrl), {
      headers: {
        ...this.authHeaders(),
        accept: 'text/event-stream',
        [NODE_KEY_HEADER]: Buffer.from(JSON.stringify(this.options.nodePublicJwk)).toString('base64url'),
      },
      signal: this.abort.signal,
    });
    if (!res.ok || !res.body) {
      this.options.logger.warn({ status: res.status }, 'control plane refused the snapshot stream');
      return false;
    }
    this.options.logger.info({ controlPlane: this.options.controlPlaneUrl }, 'connected to control plane');
    const parser = createParser({
      onEvent: (event) => {
        if (event.event !== SNAPSHOT_EVENT && event.event !== DELTA_EVENT) return;
        let raw: unknown;
        try {
          raw = JSON.parse(event.data);
        } catch {
          raw = null;
        }
        void (event.event === DELTA_EVENT ? this.handleDelta(raw) : this.handleEnvelope(raw));
      },
    });
    const decoder = new TextDecoder();
    const reader = res.body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        parser.feed(decoder.decode(value, { stream: true }));
      }
    } catch (error) {
      if (!this.stopped) throw error;
    }
    return true;
  }

  async report(): Promise<void> {
    if (this.stopped) return;
    const report: NodeReport = {
      nodeId: this.options.nodeId,
      appliedVersion: this.appliedVersion,
      missingEnv: this.missingEnv,
      lastRejection: this.lastRejection,
      health: this.appliedVersion === null || this.missingEnv.length > 0 ? 'DEGRADED' : 'OK',
      startedAt: this.startedAt,
      ...(this.options.catalogs ? { catalogs: this.options.catalogs() } : {}),
    };
    try {
      await fetch(new URL(NODE_REPORT_PATH, this.options.controlPlaneUrl), {
        method: 'POST',
        headers: { ...this.authHeaders(), 'content-type': 'application/json' },
        body: JSON.stringify(report),
      });
    } catch {
      // The control plane may be away; the next report or reconnect catches up.
    }
  }
}
