/**
 * Keeps nodes at the latest config version, at a cost proportional to what changed.
 *
 * A change is noticed three ways: `changed()` from this replica's mutations, a PostgreSQL NOTIFY from
 * another replica (see `config-notify.ts`), and a slow poll of `config_state` as a safety net. Each is
 * coalesced and handled in one queue, one step at a time: read the rows changed since the published
 * version (per-row change versions, `compile.ts`), sign one delta, and write the same bytes to every
 * stream that is at the delta's base version (O(1) per stream: no per-node JSON or signing).
 *
 * Whole snapshots are compiled rarely: at start, when a server changes (servers carry sealed secrets), when
 * the seal epoch moves (a node was revoked: a new data key, so the revoked node cannot open what follows),
 * and lazily when a node needs one and the cached one was dropped. The cached whole snapshot (the base)
 * and the chain of deltas since it are sent to new nodes; a node that reconnects with a version gets only
 * the changes since that version. The data key is wrapped once per node and data key, not per snapshot.
 *
 * It does not authenticate nodes (http/node-auth.ts) or read rows itself (compile.ts does).
 */
import type { JWK } from 'jose';
import type { Kysely } from 'kysely';
import { generateDataKey, wrapDataKey } from '../../data-plane/snapshot/seal.js';
import type { PublicJwk, SignedSnapshot } from '../../data-plane/snapshot/schema.js';
import { signSnapshot, type SigningKey } from '../../data-plane/snapshot/sign.js';
import { DELTA_EVENT, SNAPSHOT_EVENT } from '../../data-plane/snapshot/stream-protocol.js';
import type { SecretBox } from '../crypto/secret-box.js';
import type { Database } from '../db/schema.js';
import type { Logger } from '../log.js';
import { pruneTombstones } from '../repos/config-state.js';
import { revokedNodeIds } from '../repos/nodes.js';
import { compileSnapshot, deltaPayload, readChanges, readConfigState, type ConfigChanges, type ServerSignatures } from './compile.js';

/** One node stream, as the publisher sees it. */
export interface Subscriber {
  nodeId: string;
  /** The node's X25519 public key: its data keys are wrapped for this key only. */
  sealingJwk: JWK;
  /** The version the node said it runs when it connected (it then needs only what changed since). */
  appliedVersion: number | null;
  /** Writes SSE bytes to the stream; the chunks are shared between streams and must not be modified. */
  write(chunks: readonly Buffer[]): void;
  /** Ends the stream (the node was revoked, or it fell too far behind). */
  close(reason: string): void;
}

interface Base {
  version: number;
  dataKey: Uint8Array;
  /** The signed whole snapshot as JSON bytes, the same for every node. */
  signed: Buffer;
}

interface Link {
  baseVersion: number;
  version: number;
  /** The whole SSE `delta` event, the same bytes for every node. */
  frame: Buffer;
}

interface SubscriberState {
  /** The version this stream has been brought to, or null before anything was sent. */
  lastSent: number | null;
  wrapped: { dataKey: Uint8Array; jwe: string } | null;
}

/** The last change pushed, for metrics and the bench: from the first `changed()` it answered to the bytes being written. */
export interface PublishStats {
  version: number;
  kind: 'delta' | 'whole';
  /** Epoch ms of the first `changed()` this publish answered (right after the mutation committed). */
  requestedAt: number;
  /** Epoch ms when the bytes were handed to every stream at the base version. */
  writtenAt: number;
  bytes: number;
  streams: number;
}

export interface PublisherOptions {
  db: Kysely<Database>;
  box: SecretBox;
  signingKey: SigningKey;
  trustedKeys: PublicJwk[];
  logger: Logger;
  pollIntervalMs?: number;
  /** Deltas kept after the cached whole snapshot before both are dropped (then compiled again on need). */
  maxChainLinks?: number;
  maxChainBytes?: number;
  /** A change touching more rows than this (a bulk import) goes out as a whole snapshot: the compact key table applies faster than a large delta. */
  maxDeltaRows?: number;
  /**
   * Tombstones (deleted keys, users, servers) kept for computing deltas (default 10,000); older ones are
   * pruned every `tombstonePruneIntervalMs` (default 10 minutes), and a node older than the oldest kept
   * gets a whole snapshot instead of a delta.
   */
  maxTombstones?: number;
  tombstonePruneIntervalMs?: number;
}

const SNAPSHOT_HEAD = Buffer.from(`event: ${SNAPSHOT_EVENT}\ndata: {"snapshot":`);

function deltaFrame(signed: SignedSnapshot): Buffer {
  return Buffer.from(`event: ${DELTA_EVENT}\ndata: {"delta":${JSON.stringify(signed)}}\n\n`);
}

