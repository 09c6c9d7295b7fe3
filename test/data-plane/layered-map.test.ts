/**
 * The Runtime's copy-on-write key maps: an edit never changes the map it came from (requests in flight
 * keep reading it), reads see the overlay over the base, sizes and iteration agree with a plain Map, and
 * the overlay folds into a fresh base once large.
 */
import { describe, expect, it } from 'vitest';
import { editMap, LayeredMap } from '../../data-plane/config/layered-map.js';

describe('LayeredMap', () => {
  it('behaves as a Map across edits, leaving every earlier version untouched', () => {
    const plain = new Map(Array.from({ length: 1000 }, (_, i) => [`k${i}`, i]));
    const reference = new Map(plain);
    let current: ReadonlyMap<string, number> = plain;
    const versions: Array<[ReadonlyMap<string, number>, Map<string, number>]> = [];
    for (let step = 0; step < 600; step++) {
      const draft = editMap(current);
      const key = `k${(step * 7919) % 1200}`;
      if (step % 3 === 0) {
        draft.delete(key);
        reference.delete(key);
      } else {
        draft.set(key, -step);
        reference.set(key, -step);
      }
      current = draft.done();
      versions.push([current, new Map(reference)]);
    }
    for (const [map, expected] of versions.filter((_, i) => i % 50 === 0)) {
      expect(map.size).toBe(expected.size);
      expect(new Map(map)).toEqual(expected);
      for (const k of ['k0', 'k7', 'k1100', 'nope']) expect(map.get(k)).toBe(expected.get(k));
    }
    expect(plain.size).toBe(1000);
    expect(plain.get('k0')).toBe(0);
  });

  it('folds a large overlay into a new base', () => {
    let map: ReadonlyMap<number, number> = new Map([[0, 0]]);
    for (let i = 1; i <= 300; i++) {
      const draft = editMap(map);
      draft.set(i, i);
      map = draft.done();
    }
    expect(map.size).toBe(301);
    expect(map).toBeInstanceOf(LayeredMap);
    expect([...map.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: 301 }, (_, i) => i));
  });
});
