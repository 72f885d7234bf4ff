/**
 * Capability ids held packed, for a record that keeps thousands of them
 * (identity's issued record: src/identity/issued.ts). A 32-hex id is kept as
 * its 16 bytes, as {@link RevocationSet} keeps revoked ones; an id of any
 * other form as its string beside them, so the answers are the same for
 * every string. A `Map` of 10,000 ids held 896 KB of hash table (V8 grows an
 * ordered map that churns to twice the entries it holds) and 544 KB of id
 * strings in identity after a load.
 * @module
 */

import { idOfWords, idWords, slotOf } from "./revocation_set.ts";

/** Entries of an empty map. */
const MIN_ENTRIES = 64;

/** Entry states. */
const GONE = 0;
const HEX = 1;
const ODD = 2;

/**
 * An insertion-ordered map from capability id to a number, as `Map` is:
 * setting a held id changes its number in place, and iteration goes oldest
 * first, also while entries are deleted. Entries sit in one array in the
 * order set, deleted ones left as holes until the array is full, when the
 * live ones move to its front (or it grows, when over three quarters are
 * live); an open-addressed index finds an id's entry. Setting an id during
 * an iteration may move the entries: the iteration then throws.
 */
export class CapIdMap {
  /** Four words an entry: its id's 16 bytes (HEX entries). */
  #words = new Uint32Array(MIN_ENTRIES * 4);
  #values = new Float64Array(MIN_ENTRIES);
  #states = new Uint8Array(MIN_ENTRIES);
  /** The id of each ODD entry, by entry, and each ODD entry by id. */
  #oddIds = new Map<number, string>();
  #oddAt = new Map<string, number>();
  /** Entries in use (live or holes) from the front; the next goes here. */
  #end = 0;
  /** The first entry that may be live. */
  #start = 0;
  #size = 0;
  /** Entry + 1 for each HEX entry (0: empty), open-addressed by its first word. */
  #index = new Int32Array(MIN_ENTRIES * 2);
  #shift = 32 - Math.log2(MIN_ENTRIES * 2);
  #seed = crypto.getRandomValues(new Uint32Array(1))[0];
  /** Counts the times entries moved, so an iteration can tell. */
  #moves = 0;
  static #key = new Uint32Array(4);

  /** How many ids are held. */
  get size(): number {
    return this.#size;
  }

  /** Whether `id` is held. */
  has(id: string): boolean {
    return this.#find(id) >= 0;
  }

  /** The number held for `id`, or undefined. */
  get(id: string): number | undefined {
    const e = this.#find(id);
    return e < 0 ? undefined : this.#values[e];
  }

  /** Whether the id whose four words start at `words[at]` is held (a {@link CapIdList}'s). */
  hasWords(words: Uint32Array, at: number): boolean {
    return this.#lookup(words, at) >= 0;
  }