export class SnapshotPublisher {
  /** The version nodes are being brought to; null before the first compile. */
  private current: number | null = null;
  private sealEpoch = 0;
  private dataKey: Uint8Array = generateDataKey();
  private serverSignatures: ServerSignatures = new Map();
  private sessionSecretsDigest = '';
  /** Deltas can be computed from change tracking for any version from this one on (no server change since). */
  private deltaHorizon = Number.MAX_SAFE_INTEGER;
  private base: Base | null = null;
  private chain: Link[] = [];
  private chainBytes = 0;
  private readonly subscribers = new Map<Subscriber, SubscriberState>();
  private queue: Promise<void> = Promise.resolve();
  private dirty = false;
  private draining: Promise<void> | null = null;
  private poller: NodeJS.Timeout | null = null;
  private pruner: NodeJS.Timeout | null = null;
  private stopped = false;
  private requestedAt: number | null = null;
  private syncRequestedAt = 0;
  /** The last change pushed (see PublishStats). */
  lastPublish: PublishStats | null = null;

  constructor(private readonly options: PublisherOptions) {}

  /** Compiles the first snapshot and starts the safety-net poll. */
  async start(): Promise<void> {
    await this.changed();
    const interval = this.options.pollIntervalMs ?? 2000;
    this.poller = setInterval(() => void this.changed(), interval);
    this.poller.unref();
    await this.pruneTombstones();
    this.pruner = setInterval(() => void this.pruneTombstones(), this.options.tombstonePruneIntervalMs ?? 10 * 60_000);
    this.pruner.unref();
  }

