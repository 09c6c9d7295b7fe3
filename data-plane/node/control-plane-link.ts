/**
 * The node's link to the control plane: enrolls the node's keys (per-node identity) or uses the shared
 * node token, opens the snapshot stream (SSE) saying which version it runs, verifies and applies each
 * snapshot or delta, persists the last good one (compacting `deltas.jsonl` into a fresh base after
 * `compactAfterDeltas` deltas or `compactAfterBytes` bytes, so start-up replay stays bounded), and reports
 * status (periodically, after each apply, and soon after an upstream's health changes: `reportSoon`). Reconnects with capped exponential backoff; while the control plane is away the node keeps
 * serving what it has (SPEC §3). Refusals of its credentials are logged naming the variable to check.
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
import { signNodeCredential } from '../snapshot/node-credential.js';
import { NODE_CREDENTIALS_PATH, openCredentialAnswer, type CredentialAnswer, type CredentialRequest } from '../snapshot/credential-protocol.js';
import {
  DELTA_EVENT,
  NODE_ENROLL_PATH,
  NODE_ID_HEADER,
  NODE_JWKS_PATH,
  NODE_KEY_HEADER,
  MAX_NODE_REPORT_BYTES,
  NODE_REPORT_PATH,
  NODE_SNAPSHOT_PATH,
  NODE_STREAM_PATH,
  NODE_TRUST_HEADER,
  NODE_VERSION_HEADER,
  NodeEnrollmentResultSchema,
  SNAPSHOT_EVENT,
  type NodeReport,
} from '../snapshot/stream-protocol.js';
import { TrustStore, verifyDelta, verifySnapshot } from '../snapshot/verify.js';
import type { Logger } from '../log.js';
import { fitReport } from './report-size.js';

export type MissingEnv = NodeReport['missingEnv'];

export interface LinkOptions {
  controlPlaneUrl: string;
  /** The shared node token; null for a node with its own enrolled identity (the default). */
  nodeToken: string | null;
  /** A one-time enrollment token (GATEHOUSE_ENROLLMENT_TOKEN): the node is approved when it presents it. */
  enrollmentToken?: string | null;
  /** The node's Ed25519 identity key pair (signs its requests when it has no shared token). */
  identity: { publicJwk: JWK; privateJwk: JWK };
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
  /** Upstream health to include in reports (see NodeReport.upstreams). */
  upstreams?: () => NonNullable<NodeReport['upstreams']>;
  logger: Logger;
  reportIntervalMs?: number;
  /** The most bytes a report may be; default the control plane's bound (`MAX_NODE_REPORT_BYTES`). */
  maxReportBytes?: number;
  /** How long `reportSoon` waits, gathering further changes into the same report. Default 500 ms. */
  reportSoonMs?: number;
  /** Compact `deltas.jsonl` into a fresh base after this many deltas (default 500) or bytes (default 8 MB). */
  compactAfterDeltas?: number;
  compactAfterBytes?: number;
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
  /**
   * Aborted by stop(): every request of the link's own (stream, enrollment, keys, reports, compaction) and
   * its reconnect wait end with it, so a node closes at once instead of after a report to a slow control
   * plane or a reconnect backoff of up to 10 s (a restarted node waited on the state-dir lock meanwhile).
   */
  private readonly lifetime = new AbortController();
  private connecting: Promise<void> | null = null;
  private stopped = false;
  private reportTimer: NodeJS.Timeout | null = null;
  /** A `reportSoon` report is pending. */
  private soonTimer: NodeJS.Timeout | null = null;
  /** Envelopes are handled one at a time, in arrival order. */
  private queue: Promise<void> = Promise.resolve();
  /** Version of the whole snapshot in the state dir, and the deltas written after it. */
  private diskBaseVersion: number | null = null;
  private diskDeltas = 0;
  private diskDeltaBytes = 0;
  private compacting: Promise<void> | null = null;
  /** No compaction attempt before this time (after one that could not compact), so a failing one is not retried per delta. */
  private compactNotBefore = 0;
  /** The last credential refusal logged, so a node retrying every few seconds logs it once. */
  private lastRefusal = '';
  /** The last refusal of a report logged (cleared by an accepted one), so a refusal repeated every interval is logged once. */
  private lastReportRefusal = '';
  /** A report has had to be trimmed to fit the control plane's bound (logged the first time only). */
  private reportTrimmed = false;
  private enrolled = false;

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
    this.diskBaseVersion = this.appliedVersion;
    const deltas = existsSync(join(dir, DELTAS_FILE)) ? readFileSync(join(dir, DELTAS_FILE), 'utf8').split('\n').filter((l) => l.trim() !== '') : [];
    this.diskDeltas = deltas.length;
    this.diskDeltaBytes = deltas.reduce((n, l) => n + l.length + 1, 0);
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
    this.connecting ??= this.connectLoop();
    this.reportTimer = setInterval(() => void this.report(), this.options.reportIntervalMs ?? 10_000);
    this.reportTimer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.lifetime.abort();
    this.abort?.abort();
    if (this.reportTimer) clearInterval(this.reportTimer);
    if (this.soonTimer) clearTimeout(this.soonTimer);
    await this.connecting;
    await this.queue.catch(() => undefined);
    await this.compacting?.catch(() => undefined);
  }

  /** A signal for one of the link's requests: ends with the link, or after `timeoutMs`. */
  private requestSignal(timeoutMs: number): AbortSignal {
    return AbortSignal.any([this.lifetime.signal, AbortSignal.timeout(timeoutMs)]);
  }

  /** Verify → unwrap → apply → persist → report. A refusal is logged and reported; the old snapshot stays. */
  /** `text`: the envelope as received, persisted as is (re-serialising 40 MB would cost time and memory). */
  handleEnvelope(raw: unknown, persist = true, text?: string): Promise<void> {
    return this.enqueue(() => this.applyEnvelope(raw, persist, text), persist);
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

  private async applyEnvelope(raw: unknown, persist: boolean, text?: string): Promise<void> {
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
    const keys = payload.keys.length + (payload.keyTable ? payload.keyTable.rows.length / 7 : 0);
    this.options.logger.info({ version: payload.version, keys, servers: payload.servers.length }, 'snapshot applied');
    if (persist && this.options.stateDir) {
      await mkdir(this.options.stateDir, { recursive: true });
      await writeAtomic(join(this.options.stateDir, SNAPSHOT_FILE), text ?? JSON.stringify(envelope.data));
      await writeAtomic(join(this.options.stateDir, DELTAS_FILE), '');
      this.diskBaseVersion = payload.version;
      this.diskDeltas = 0;
      this.diskDeltaBytes = 0;
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
      const line = JSON.stringify(envelope.data) + '\n';
      await appendFile(join(this.options.stateDir, DELTAS_FILE), line, { mode: 0o600 });
      this.diskDeltas++;
      this.diskDeltaBytes += line.length;
      const due = this.diskDeltas >= (this.options.compactAfterDeltas ?? 500) || this.diskDeltaBytes >= (this.options.compactAfterBytes ?? 8 * 1024 * 1024);
      if (due && Date.now() >= this.compactNotBefore) {
        this.compacting ??= this.compact().finally(() => {
          this.compacting = null;
        });
      }
    }
    await this.adoptTrust(delta.trustedKeys, persist);
  }

  /**
   * Replaces the state dir's base with the control plane's cached whole snapshot (signed, so it is
   * verified like any other) and keeps only the deltas after it. The runtime is not rebuilt: the node
   * already serves a newer version; this only bounds what a restart replays.
   */
  async compact(): Promise<void> {
    const dir = this.options.stateDir;
    if (!dir || !this.trust) return;
    try {
      const res = await fetch(new URL(NODE_SNAPSHOT_PATH, this.options.controlPlaneUrl), {
        headers: { ...(await this.authHeaders('GET', NODE_SNAPSHOT_PATH)), ...this.keyHeader() },
        signal: this.lifetime.signal,
      });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const envelope = SnapshotEnvelopeSchema.parse(await res.json());
      const payload = await verifySnapshot(envelope.snapshot, this.trust, { currentVersion: null });
      await unwrapDataKey(envelope.dataKey, this.options.nodePrivateJwk); // it must open here, or a restart could not use it
      await this.enqueue(async () => {
        if (this.appliedVersion === null || payload.version > this.appliedVersion || (this.diskBaseVersion !== null && payload.version <= this.diskBaseVersion)) {
          // Ahead of what this node runs (its deltas are on their way) or no progress: try again later.
          this.compactNotBefore = Date.now() + 10_000;
          return;
        }
        const lines = existsSync(join(dir, DELTAS_FILE)) ? readFileSync(join(dir, DELTAS_FILE), 'utf8').split('\n').filter((l) => l.trim() !== '') : [];
        const kept = lines.filter((line) => deltaBaseVersion(line) >= payload.version);
        await writeAtomic(join(dir, SNAPSHOT_FILE), JSON.stringify(envelope));
        await writeAtomic(join(dir, DELTAS_FILE), kept.map((l) => l + '\n').join(''));
        this.options.logger.info({ base: payload.version, dropped: lines.length - kept.length, kept: kept.length }, 'state dir compacted');
        this.diskBaseVersion = payload.version;
        this.diskDeltas = kept.length;
        this.diskDeltaBytes = kept.reduce((n, l) => n + l.length + 1, 0);
      }, false);
    } catch (error) {
      this.compactNotBefore = Date.now() + 30_000;
      this.options.logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'could not compact the state dir; will try again after more deltas');
    }
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
      await this.ensureEnrolled();
      const res = await fetch(new URL(NODE_JWKS_PATH, this.options.controlPlaneUrl), { headers: await this.authHeaders('GET', NODE_JWKS_PATH), signal: this.requestSignal(30_000) });
      if (!res.ok) throw new Error(await this.refusal(res));
      const body = (await res.json()) as { keys: unknown[] };
      this.trust = await TrustStore.fromJwks(body.keys);
      logger.warn({ kids: this.trust.kids() }, 'trusting the control plane signing keys on first use; pin them with --trust-jwks for production');
    } catch (error) {
      logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'could not fetch signing keys from the control plane');
    }
  }

  /**
   * One server's credential for one user (or the shared one), from the control plane's credential route:
   * authenticated like every node request, the answer sealed to this node's key and opened here.
   */
  async fetchCredential(request: CredentialRequest): Promise<CredentialAnswer> {
    const res = await fetch(new URL(NODE_CREDENTIALS_PATH, this.options.controlPlaneUrl), {
      method: 'POST',
      headers: { ...(await this.authHeaders('POST', NODE_CREDENTIALS_PATH)), ...this.keyHeader(), 'content-type': 'application/json' },
      body: JSON.stringify(request),
      signal: AbortSignal.timeout(15_000),
    });
    if (!res.ok) throw new Error(await this.refusal(res));
    return openCredentialAnswer(await res.text(), this.options.nodePrivateJwk);
  }

  /** The shared token, or a fresh credential signed by this node's identity key for exactly this request. */
  /**
   * A request to a node route of the control plane, authenticated as this node (the spend reporter and
   * spend source of `data-plane/limits/` use it). `path` may carry a query; the credential binds the path.
   */
  async nodeFetch(method: 'GET' | 'POST', path: string, body?: unknown): Promise<Response> {
    const bare = path.split('?')[0] ?? path;
    const headers: Record<string, string> = { ...(await this.authHeaders(method, bare)) };
    if (body !== undefined) headers['content-type'] = 'application/json';
    return fetch(new URL(path, this.options.controlPlaneUrl), { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}), signal: AbortSignal.timeout(10_000) });
  }

  /** The node's credentials for one request to the control plane (also used by the audit shipper). */
  async authHeaders(method: string, path: string): Promise<Record<string, string>> {
    const { nodeToken, nodeId, identity } = this.options;
    const credential = nodeToken ?? (await signNodeCredential(identity.privateJwk, { nodeId, method, path }));
    return { authorization: `Bearer ${credential}`, [NODE_ID_HEADER]: nodeId };
  }

  private keyHeader(): Record<string, string> {
    return { [NODE_KEY_HEADER]: Buffer.from(JSON.stringify(this.options.nodePublicJwk)).toString('base64url') };
  }

  /** What to tell the operator about a refused request: the control plane's reason and the variable to check. */
  private async refusal(res: Response): Promise<string> {
    let type = '';
    let message = '';
    try {
      ({ type = '', message = '' } = (await res.json()) as { type?: string; message?: string });
    } catch {
      // Not our JSON (a proxy in between): the status says enough.
    }
    const hint =
      res.status === 401
        ? this.options.nodeToken !== null
          ? 'check GATEHOUSE_NODE_TOKEN (or --node-token-file): it must be the control plane\'s node token, and the control plane must accept a shared token'
          : 'this node is not enrolled: set GATEHOUSE_ENROLLMENT_TOKEN (from the enrollNode mutation) or ask an admin to approveNode'
        : type === 'node_pending_approval'
          ? `an admin must approve this node: approveNode(input: {id: "${this.options.nodeId}", fingerprint: "…"}) with the fingerprint logged at enrollment`
          : type === 'node_revoked'
            ? 'this node was revoked: enroll it again with a new GATEHOUSE_ENROLLMENT_TOKEN'
            : '';
    return `control plane refused this node (HTTP ${res.status}${type ? ` ${type}` : ''})${message ? `: ${message}` : ''}${hint ? `; ${hint}` : ''}`;
  }

  private logRefusal(text: string): void {
    if (text === this.lastRefusal) return;
    this.lastRefusal = text;
    this.options.logger.error({ controlPlane: this.options.controlPlaneUrl }, text);
  }

  /**
   * Per-node identity: presents the node's public keys (with the one-time enrollment token if there is
   * one) until the control plane says APPROVED. Idempotent on the control plane's side.
   */
  private async ensureEnrolled(): Promise<void> {
    if (this.options.nodeToken !== null || this.enrolled) return;
    const { enrollmentToken, nodeId, identity, nodePublicJwk } = this.options;
    const res = await fetch(new URL(NODE_ENROLL_PATH, this.options.controlPlaneUrl), {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(enrollmentToken ? { authorization: `Bearer ${enrollmentToken}` } : {}) },
      body: JSON.stringify({ nodeId, identityJwk: identity.publicJwk, sealingJwk: nodePublicJwk }),
      signal: this.requestSignal(30_000),
    });
    if (!res.ok) throw new Error(await this.refusal(res));
    const result = NodeEnrollmentResultSchema.parse(await res.json());
    if (result.status === 'APPROVED') {
      this.enrolled = true;
      this.options.logger.info({ nodeId, fingerprint: result.fingerprint }, 'node enrolled and approved');
    } else {
      this.logRefusal(
        `node awaits approval: an admin runs approveNode(input: {id: "${nodeId}", fingerprint: "${result.fingerprint}"}) ` +
          '(or start it with GATEHOUSE_ENROLLMENT_TOKEN from enrollNode)',
      );
    }
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
      await abortableDelay(delay, this.lifetime.signal);
    }
  }

  /** One stream connection; resolves when it ends. Returns whether it had connected. */
  private async connectOnce(): Promise<boolean> {
    await this.ensureEnrolled();
    if (!this.trust) await this.loadTrust();
    if (this.stopped) return false;
    this.abort = new AbortController();
    const res = await fetch(new URL(NODE_STREAM_PATH, this.options.controlPlaneUrl), {
      headers: {
        ...(await this.authHeaders('GET', NODE_STREAM_PATH)),
        ...this.keyHeader(),
        accept: 'text/event-stream',
        ...(this.appliedVersion !== null && this.trust ? { [NODE_VERSION_HEADER]: String(this.appliedVersion), [NODE_TRUST_HEADER]: this.trust.kids().sort().join(',') } : {}),
      },
      signal: AbortSignal.any([this.lifetime.signal, this.abort.signal]),
    });
    if (!res.ok || !res.body) {
      this.logRefusal(await this.refusal(res));
      // A revoked or re-keyed node must present its keys again before the next attempt.
      if (res.status === 401 || res.status === 403) this.enrolled = false;
      return false;
    }
    this.lastRefusal = '';
    this.options.logger.info({ controlPlane: this.options.controlPlaneUrl, version: this.appliedVersion }, 'connected to control plane');
    const parser = createParser({
      onEvent: (event) => {
        if (event.event !== SNAPSHOT_EVENT && event.event !== DELTA_EVENT) return;
        let raw: unknown;
        try {
          raw = JSON.parse(event.data);
        } catch {
          raw = null;
        }
        void (event.event === DELTA_EVENT ? this.handleDelta(raw) : this.handleEnvelope(raw, true, event.data));
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

  /**
   * A report shortly (something operators should see changed, e.g. an upstream's health), not one per
   * change: changes within `reportSoonMs` of the first share one report, so a flapping upstream costs the
   * control plane at most a couple of reports a second.
   */
  reportSoon(): void {
    if (this.stopped || this.soonTimer) return;
    this.soonTimer = setTimeout(() => {
      this.soonTimer = null;
      void this.report();
    }, this.options.reportSoonMs ?? 500);
    this.soonTimer.unref();
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
      ...(this.options.upstreams ? { upstreams: this.options.upstreams() } : {}),
    };
    const fitted = fitReport(report, this.options.maxReportBytes ?? MAX_NODE_REPORT_BYTES);
    if ((fitted.droppedCatalogs > 0 || fitted.droppedUpstreams > 0) && !this.reportTrimmed) {
      this.reportTrimmed = true;
      this.options.logger.warn(
        { droppedCatalogs: fitted.droppedCatalogs, droppedUpstreams: fitted.droppedUpstreams, maxBytes: this.options.maxReportBytes ?? MAX_NODE_REPORT_BYTES },
        'node report is over the control plane bound: left out tool catalogs (then healthy upstreams) to fit; logged once',
      );
    }
    let res: Response;
    try {
      res = await fetch(new URL(NODE_REPORT_PATH, this.options.controlPlaneUrl), {
        method: 'POST',
        headers: { ...(await this.authHeaders('POST', NODE_REPORT_PATH)), 'content-type': 'application/json' },
        body: fitted.body,
        signal: this.requestSignal(10_000),
      });
    } catch {
      // The control plane may be away; the next report or reconnect catches up.
      return;
    }
    if (res.ok) {
      this.lastReportRefusal = '';
      await res.body?.cancel();
      return;
    }
    // A refused report (too large, malformed, a credential problem) is lost: say why, once until one is accepted.
    const text = (await this.refusal(res)).replace('refused this node', 'refused a node report');
    if (text === this.lastReportRefusal) return;
    this.lastReportRefusal = text;
    this.options.logger.error({ controlPlane: this.options.controlPlaneUrl, status: res.status }, text);
  }
}

/** Resolves after `ms`, or at once when `signal` is (or already was) aborted; leaves no timer behind. */
function abortableDelay(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/** The `baseVersion` of a persisted delta line, without verifying it (it was verified when applied). */
function deltaBaseVersion(line: string): number {
  try {
    const envelope = JSON.parse(line) as { delta?: { payload?: string } };
    const payload = JSON.parse(Buffer.from(envelope.delta?.payload ?? '', 'base64url').toString('utf8')) as { baseVersion?: unknown };
    return typeof payload.baseVersion === 'number' ? payload.baseVersion : -1;
  } catch {
    return -1;
  }
}
