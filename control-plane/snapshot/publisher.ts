/**
 * Keeps the latest signed snapshot and pushes it to every connected node stream.
 *
 * A change is noticed three ways: `changed()` from this replica's mutations, a PostgreSQL NOTIFY from
 * another replica (see `config-notify.ts`), and a slow poll of `config_state.version` as a safety net.
 * Compilation is coalesced: however many changes arrive while one compile runs, one more follows it.
 *
 * When only keys and users changed, a node that has the previous version gets a signed delta (what changed)
 * instead of the whole snapshot, so revoking one key among 100,000 costs the node a few milliseconds. The
 * whole snapshot is signed lazily, for nodes that connect or fall behind. Servers carry sealed secrets:
 * when they change, a new data key seals them and every node gets a whole snapshot, the data key wrapped
 * for its own X25519 key.
 */
import type { JWK } from 'jose';
import type { Kysely } from 'kysely';
import { generateDataKey, wrapDataKey } from '../../data-plane/snapshot/seal.js';
import {
  SNAPSHOT_FORMAT,
  type DeltaEnvelope,
  type ServerEntry,
  type SessionSecrets,
  type SignedSnapshot,
  type SnapshotDelta,
  type SnapshotEnvelope,
  type UserEntry,
} from '../../data-plane/snapshot/schema.js';
import { signSnapshot, type SigningKey } from '../../data-plane/snapshot/sign.js';
import type { SecretBox } from '../crypto/secret-box.js';
import type { Database } from '../db/schema.js';
import type { Logger } from '../log.js';
import { keyEntry, keyRowSignature, readConfig, sealServers, sealSessionSecrets, type KeyRow } from './compile.js';

export interface Subscriber {
  nodePublicJwk: JWK;
  send(envelope: SnapshotEnvelope): void;
  sendDelta(envelope: DeltaEnvelope): void;
}

interface Published {
  version: number;
  issuedAt: string;
  servers: ServerEntry[];
  users: UserEntry[];
  keyRows: KeyRow[];
  dataKey: Uint8Array;
  serversDigest: string;
  /** Sealed under `dataKey`, like the servers; unchanged until a rotation. */
  sessionSecrets: SessionSecrets | null;
  sessionSecretsDigest: string;
  /** Key and user id → what their entries depend on, to find what the next version changed. */
  keySig: Map<string, string>;
  userSig: Map<string, string>;
  /** The whole snapshot, assembled and signed on first need (a node connecting or falling behind). */
  full: Promise<SignedSnapshot> | null;
  /** How a node at `baseVersion` gets to this version, when only keys and users changed. */
  delta: { baseVersion: number; signed: SignedSnapshot } | null;
}

export interface PublisherOptions {
  db: Kysely<Database>;
  box: SecretBox;
  signingKey: SigningKey;
  trustedKeys: SigningKey['publicJwk'][];
  logger: Logger;
  pollIntervalMs?: number;
}

export class SnapshotPublisher {
  private published: Published | null = null;
  /** Per subscriber: the last version sent and a chain that keeps its sends in order. */
  private readonly subscribers = new Map<Subscriber, { lastSent: number; chain: Promise<void> }>();
  private running: Promise<void> | null = null;
  private dirty = false;
  private poller: NodeJS.Timeout | null = null;

  constructor(private readonly options: PublisherOptions) {}

  /** Compiles the first snapshot and starts the safety-net poll. */
  async start(): Promise<void> {
    await this.changed();
    const interval = this.options.pollIntervalMs ?? 2000;
    this.poller = setInterval(() => void this.pollVersion(), interval);
    this.poller.unref();
  }

  stop(): void {
    if (this.poller) clearInterval(this.poller);
    this.poller = null;
    this.subscribers.clear();
  }

  get subscriberCount(): number {
    return this.subscribers.size;
  }

  get version(): number | null {
    return this.published?.version ?? null;
  }

  /** Something may have changed: compile and push unless the stored version is the one already out. */
  changed(): Promise<void> {
    this.dirty = true;
    this.running ??= this.drain().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  async subscribe(subscriber: Subscriber): Promise<() => void> {
    this.subscribers.set(subscriber, { lastSent: -1, chain: Promise.resolve() });
    if (this.published) await this.sendTo(subscriber, this.published);
    return () => this.subscribers.delete(subscriber);
  }

  private async storedVersion(): Promise<number> {
    const row = await this.options.db.selectFrom('config_state').select('version').where('id', '=', 1).executeTakeFirstOrThrow();
    return Number(row.version);
  }

  private async pollVersion(): Promise<void> {
    try {
      if ((await this.storedVersion()) !== this.published?.version) await this.changed();
    } catch (error) {
      this.options.logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'config version poll failed');
    }
  }