  /** Drops tombstones beyond `maxTombstones` (see `pruneTombstones`); a failure is logged and tried again at the next interval. */
  async pruneTombstones(): Promise<void> {
    try {
      const { floor, pruned } = await pruneTombstones(this.options.db, this.options.maxTombstones ?? 10_000);
      if (pruned > 0) this.options.logger.info({ pruned, floor }, 'old tombstones pruned; nodes older than the floor get whole snapshots');
    } catch (error) {
      this.options.logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'could not prune tombstones');
    }
  }

  stop(): void {
    this.stopped = true;
    if (this.poller) clearInterval(this.poller);
    if (this.pruner) clearInterval(this.pruner);
    this.poller = null;
    this.subscribers.clear();
  }

  get subscriberCount(): number {
    return this.subscribers.size;
  }

  get version(): number | null {
    return this.current;
  }

  /** Ids of the nodes with a stream open on this replica. */
  connectedNodeIds(): string[] {
    return [...new Set([...this.subscribers.keys()].map((s) => s.nodeId))];
  }

  /** Something may have changed: bring every node up to the stored version. Coalesced. */
  changed(): Promise<void> {
    this.dirty = true;
    this.requestedAt ??= epochMs();
    this.draining ??= this.drain().finally(() => {
      this.draining = null;
    });
    return this.draining;
  }

  /** Adds a stream and brings it up to date; returns the function that removes it. */
  async subscribe(subscriber: Subscriber): Promise<() => void> {
    this.subscribers.set(subscriber, { lastSent: null, wrapped: null });
    await this.enqueue(() => this.deliver(subscriber));
    return () => this.subscribers.delete(subscriber);
  }

  /** Closes the streams of these nodes at once (a revocation on this replica; other replicas follow the seal epoch). */
  disconnect(nodeIds: readonly string[], reason: string): void {
    for (const subscriber of [...this.subscribers.keys()]) {
      if (!nodeIds.includes(subscriber.nodeId)) continue;
      this.subscribers.delete(subscriber);
      subscriber.close(reason);
    }
  }

  /**
   * The whole snapshot at the current version (the cached one unless deltas followed it) with its data key
   * wrapped for `sealingJwk`, as the envelope JSON: what a node fetches to compact its state dir.
   */
  wholeSnapshot(sealingJwk: JWK): Promise<{ version: number; body: Buffer }> {
    return this.enqueue(async () => {
      // Current, so it replaces the node's deltas; nodes compacting together share one compile.
      const base = await this.ensureBase(true);
      const jwe = await wrapDataKey(base.dataKey, sealingJwk);
      return { version: base.version, body: Buffer.concat([Buffer.from('{"snapshot":'), base.signed, Buffer.from(`,"dataKey":"${jwe}"}`)]) };
    });
  }

  private enqueue<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work);
    this.queue = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  private async drain(): Promise<void> {
    while (this.dirty && !this.stopped) {
      this.dirty = false;
      this.syncRequestedAt = this.requestedAt ?? epochMs();
      this.requestedAt = null;
      try {
        await this.enqueue(() => this.sync());
      } catch (error) {
        this.options.logger.error({ err: error instanceof Error ? error.message : String(error) }, 'snapshot publish failed; nodes keep the previous one');
      }
    }
  }

  /** One step: read what changed since `current` and push it. */
  private async sync(): Promise<void> {
    const { db, logger } = this.options;
    // One cheap read first: a replica hears its own NOTIFY after its own change, and polls find nothing
    // new most of the time; neither should cost more.
    const state = await readConfigState(db);
    if (this.current !== null && state.version <= this.current && state.sealEpoch === this.sealEpoch) return;
    if (this.current === null) {
      this.sealEpoch = state.sealEpoch;
      await this.rebuildBase();
      await this.deliverAll();
      return;
    }
    const changes = await readChanges(db, this.current, this.serverSignatures, this.sessionSecretsDigest);
    if (changes.sealEpoch !== this.sealEpoch) await this.rotateDataKey(changes.sealEpoch);
    if (changes.beforeFloor || changes.serversChanged || changes.sessionSecretsChanged || this.isLarge(changes)) {
      await this.rebuildBase();
      logger.info({ version: this.current, nodes: this.subscribers.size, serversChanged: changes.serversChanged }, 'whole snapshot published');
      await this.deliverAll();
      this.lastPublish = { version: this.current ?? 0, kind: 'whole', requestedAt: this.syncRequestedAt, writtenAt: epochMs(), bytes: this.base?.signed.length ?? 0, streams: this.subscribers.size };
      return;
    }
    if (changes.version <= this.current) return;
    const link = this.appendLink(await this.signDelta(changes));
    this.current = link.version;
    logger.info(
      { version: link.version, keys: changes.upsertKeys.length + changes.removeKeyIds.length, users: changes.upsertUsers.length + changes.removeUserIds.length, nodes: this.subscribers.size, bytes: link.frame.length },
      'snapshot delta published',
    );
    let streams = 0;
    for (const [subscriber, state] of this.subscribers) {
      if (state.lastSent !== link.baseVersion) continue;
      this.send(subscriber, state, [link.frame], link.version);
      streams++;
    }
    this.lastPublish = { version: link.version, kind: 'delta', requestedAt: this.syncRequestedAt, writtenAt: epochMs(), bytes: link.frame.length, streams };
    await this.deliverAll();
  }

  private isLarge(changes: ConfigChanges): boolean {
    const rows = changes.upsertKeys.length + changes.removeKeyIds.length + changes.upsertUsers.length + changes.removeUserIds.length;
    return rows > (this.options.maxDeltaRows ?? 5000);
  }

  /** A node was revoked somewhere: new data key for everything sealed from now on, and its streams closed. */
  private async rotateDataKey(sealEpoch: number): Promise<void> {
    this.sealEpoch = sealEpoch;
    this.dataKey = generateDataKey();
    this.base = null;
    const revoked = await revokedNodeIds(this.options.db, this.connectedNodeIds());
    if (revoked.length > 0) this.disconnect(revoked, 'node revoked');
    this.options.logger.info({ sealEpoch, closed: revoked }, 'seal epoch moved: new data key');
  }

  private async signDelta(changes: ConfigChanges): Promise<Link> {
    const signed = await signSnapshot(deltaPayload(changes, this.options.trustedKeys, new Date().toISOString()), this.options.signingKey);
    return { baseVersion: changes.sinceVersion, version: changes.version, frame: deltaFrame(signed) };
  }

  private appendLink(link: Link): Link {
    this.chain.push(link);
    this.chainBytes += link.frame.length;
    // A long chain costs memory and a new node replaying it; past the bound, the next node that needs a
    // whole snapshot gets a fresh one instead.
    if (this.chain.length > (this.options.maxChainLinks ?? 1000) || this.chainBytes > (this.options.maxChainBytes ?? 16 * 1024 * 1024)) {
      this.base = null;
      this.chain = [];
      this.chainBytes = 0;
    }
    return link;
  }

  /** Compiles the whole snapshot at the stored version and makes it the base; the chain restarts there. */
  private async rebuildBase(): Promise<Base> {
    const { db, box, trustedKeys, signingKey } = this.options;
    const previous = this.serverSignatures;
    const compiled = await compileSnapshot(db, { box, dataKey: this.dataKey, trustedKeys, issuedAt: new Date().toISOString() });
    if (compiled.sealEpoch !== this.sealEpoch && this.current !== null) {
      // Revoked meanwhile: seal again under a new key rather than ship this one.
      await this.rotateDataKey(compiled.sealEpoch);
      return this.rebuildBase();
    }
    this.sealEpoch = compiled.sealEpoch;
    const signed = await signSnapshot(compiled.payload, signingKey);
    const base: Base = { version: compiled.payload.version, dataKey: this.dataKey, signed: Buffer.from(JSON.stringify(signed)) };
    // Sealed values moved (servers or session secrets): no delta may cross this version.
    const serversMoved =
      this.current === null || !sameSignatures(previous, compiled.serverSignatures) || this.sessionSecretsDigest !== compiled.sessionSecretsDigest;
    this.serverSignatures = compiled.serverSignatures;
    this.sessionSecretsDigest = compiled.sessionSecretsDigest;
    if (serversMoved) this.deltaHorizon = base.version;
    this.base = base;
    this.chain = [];
    this.chainBytes = 0;
    this.current = Math.max(this.current ?? 0, base.version);
    this.options.logger.info(
      { version: base.version, servers: compiled.payload.servers.length, keys: compiled.payload.keys.length, bytes: base.signed.length },
      'whole snapshot compiled',
    );
    return base;
  }

  /** The base to send; `fresh`: compiled again unless the chain since it is empty (a new node starts current). */
  private async ensureBase(fresh = false): Promise<Base> {
    if (this.base && this.base.dataKey === this.dataKey && !(fresh && this.chain.length > 0)) return this.base;
    const before = this.current;
    const base = await this.rebuildBase();
    // The compile may have read a newer version than the one being published: others catch up to it.
    if (before !== null && base.version !== before) await this.deliverAll();
    return base;
  }

  private async deliverAll(): Promise<void> {
    for (const subscriber of [...this.subscribers.keys()]) await this.deliver(subscriber);
  }

  /** Brings one stream to `current`: the chain from its version, a computed delta, or the whole snapshot. */
  private async deliver(subscriber: Subscriber): Promise<void> {
    const state = this.subscribers.get(subscriber);
    if (!state || this.current === null) return;
    const from = state.lastSent ?? subscriber.appliedVersion;
    if (from !== null && from >= this.current) {
      state.lastSent = from; // a node ahead of this replica waits for it to catch up
      return;
    }
    if (from !== null && from >= this.deltaHorizon) {
      const at = this.chain.findIndex((l) => l.baseVersion === from);
      if (at >= 0) {
        const links = this.chain.slice(at);
        this.send(subscriber, state, links.map((l) => l.frame), links[links.length - 1]!.version);
        return;
      }
      const changes = await readChanges(this.options.db, from, this.serverSignatures, this.sessionSecretsDigest);
      // A server or session secret changed after `current`: publish that first (it delivers to every stream, this one too).
      if (changes.serversChanged || changes.sessionSecretsChanged) return this.sync();
      // Below the tombstone floor no delta can be made from `from`: the whole snapshot follows.
      if (!changes.beforeFloor && changes.version > from && !this.isLarge(changes)) {
        const link = await this.signDelta(changes);
        this.send(subscriber, state, [link.frame], link.version);
        return;
      }
    }
    await this.sendWhole(subscriber, state);
  }

  private async sendWhole(subscriber: Subscriber, state: SubscriberState): Promise<void> {
    // A node with nothing gets a current whole snapshot (it is ready when it has applied it); a node that
    // fell behind gets the cached base and the deltas since.
    const base = await this.ensureBase(state.lastSent === null && subscriber.appliedVersion === null);
    if (!this.subscribers.has(subscriber)) return;
    if (state.wrapped?.dataKey !== base.dataKey) {
      state.wrapped = { dataKey: base.dataKey, jwe: await wrapDataKey(base.dataKey, subscriber.sealingJwk) };
    }
    const chunks = [SNAPSHOT_HEAD, base.signed, Buffer.from(`,"dataKey":"${state.wrapped.jwe}"}\n\n`), ...this.chain.map((l) => l.frame)];
    this.send(subscriber, state, chunks, this.chain.length > 0 ? this.chain[this.chain.length - 1]!.version : base.version);
  }

  private send(subscriber: Subscriber, state: SubscriberState, chunks: readonly Buffer[], version: number): void {
    try {
      subscriber.write(chunks);
      state.lastSent = version;
    } catch (error) {
      this.options.logger.warn({ nodeId: subscriber.nodeId, err: error instanceof Error ? error.message : String(error) }, 'could not write to a node stream');
    }
  }
}

function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

function sameSignatures(a: ServerSignatures, b: ServerSignatures): boolean {
  if (a.size !== b.size) return false;
  for (const [id, sig] of a) if (b.get(id) !== sig) return false;
  return true;
}
