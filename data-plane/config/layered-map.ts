/**
 * A copy-on-write map for the Runtime's key indexes: a large shared base plus a small overlay of changes.
 * A delta that changes one key among 100,000 then costs a copy of the overlay, not of the whole map, so
 * a one-key change applies in microseconds whatever the key count; when the overlay grows past a fraction
 * of the base it is folded into a fresh base (amortised O(1) per change). Reads are a lookup in the
 * overlay, then the base. Readers see a plain `ReadonlyMap`. Pure data structure; no I/O.
 */

const DELETED: unique symbol = Symbol('deleted');
type Slot<V> = V | typeof DELETED;

/** Fold the overlay into a new base once it holds this many entries, or 1/16 of the base if more. */
const MIN_FOLD = 256;

export class LayeredMap<K, V> implements ReadonlyMap<K, V> {
  readonly #base: ReadonlyMap<K, V>;
  readonly #overlay: ReadonlyMap<K, Slot<V>>;
  readonly size: number;

  constructor(base: ReadonlyMap<K, V>, overlay: ReadonlyMap<K, Slot<V>> = new Map(), size: number = base.size) {
    this.#base = base;
    this.#overlay = overlay;
    this.size = size;
  }

  get(key: K): V | undefined {
    const slot = this.#overlay.get(key);
    if (slot !== undefined) return slot === DELETED ? undefined : slot;
    return this.#base.get(key);
  }

  has(key: K): boolean {
    return this.get(key) !== undefined;
  }

  *entries(): MapIterator<[K, V]> {
    for (const [k, v] of this.#overlay) if (v !== DELETED) yield [k, v];
    for (const [k, v] of this.#base) if (!this.#overlay.has(k)) yield [k, v];
  }

  *keys(): MapIterator<K> {
    for (const [k] of this.entries()) yield k;
  }

  *values(): MapIterator<V> {
    for (const [, v] of this.entries()) yield v;
  }

  [Symbol.iterator](): MapIterator<[K, V]> {
    return this.entries();
  }

  forEach(callback: (value: V, key: K, map: ReadonlyMap<K, V>) => void, thisArg?: unknown): void {
    for (const [k, v] of this.entries()) callback.call(thisArg, v, k, this);
  }

  /** A draft of the next version; this map stays as it is (requests in flight keep reading it). */
  edit(): LayeredMapDraft<K, V> {
    return new LayeredMapDraft(this.#base, new Map(this.#overlay), this.size);
  }
}

export class LayeredMapDraft<K, V> {
  constructor(
    private readonly base: ReadonlyMap<K, V>,
    private readonly overlay: Map<K, Slot<V>>,
    private size: number,
  ) {}

  get(key: K): V | undefined {
    const slot = this.overlay.get(key);
    if (slot !== undefined) return slot === DELETED ? undefined : slot;
    return this.base.get(key);
  }

  set(key: K, value: V): void {
    if (this.get(key) === undefined) this.size++;
    this.overlay.set(key, value);
  }

  delete(key: K): void {
    if (this.get(key) === undefined) return;
    this.size--;
    if (this.base.has(key)) this.overlay.set(key, DELETED);
    else this.overlay.delete(key);
  }

  /** Every entry, as of now (collect before changing the draft). */
  entries(): Array<[K, V]> {
    return [...new LayeredMap(this.base, this.overlay, this.size).entries()];
  }

  done(): LayeredMap<K, V> {
    const map = new LayeredMap(this.base, this.overlay, this.size);
    if (this.overlay.size < Math.max(MIN_FOLD, this.base.size / 16)) return map;
    return new LayeredMap(new Map(map.entries()));
  }
}

/** A draft over any map: a LayeredMap's own, or a fresh layer over a plain map (shared, never modified). */
export function editMap<K, V>(map: ReadonlyMap<K, V>): LayeredMapDraft<K, V> {
  return (map instanceof LayeredMap ? map : new LayeredMap(map)).edit() as LayeredMapDraft<K, V>;
}
