/**
 * Upstream connections kept per (server, credential identity, headers), for transports whose per-call
 * headers can only be set when the connection is opened (legacy SSE: the SDK transport sends its
 * `requestInit.headers` on its event-stream GET and on every POST, and has no per-request headers). The
 * pool opens one such connection with exactly the headers of a call (the credential's, plus allowlisted
 * caller headers) and uses it only for calls with that identity and those headers: one user's credential
 * never carries another's call, and nothing rides beside the SDK call in a side channel.
 *
 * Bounded: at most `maxPerServer` connections per server, least recently used evicted first; one idle for
 * `idleMs` (no call in flight) is closed by `sweep`. A connection with a call in flight is never evicted: when
 * every slot of a server is busy, `acquire` answers null and the caller fails that one call clearly.
 *
 * It knows nothing of MCP: values are opaque, closing them is the owner's `close` callback.
 */
import { createHash } from 'node:crypto';

export interface IdentityConnectionLimits {
  /** Connections kept per server. */
  maxPerServer: number;
  /** A connection unused (and with no call in flight) this long is closed at the next sweep. */
  idleMs: number;
}

export const DEFAULT_IDENTITY_CONNECTION_LIMITS: IdentityConnectionLimits = { maxPerServer: 64, idleMs: 5 * 60_000 };

interface Slot<T> {
  readonly value: T;
  lastUsed: number;
  inFlight: number;
}

export interface Lease<T> {
  readonly value: T;
  /** Ends this use (idempotent); the connection stays for the next call with the same key. */
  release(): void;
}

/**
 * The key of a (identity, headers) pair: a digest, so header values (credentials) are not kept as map keys
 * that might end up in a log or a heap dump's obvious places. Header names are compared lower-cased.
 */
export function identityKey(identity: string, headers: Readonly<Record<string, string>>): string {
  const hash = createHash('sha256').update(identity).update('\0');
  for (const name of Object.keys(headers).sort()) hash.update(name.toLowerCase()).update('\0').update(headers[name] ?? '').update('\0');
  return hash.digest('base64url');
}

export class IdentityConnections<T> {
  readonly #byServer = new Map<string, Map<string, Slot<T>>>();
  readonly #limits: IdentityConnectionLimits;
  readonly #close: (value: T) => void;
  readonly #now: () => number;

  constructor(limits: IdentityConnectionLimits, close: (value: T) => void, now: () => number = Date.now) {
    this.#limits = limits;
    this.#close = close;
    this.#now = now;
  }

  /**
   * The connection for (server, key), opened by `open` when there is none; null when the server already
   * has `maxPerServer` connections and every one has a call in flight.
   */
  acquire(server: string, key: string, open: () => T, accept: (value: T) => boolean = () => true): Lease<T> | null {
    let slots = this.#byServer.get(server);
    if (!slots) {
      slots = new Map();
      this.#byServer.set(server, slots);
    }
    let slot = slots.get(key);
    if (slot && !accept(slot.value)) {
      slots.delete(key);
      this.#close(slot.value);
      slot = undefined;
    }
    if (slot) {
      // Most recently used last: Map order is the eviction order.
      slots.delete(key);
      slots.set(key, slot);
    } else {
      if (slots.size >= this.#limits.maxPerServer && !this.#evictOne(slots)) return null;
      slot = { value: open(), lastUsed: this.#now(), inFlight: 0 };
      slots.set(key, slot);
    }
    const held = slot;
    held.inFlight += 1;
    held.lastUsed = this.#now();
    let released = false;
    return {
      value: held.value,
      release: () => {
        if (released) return;
        released = true;
        held.inFlight -= 1;
        held.lastUsed = this.#now();
      },
    };
  }

  /** Forgets `value` if it is still the connection for (server, key) (it failed or was closed); does not close it. */
  forget(server: string, key: string, value: T): void {
    const slots = this.#byServer.get(server);
    if (slots?.get(key)?.value !== value) return;
    slots.delete(key);
    if (slots.size === 0) this.#byServer.delete(server);
  }

  /** The connections of `server` (a copy: closing them while iterating is safe). */
  values(server: string): T[] {
    const slots = this.#byServer.get(server);
    return slots ? [...slots.values()].map((s) => s.value) : [];
  }

  /** Every server that has connections here. */
  servers(): string[] {
    return [...this.#byServer.keys()];
  }

  /** How many connections `server` has (for tests and metrics). */
  size(server: string): number {
    return this.#byServer.get(server)?.size ?? 0;
  }

  /** Closes connections idle for `idleMs` with no call in flight. */
  sweep(): void {
    const before = this.#now() - this.#limits.idleMs;
    for (const [server, slots] of this.#byServer) {
      for (const [key, slot] of slots) {
        if (slot.inFlight === 0 && slot.lastUsed <= before) {
          slots.delete(key);
          this.#close(slot.value);
        }
      }
      if (slots.size === 0) this.#byServer.delete(server);
    }
  }

  /** Evicts the least recently used connection with no call in flight; false if all are busy. */
  #evictOne(slots: Map<string, Slot<T>>): boolean {
    for (const [key, slot] of slots) {
      if (slot.inFlight > 0) continue;
      slots.delete(key);
      this.#close(slot.value);
      return true;
    }
    return false;
  }
}