  /** Holds `value` for `id`: in place if held, else as the newest entry. */
  set(id: string, value: number): this {
    const held = this.#find(id);
    if (held >= 0) {
      this.#values[held] = value;
      return this;
    }
    if (this.#end === this.#states.length) this.#makeRoom();
    const e = this.#end++;
    this.#values[e] = value;
    if (idWords(id, this.#words, e * 4)) {
      this.#states[e] = HEX;
      this.#insert(e);
    } else {
      this.#states[e] = ODD;
      this.#oddIds.set(e, id);
      this.#oddAt.set(id, e);
    }
    this.#size++;
    return this;
  }

  /** Forgets `id`; whether it was held. */
  delete(id: string): boolean {
    const e = this.#find(id);
    if (e < 0) return false;
    if (this.#states[e] === HEX) this.#remove(e);
    else {
      this.#oddIds.delete(e);
      this.#oddAt.delete(id);
    }
    this.#states[e] = GONE;
    this.#size--;
    while (this.#start < this.#end && this.#states[this.#start] === GONE) this.#start++;
    return true;
  }

  /** The ids and their numbers, oldest first. */
  *entries(): IterableIterator<[string, number]> {
    const moves = this.#moves;
    for (let e = this.#start; e < this.#end; e++) {
      if (this.#moves !== moves) throw new Error("CapIdMap: set during an iteration");
      const state = this.#states[e];
      if (state === GONE) continue;
      const id = state === HEX ? idOfWords(this.#words, e * 4) : this.#oddIds.get(e)!;
      yield [id, this.#values[e]];
    }
  }

  /** The ids, oldest first. */
  *keys(): IterableIterator<string> {
    for (const [id] of this.entries()) yield id;
  }

  [Symbol.iterator](): IterableIterator<[string, number]> {
    return this.entries();
  }

  /** The entry of `id`, or -1. */
  #find(id: string): number {
    if (idWords(id, CapIdMap.#key, 0)) return this.#lookup(CapIdMap.#key, 0);
    return this.#oddAt.get(id) ?? -1;
  }

  /** The HEX entry whose id is the four words at `key[at]`, or -1. */
  #lookup(key: Uint32Array, at: number): number {
    const k0 = key[at], k1 = key[at + 1], k2 = key[at + 2], k3 = key[at + 3];
    const index = this.#index;
    const mask = index.length - 1;
    const w = this.#words;
    for (let i = slotOf(k0, this.#seed, this.#shift);; i = (i + 1) & mask) {
      const e = index[i] - 1;
      if (e < 0) return -1;
      const x = e * 4;
      if (w[x] === k0 && w[x + 1] === k1 && w[x + 2] === k2 && w[x + 3] === k3) return e;
    }
  }

  /** The home slot of HEX entry `e`. */
  #home(e: number): number {
    return slotOf(this.#words[e * 4], this.#seed, this.#shift);
  }

  /** Puts HEX entry `e` in the index. */
  #insert(e: number): void {
    const index = this.#index;
    const mask = index.length - 1;
    let i = this.#home(e);
    while (index[i] !== 0) i = (i + 1) & mask;
    index[i] = e + 1;
  }

  /** Takes HEX entry `e` out of the index, moving later ones of its run back (no tombstones). */
  #remove(e: number): void {
    const index = this.#index;
    const mask = index.length - 1;
    let i = this.#home(e);
    while (index[i] !== e + 1) i = (i + 1) & mask;
    let hole = i;
    for (let j = (i + 1) & mask; index[j] !== 0; j = (j + 1) & mask) {
      const home = this.#home(index[j] - 1);
      // Entry j may fill the hole unless its home lies cyclically in (hole, j].
      const between = hole <= j ? home > hole && home <= j : home > hole || home <= j;
      if (!between) {
        index[hole] = index[j];
        hole = j;
      }
    }
    index[hole] = 0;
  }

  /**
   * The entries are full: the live ones move to the front, into an array
   * twice the size when more than three quarters of it are live, and the
   * index is made again for them.
   */
  #makeRoom(): void {
    const entries = this.#states.length;
    const size = this.#size * 4 <= entries * 3 ? entries : entries * 2;
    const words = size === entries ? this.#words : new Uint32Array(size * 4);
    const values = size === entries ? this.#values : new Float64Array(size);
    const states = size === entries ? this.#states : new Uint8Array(size);
    const oddIds = new Map<number, string>();
    // In place, an entry only ever moves to the front of where it was read from.
    let to = 0;
    for (let e = this.#start; e < this.#end; e++) {
      const state = this.#states[e];
      if (state === GONE) continue;
      for (let k = 0; k < 4; k++) words[to * 4 + k] = this.#words[e * 4 + k];
      values[to] = this.#values[e];
      states[to] = state;
      if (state === ODD) {
        const id = this.#oddIds.get(e)!;
        oddIds.set(to, id);
        this.#oddAt.set(id, to);
      }
      to++;
    }
    states.fill(GONE, to);
    this.#words = words;
    this.#values = values;
    this.#states = states;
    this.#oddIds = oddIds;
    this.#start = 0;
    this.#end = to;
    this.#moves++;
    const slots = size * 2;
    this.#index = new Int32Array(slots);
    this.#shift = 32 - Math.log2(slots);
    for (let e = 0; e < to; e++) if (this.#states[e] === HEX) this.#insert(e);
  }
}

/**
 * An append-only list of capability ids, packed as {@link CapIdMap} holds
 * them: a segment's ids in identity's issued record.
 */
export class CapIdList implements Iterable<string> {
  /** Four words an id (its 16 bytes); an ODD id's are zero and its string is in #odd. */
  #words = new Uint32Array(16 * 4);
  #length = 0;
  #odd = new Map<number, string>();

  /** A list of `ids`. */
  static of(ids: Iterable<string>): CapIdList {
    const list = new CapIdList();
    for (const id of ids) list.push(id);
    return list;
  }

  /** How many ids. */
  get length(): number {
    return this.#length;
  }

  /** Adds `id` at the end. */
  push(id: string): void {
    if ((this.#length + 1) * 4 > this.#words.length) {
      const more = new Uint32Array(this.#words.length * 2);
      more.set(this.#words);
      this.#words = more;
    }
    if (!idWords(id, this.#words, this.#length * 4)) {
      this.#words.fill(0, this.#length * 4, this.#length * 4 + 4);
      this.#odd.set(this.#length, id);
    }
    this.#length++;
  }

  /** The id at `i` (0 to length - 1). */
  at(i: number): string {
    return this.#odd.get(i) ?? idOfWords(this.#words, i * 4);
  }

  /** Whether `map` holds the id at `i`, without making its string (for a 32-hex id). */
  heldIn(map: CapIdMap, i: number): boolean {
    const odd = this.#odd.get(i);
    return odd === undefined ? map.hasWords(this.#words, i * 4) : map.has(odd);
  }

  *[Symbol.iterator](): IterableIterator<string> {
    for (let i = 0; i < this.#length; i++) yield this.at(i);
  }
}