  private async drain(): Promise<void> {
    while (this.dirty) {
      this.dirty = false;
      try {
        await this.compileAndPush();
      } catch (error) {
        this.options.logger.error({ err: error instanceof Error ? error.message : String(error) }, 'snapshot compile failed; nodes keep the previous one');
      }
    }
  }

  private async compileAndPush(): Promise<void> {
    const { db, box, signingKey, trustedKeys, logger } = this.options;
    const previous = this.published;
    // One cheap read first: a replica hears its own NOTIFY after its own change, and polls find nothing
    // new most of the time; neither should cost a read of every key.
    if (previous && (await this.storedVersion()) <= previous.version) return;
    const config = await readConfig(db);
    if (previous && config.version <= previous.version) return;
    // Sealed values (server and session secrets) need the data key: a change to either is a whole snapshot.
    const serversUnchanged =
      previous !== null && previous.serversDigest === config.serversDigest && previous.sessionSecretsDigest === config.sessionSecretsDigest;
    const dataKey = serversUnchanged ? previous.dataKey : generateDataKey();
    const issuedAt = new Date().toISOString();
    const keySig = new Map(config.keyRows.map((k) => [k.id, keyRowSignature(k)]));
    const userSig = new Map(config.users.map((u) => [u.id, u.email]));
    let delta: Published['delta'] = null;
    if (serversUnchanged) {
      const body: SnapshotDelta = {
        format: SNAPSHOT_FORMAT,
        kind: 'delta',
        baseVersion: previous.version,
        version: config.version,
        issuedAt,
        trustedKeys,
        upsertKeys: config.keyRows.filter((k) => previous.keySig.get(k.id) !== keySig.get(k.id)).map(keyEntry),
        removeKeyIds: [...previous.keySig.keys()].filter((id) => !keySig.has(id)),
        upsertUsers: config.users.filter((u) => previous.userSig.get(u.id) !== userSig.get(u.id)),
        removeUserIds: [...previous.userSig.keys()].filter((id) => !userSig.has(id)),
      };
      delta = { baseVersion: previous.version, signed: await signSnapshot(body, signingKey) };
    }
    const published: Published = {
      version: config.version,
      issuedAt,
      servers: serversUnchanged ? previous.servers : sealServers(config.serverRows, box, dataKey),
      users: config.users,
      keyRows: config.keyRows,
      dataKey,
      serversDigest: config.serversDigest,
      sessionSecrets: serversUnchanged ? previous.sessionSecrets : sealSessionSecrets(config.sessionSecretRows, box, dataKey),
      sessionSecretsDigest: config.sessionSecretsDigest,
      keySig,
      userSig,
      full: null,
      delta,
    };
    this.published = published;
    logger.info(
      { version: published.version, servers: published.servers.length, keys: published.keyRows.length, nodes: this.subscribers.size, delta: delta !== null },
      'snapshot published',
    );
    await Promise.all([...this.subscribers.keys()].map((s) => this.sendTo(s, published)));
  }

  private fullSnapshot(published: Published): Promise<SignedSnapshot> {
    published.full ??= signSnapshot(
      {
        format: SNAPSHOT_FORMAT,
        version: published.version,
        issuedAt: published.issuedAt,
        trustedKeys: this.options.trustedKeys,
        servers: published.servers,
        users: published.users,
        keys: published.keyRows.map(keyEntry),
        sessionSecrets: published.sessionSecrets,
      },
      this.options.signingKey,
    );
    return published.full;
  }

  /** Sends in version order and never an older version after a newer one (a node would call it a rollback). */
  private sendTo(subscriber: Subscriber, published: Published): Promise<void> {
    const state = this.subscribers.get(subscriber);
    if (!state) return Promise.resolve();
    state.chain = state.chain.then(async () => {
      if (published.version <= state.lastSent) return;
      try {
        if (published.delta && state.lastSent === published.delta.baseVersion) {
          subscriber.sendDelta({ delta: published.delta.signed });
        } else {
          const dataKey = await wrapDataKey(published.dataKey, subscriber.nodePublicJwk);
          subscriber.send({ snapshot: await this.fullSnapshot(published), dataKey });
        }
        state.lastSent = published.version;
      } catch (error) {
        this.options.logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'could not send snapshot to a node');
      }
    });
    return state.chain;
  }
}
