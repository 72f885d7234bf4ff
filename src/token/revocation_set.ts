/**
 * Revoked capabilities as every verifier holds them (in memory, for the hot
 * path), and the signed revocation list identity publishes: its
 * signing and verifying. Reading the list file is sources/revocations.ts's.
 *
 * Revocation only ever adds: a verifier merges every list it is given and
 * never forgets an entry before the token it names has expired, so a replayed
 * or stale list cannot bring a revoked token back.
 * @module
 */

import type { KeyLookup } from "./key_set.ts";
import { b64url, fromB64url, type SigningKey } from "./keys.ts";
import { openV4Public, parseV4Public, readJson, signV4Public } from "./paseto.ts";

/** One revoked capability: its id and when its token expires (unix seconds). */
export interface RevokedEntry {
  cap_id: string;
  exp: number;
}

/**
 * The entries of a list line as read from its bytes ({@link openRevocationListNow}): each
 * id as its four words (the 32 hex digits, big-endian, as {@link RevocationSet} holds it)
 * beside its expiry, with no string or object made per entry. A service that starts reads
 * every line of the list file (100,000 entries after a load): JSON.parse, checking each
 * entry and reading its hex again for the set cost a new process about 110 ms there.
 */
export class PackedEntries implements Iterable<RevokedEntry> {
  /** `words`: 4 per entry; `exps`: one per entry. */
  constructor(readonly words: Uint32Array, readonly exps: Float64Array) {}

  /** How many entries. */
  get length(): number {
    return this.exps.length;
  }

  /** The id of entry `i`, as 32 lowercase hex digits. */
  idAt(i: number): string {
    return idOfWords(this.words, i * 4);
  }

  /**
   * The entries as packed: `entries` with every id 32 lowercase hex digits,
   * else undefined.
   */
  static of(entries: readonly RevokedEntry[]): PackedEntries | undefined {
    const words = new Uint32Array(entries.length * 4);
    const exps = new Float64Array(entries.length);
    for (let i = 0; i < entries.length; i++) {
      if (!readKey(entries[i].cap_id)) return undefined;
      words.set(KEY, i * 4);
      exps[i] = entries[i].exp;
    }
    return new PackedEntries(words, exps);
  }

  /** Entries `from` to `to` (not included), sharing this one's memory. */
  slice(from: number, to: number = this.length): PackedEntries {
    return new PackedEntries(this.words.subarray(from * 4, to * 4), this.exps.subarray(from, to));
  }

  /**
   * The entries in order of expiry, those of the same expiry in the order
   * they are here (as a stable sort of the objects by `exp` gives). When the
   * expiries are whole seconds within {@link COUNTING_SPAN} of each other or
   * four a entry (the usual case: tokens revoked within a day), by counting
   * them per second, with no comparison; else by a comparator sort. At
   * identity's start every live revocation is written to the list file in
   * this order, and a comparator sort of 60,000 objects took longer than
   * signing all of them.
   */
  sortedByExpiry(): PackedEntries {
    const n = this.length;
    const exps = this.exps;
    let lo = Infinity, hi = -Infinity, whole = true;
    for (let i = 0; i < n && whole; i++) {
      const x = exps[i];
      whole = Number.isInteger(x);
      if (x < lo) lo = x;
      if (x > hi) hi = x;
    }
    const order = new Uint32Array(n);
    if (n > 0 && whole && hi - lo < Math.max(COUNTING_SPAN, 4 * n)) {
      // Where each second's entries start, then each entry in its place.
      const start = new Uint32Array(hi - lo + 2);
      for (let i = 0; i < n; i++) start[exps[i] - lo + 1]++;
      for (let s = 1; s < start.length; s++) start[s] += start[s - 1];
      for (let i = 0; i < n; i++) order[start[exps[i] - lo]++] = i;
    } else {
      for (let i = 0; i < n; i++) order[i] = i;
      order.sort((a, b) => exps[a] - exps[b] || a - b);
    }
    const from = this.words;
    const words = new Uint32Array(n * 4);
    const sorted = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const j = order[i];
      words[i * 4] = from[j * 4];
      words[i * 4 + 1] = from[j * 4 + 1];
      words[i * 4 + 2] = from[j * 4 + 2];
      words[i * 4 + 3] = from[j * 4 + 3];
      sorted[i] = exps[j];
    }
    return new PackedEntries(words, sorted);
  }

  /** The entries as objects (made on each call). */
  toArray(): RevokedEntry[] {
    return Array.from(
      { length: this.length },
      (_, i) => ({ cap_id: this.idAt(i), exp: this.exps[i] }),
    );
  }

  [Symbol.iterator](): Iterator<RevokedEntry> {
    return this.toArray()[Symbol.iterator]();
  }
}

/** Seconds between the first and last expiry that {@link PackedEntries.sortedByExpiry} counts in any case (a day). */
const COUNTING_SPAN = 86_400;

/** What a revocation feed delivers: entries as objects, or as a list line's {@link PackedEntries}. */
export type RevokedBatch = readonly RevokedEntry[] | PackedEntries;

const ID_BYTES = new Uint8Array(16);
const ID_VIEW = new DataView(ID_BYTES.buffer);

/** The id whose four words start at `at` in `words`: the words big-endian, hex-encoded natively. */
export function idOfWords(words: Uint32Array, at: number): string {
  for (let w = 0; w < 4; w++) ID_VIEW.setUint32(w * 4, words[at + w]);
  return ID_BYTES.toHex();
}

/** An expiry as the table holds it: 1..2^32-1 (before 1 s is as expired as 0, after 2106 as far off as 2106). */
function heldExp(exp: number): number {
  return exp < 1 ? 1 : exp > 0xffffffff ? 0xffffffff : exp;
}

/** The payload type of a signed revocation list. */
export const REVOCATION_LIST_TYPE = "strata.revocations";

/** The largest signed list accepted (16 MiB of token text). */
const MAX_LIST_LENGTH = 16 * 1024 * 1024;

/** Slots of an empty table (a power of two). */
const MIN_SLOTS = 1024;

/** The most entries {@link RevocationSet.reserve} makes room for ahead (a table of 5 MB). */
const MAX_RESERVED = 1 << 17;

/** Uint32 words a slot holds: the id's 16 bytes, then its expiry (0: empty slot). */
const WORDS = 5;

/** Each lowercase hex digit's value by its character code (or byte), or 255 for any other below 256. */
const HEX = new Uint8Array(256).fill(255);
for (let i = 0; i < 16; i++) HEX["0123456789abcdef".charCodeAt(i)] = i;

const ID_WORDS = new Uint32Array(4);

/**
 * The 32 lowercase hex digits at `b[at]` (the caller has made sure they are
 * there) as a string, or undefined at any other byte: made from their bytes
 * natively (String.fromCharCode of the 32 took five times as long).
 */
export function hexIdAt(b: Uint8Array, at: number): string | undefined {
  return hexWordsAt(b, at, ID_WORDS, 0) ? idOfWords(ID_WORDS, 0) : undefined;
}

/**
 * Reads the 32 lowercase hex digits at `b[at]` (the caller has made sure
 * they are there) into `words` at `w`, as four big-endian words; false at any
 * other byte.
 */
export function hexWordsAt(b: Uint8Array, at: number, words: Uint32Array, w: number): boolean {
  for (let q = 0; q < 4; q++) {
    let v = 0;
    for (let k = 0; k < 8; k++) {
      const d = HEX[b[at++]];
      if (d === 255) return false;
      v = (v << 4) | d;
    }
    words[w + q] = v;
  }
  return true;
}

/** Whether `b` holds the bytes of `what` at `at` (false past its end). */
export function bytesAt(b: Uint8Array, at: number, what: Uint8Array): boolean {
  if (at + what.length > b.length) return false;
  for (let k = 0; k < what.length; k++) if (b[at + k] !== what[k]) return false;
  return true;
}

/**
 * Reads a whole number written as plain digits at `b[at]`, before `end`: 1
 * to 15 digits, no leading zero (so no sign, fraction or exponent: text
 * JSON.parse reads as the same safe integer). Puts it in `out[k]` and returns
 * where the digits end, or -1 for any other spelling.
 */
export function wholeAt(
  b: Uint8Array,
  at: number,
  end: number,
  out: Float64Array,
  k: number,
): number {
  const first = at;
  let v = 0;
  for (; at < end && at - first < 16 && b[at] >= 0x30 && b[at] <= 0x39; at++) {
    v = v * 10 + b[at] - 0x30;
  }
  const digits = at - first;
  if (digits === 0 || digits > 15 || (digits > 1 && b[first] === 0x30)) return -1;
  out[k] = v;
  return at;
}

/**
 * Where the JSON string whose text starts at `b[at]` closes, before `end`:
 * the index of its closing quote when its text is printable ASCII with no
 * backslash (no escape to read), else -1.
 */
export function plainStringEnd(b: Uint8Array, at: number, end: number): number {
  for (; at < end; at++) {
    const c = b[at];
    if (c === 0x22) return at;
    if (c < 0x20 || c === 0x5c || c > 0x7e) return -1;
  }
  return -1;
}

/** The expiry {@link RevocationSet}'s single put goes in with. */
const ONE_EXP = new Float64Array(1);

/**
 * Reads `id` as 32 lowercase hex digits into `words` at `at`, four
 * big-endian words (`at` to `at + 3`); false for an id of any other form
 * (`words` then partly written).
 */
export function idWords(id: string, words: Uint32Array, at: number): boolean {
  if (id.length !== 32) return false;
  for (let w = 0; w < 4; w++) {
    let v = 0;
    for (let i = w * 8, end = i + 8; i < end; i++) {
      const c = id.charCodeAt(i);
      const d = c < 256 ? HEX[c] : 255;
      if (d === 255) return false;
      v = (v << 4) | d;
    }
    words[at + w] = v;
  }
  return true;
}

/** The four words of `id` read as 32 lowercase hex digits, or false (ids of any other form). */
const KEY = new Uint32Array(4);
function readKey(id: string): boolean {
  return idWords(id, KEY, 0);
}

/**
 * The home slot of an id whose first word is `k0`: murmur3's finalizer of
 * k0 mixed with the set's own random seed, top `32 - shift` bits. The seed
 * matters: entries() lists ids in slot order, so a set that took them in
 * that order under the same hash would pile every id into one run (100,000
 * revocations took fs 5 s to load instead of 0.2).
 */
export function slotOf(k0: number, seed: number, shift: number): number {
  let h = k0 ^ seed;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> shift;
}

/**
 * The revoked capability ids a verifier knows of. Every service holds one,
 * of up to tens of thousands of entries after a burst of revocations, so a
 * 32-hex id is kept as its 16 bytes beside its expiry in one open-addressed
 * table (20 bytes a slot; a Map of strings and expiries took ~85 bytes an
 * entry). Ids of any other form go to a plain Map, so the answers are the
 * same for every string.
 */
export class RevocationSet {
  #table = new Uint32Array(MIN_SLOTS * WORDS);
  #mask = MIN_SLOTS - 1;
  /** 32 - log2(slots), for slotOf. */
  #shift = 32 - Math.log2(MIN_SLOTS);
  #seed = crypto.getRandomValues(new Uint32Array(1))[0];
  #count = 0;
  /** At most the earliest expiry in the table (an entry's raised expiry leaves it lower): prune's shortcut. */
  #soonest = Infinity;
  #other = new Map<string, number>();

  /** How many entries are held. */
  get size(): number {
    return this.#count + this.#other.size;
  }

  /** Whether this capability id is revoked. */
  has(capId: string): boolean {
    if (this.#count !== 0 && capId.length === 32 && this.#holds(capId)) return true;
    return this.#other.size !== 0 && this.#other.has(capId);
  }

  /**
   * Whether the table holds `id` (32 characters): only its first 8 digits
   * are read to find its slot, and the rest only when a slot's first word
   * matches, so an id that is not revoked (the usual case) costs little.
   */
  #holds(id: string): boolean {
    let k0 = 0;
    for (let i = 0; i < 8; i++) {
      const c = id.charCodeAt(i);
      const d = c < 256 ? HEX[c] : 255;
      if (d === 255) return false;
      k0 = (k0 << 4) | d;
    }
    k0 >>>= 0;
    const t = this.#table;
    const mask = this.#mask;
    for (let i = slotOf(k0, this.#seed, this.#shift);; i = (i + 1) & mask) {
      const at = i * WORDS;
      if (t[at + 4] === 0) return false;
      if (t[at] === k0) return readKey(id) && this.#find() >= 0;
    }
  }

  /** Returns the first revoked id of a lineage (ancestors, then the token). */
  revokedIn(lineage: readonly string[]): string | undefined {
    if (this.#count === 0 && this.#other.size === 0) return undefined;
    for (const id of lineage) if (this.has(id)) return id;
    return undefined;
  }

  /**
   * Makes room for `total` entries at once (at most {@link MAX_RESERVED}), so
   * a set about to take a whole list file is not rebuilt at every doubling
   * on the way (a third of what adding 100,000 entries cost a new process).
   */
  reserve(total: number): void {
    const n = Math.min(total, MAX_RESERVED);
    if (n * 4 > (this.#mask + 1) * 3) this.#rebuild(n, () => true);
  }

  /** Merges entries; returns the ids that were not known before. */
  add(entries: Iterable<RevokedEntry> | PackedEntries): string[] {
    const added: string[] = [];
    this.merge(entries, added);
    return added;
  }

  /**
   * Merges entries; returns how many were not known before, and pushes their
   * ids onto `added` when given. Without it no id string is made for a packed
   * line's entries (a service reading the list file at start, with no handle
   * or entry to drop, needs only the count).
   */
  merge(entries: Iterable<RevokedEntry> | PackedEntries, added?: string[]): number {
    // A list line's entries go in as read, with no hex to read again.
    if (entries instanceof PackedEntries) return this.#putAll(entries.words, entries.exps, added);
    let n = 0;
    for (const e of entries) {
      if (readKey(e.cap_id)) {
        if (this.#put(heldExp(e.exp))) {
          n++;
          added?.push(e.cap_id);
        }
        continue;
      }
      const known = this.#other.get(e.cap_id);
      if (known === undefined) {
        n++;
        added?.push(e.cap_id);
      }
      this.#other.set(e.cap_id, Math.max(e.exp, known ?? 0));
    }
    return n;
  }

  /** Puts KEY in with `exp`, or raises its expiry to `exp`; whether it was new. */
  #put(exp: number): boolean {
    ONE_EXP[0] = exp;
    return this.#putAll(KEY, ONE_EXP) === 1;
  }

  /**
   * Puts each id of `words` (four words an id) in with its expiry from
   * `exps`, or raises a held one's expiry to it; returns how many were new,
   * and pushes their ids onto `added` when given. One probe finds either an
   * id's slot or the empty slot it goes in (the table grows first when one
   * more entry would fill it past 3/4). The probe is written out in this one
   * loop (no call per entry), so that V8 optimises it while it runs: a
   * service that starts puts every entry of the list file in here before its
   * code has warmed up (a call per entry took it 78 ms against 49 for 100,000).
   */
  #putAll(words: Uint32Array, exps: Float64Array, added?: string[]): number {
    const seed = this.#seed;
    let n = 0;
    let t = this.#table, mask = this.#mask, shift = this.#shift;
    for (let e = 0; e < exps.length; e++) {
      if ((this.#count + 1) * 4 > (mask + 1) * 3) {
        this.#rebuild(this.#count + 1, () => true);
        t = this.#table;
        mask = this.#mask;
        shift = this.#shift;
      }
      const x = exps[e];
      const exp = x < 1 ? 1 : x > 0xffffffff ? 0xffffffff : x; // heldExp, written out
      const w = e * 4;
      const k0 = words[w], k1 = words[w + 1], k2 = words[w + 2], k3 = words[w + 3];
      let h = k0 ^ seed; // slotOf, written out
      h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
      h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
      for (let i = (h ^ (h >>> 16)) >>> shift;; i = (i + 1) & mask) {
        const at = i * WORDS;
        const held = t[at + 4];
        if (held === 0) {
          t[at] = k0;
          t[at + 1] = k1;
          t[at + 2] = k2;
          t[at + 3] = k3;
          t[at + 4] = exp;
          this.#count++;
          if (exp < this.#soonest) this.#soonest = exp;
          n++;
          added?.push(idOfWords(words, w));
          break;
        }
        if (t[at] === k0 && t[at + 1] === k1 && t[at + 2] === k2 && t[at + 3] === k3) {
          if (exp > held) t[at + 4] = exp;
          break;
        }
      }
    }
    return n;
  }

  /** Drops entries whose tokens expired before `nowMs` (they can never verify). */
  prune(nowMs: number = Date.now()): void {
    for (const [id, exp] of this.#other) if (exp * 1000 < nowMs) this.#other.delete(id);
    // None can have expired: no pass over the table (every service prunes every second).
    if (this.#soonest * 1000 >= nowMs) return;
    const t = this.#table;
    let kept = 0;
    let soonest = Infinity;
    for (let at = 4; at < t.length; at += WORDS) {
      if (t[at] !== 0 && t[at] * 1000 >= nowMs) {
        kept++;
        if (t[at] < soonest) soonest = t[at];
      }
    }
    if (kept === this.#count) {
      this.#soonest = soonest; // exact again (a raised expiry had left it lower)
      return;
    }
    // Rebuilt without the expired ones (no tombstones to skip on the hot path).
    this.#rebuild(kept, (exp) => exp * 1000 >= nowMs);
  }

  /**
   * All entries as packed, in the order of {@link entries}, with no string or
   * object made per entry; undefined when an id is held that is not 32
   * lowercase hex digits.
   */
  packed(): PackedEntries | undefined {
    if (this.#other.size !== 0) return undefined;
    const t = this.#table;
    const words = new Uint32Array(this.#count * 4);
    const exps = new Float64Array(this.#count);
    let n = 0;
    for (let at = 0; at < t.length; at += WORDS) {
      if (t[at + 4] === 0) continue;
      words[n * 4] = t[at];
      words[n * 4 + 1] = t[at + 1];
      words[n * 4 + 2] = t[at + 2];
      words[n * 4 + 3] = t[at + 3];
      exps[n++] = t[at + 4];
    }
    return new PackedEntries(words, exps);
  }

  /** All entries. */
  entries(): RevokedEntry[] {
    const out: RevokedEntry[] = [];
    const t = this.#table;
    for (let at = 0; at < t.length; at += WORDS) {
      if (t[at + 4] !== 0) out.push({ cap_id: idOfWords(t, at), exp: t[at + 4] });
    }
    for (const [cap_id, exp] of this.#other) out.push({ cap_id, exp });
    return out;
  }

  /** The word offset of KEY's slot, or -1. */
  #find(): number {
    const t = this.#table;
    const k0 = KEY[0], k1 = KEY[1], k2 = KEY[2], k3 = KEY[3];
    let i = slotOf(k0, this.#seed, this.#shift);
    for (;;) {
      const at = i * WORDS;
      if (t[at + 4] === 0) return -1;
      if (t[at] === k0 && t[at + 1] === k1 && t[at + 2] === k2 && t[at + 3] === k3) return at;
      i = (i + 1) & this.#mask;
    }
  }

  /** A table sized for `count` entries holding the current ones that `keep` accepts. */
  #rebuild(count: number, keep: (exp: number) => boolean): void {
    let slots = MIN_SLOTS;
    while (count * 4 > slots * 3) slots *= 2;
    const old = this.#table;
    const t = new Uint32Array(slots * WORDS);
    // Its pages taken in order now: a fresh table's first touches, made at
    // random by the inserts, cost a new process about twice as much (5 MB:
    // ~8 ms against ~4). Nearly every page holds an entry soon anyway.
    t.fill(0);
    const mask = slots - 1;
    const shift = 32 - Math.log2(slots);
    let n = 0;
    let soonest = Infinity;
    for (let at = 0; at < old.length; at += WORDS) {
      const exp = old[at + 4];
      if (exp === 0 || !keep(exp)) continue;
      if (exp < soonest) soonest = exp;
      let i = slotOf(old[at], this.#seed, shift);
      while (t[i * WORDS + 4] !== 0) i = (i + 1) & mask;
      const to = i * WORDS;
      t[to] = old[at];
      t[to + 1] = old[at + 1];
      t[to + 2] = old[at + 2];
      t[to + 3] = old[at + 3];
      t[to + 4] = exp;
      n++;
    }
    this.#table = t;
    this.#mask = mask;
    this.#shift = shift;
    this.#count = n;
    this.#soonest = soonest;
  }
}

/** Signs a revocation list (used by identity for the list file, and for etcd in cluster mode). */
export async function signRevocationList(
  key: SigningKey,
  issuer: string,
  revoked: RevokedEntry[],
  packed = false,
): Promise<string> {
  return await signRevocationListNow(key, issuer, revoked, packed);
}

/**
 * {@link signRevocationList} without a promise (the signature is synchronous).
 * `packed`: the entries as `revoked_packed` ({@link packEntries}) when every id
 * is 32 lowercase hex digits (identity's list file, written whole); else, and
 * by default (a batch's line, which etcd stores as well), as `revoked`.
 */
export function signRevocationListNow(
  key: SigningKey,
  issuer: string,
  revoked: RevokedEntry[] | PackedEntries,
  packed = false,
): string {
  const head = { typ: REVOCATION_LIST_TYPE, iss: issuer, iat: new Date().toISOString() };
  const text = !packed
    ? undefined
    : revoked instanceof PackedEntries
    ? packedWords(revoked)
    : packedText(revoked);
  const form = text !== undefined
    ? { revoked_packed: text }
    : { revoked: revoked instanceof PackedEntries ? revoked.toArray() : revoked };
  return signV4Public(key, { ...head, ...form });
}

/** Bytes an entry takes in `revoked_packed`: the id's 16, then the expiry's 4 (big-endian). */
const PACKED_ENTRY_BYTES = 20;

/**
 * Entries as `revoked_packed` holds them: unpadded base64url of 20 bytes each,
 * the id's 16 bytes (its 32 hex digits) then its expiry as a big-endian
 * unsigned 32-bit number of seconds (below 0 written as 0, past 2106 as
 * 2^32-1, as a {@link RevocationSet} holds them anyway). Every id must be 32
 * lowercase hex digits. A line of 1,000 entries is 35,900 characters of token
 * against 84,300 for the same as JSON objects, and a service that starts
 * hashes (for the signature), decodes and reads every character of the file.
 */
export function packEntries(entries: readonly RevokedEntry[]): string {
  const text = packedText(entries);
  if (text === undefined) {
    const odd = entries.find((e) => !readKey(e.cap_id))!;
    throw new Error(`revocation list: cannot pack the id ${odd.cap_id}`);
  }
  return text;
}

/** {@link packEntries}, or undefined when an id is not 32 lowercase hex digits. */
function packedText(entries: readonly RevokedEntry[]): string | undefined {
  const packed = PackedEntries.of(entries);
  return packed && packedWords(packed);
}

/** {@link packEntries} of entries already packed: their words as they are, no hex read. */
function packedWords(entries: PackedEntries): string {
  const n = entries.length;
  const bytes = new Uint8Array(n * PACKED_ENTRY_BYTES);
  const view = new DataView(bytes.buffer);
  const { words, exps } = entries;
  for (let i = 0; i < n; i++) {
    const at = i * PACKED_ENTRY_BYTES;
    view.setUint32(at, words[i * 4]);
    view.setUint32(at + 4, words[i * 4 + 1]);
    view.setUint32(at + 8, words[i * 4 + 2]);
    view.setUint32(at + 12, words[i * 4 + 3]);
    const e = exps[i];
    view.setUint32(at + 16, e < 0 ? 0 : e > 0xffffffff ? 0xffffffff : Math.floor(e));
  }
  return b64url(bytes);
}

/** The entries of a `revoked_packed` text, or undefined when it is not canonical base64url of whole entries. */
export function unpackEntries(text: string): PackedEntries | undefined {
  const bytes = fromB64url(text);
  if (bytes === undefined || bytes.length % PACKED_ENTRY_BYTES !== 0) return undefined;
  const n = bytes.length / PACKED_ENTRY_BYTES;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const words = new Uint32Array(n * 4);
  const exps = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const at = i * PACKED_ENTRY_BYTES;
    words[i * 4] = view.getUint32(at);
    words[i * 4 + 1] = view.getUint32(at + 4);
    words[i * 4 + 2] = view.getUint32(at + 8);
    words[i * 4 + 3] = view.getUint32(at + 12);
    exps[i] = view.getUint32(at + 16);
  }
  return new PackedEntries(words, exps);
}

/**
 * The entries of a list this node signed itself, read without checking its
 * signature: identity repacks the lines it wrote when their entries expire.
 */
export function ownListEntries(signed: string): RevokedEntry[] {
  const p = parseV4Public(signed, MAX_LIST_LENGTH);
  const payload = JSON.parse(new TextDecoder().decode(p.message)) as {
    revoked?: RevokedEntry[];
    revoked_packed?: string;
  };
  if (typeof payload.revoked_packed === "string") {
    const packed = unpackEntries(payload.revoked_packed);
    if (packed === undefined) throw new Error("revocation list: malformed revoked_packed");
    return packed.toArray();
  }
  return payload.revoked ?? [];
}

/**
 * What identifies a signed list by its signature: the last 88 characters of
 * its body, which hold the whole 64-byte signature whatever the body's
 * length (empty for a line too short to be a list). Two lines with the same
 * part carry the same signature, so either the same signed list or a forgery.
 */
export function listSignaturePart(line: string): string {
  const dot = line.indexOf(".", 10); // after "v4.public."
  // Copied: a slice would keep the whole line (tens of KB) alive with it.
  return dot >= 10 + 88 ? [...line.slice(dot - 88, dot)].join("") : "";
}

/** Whether `x` is a well-formed revocation entry (a 32-hex cap_id and an integer exp). */
export function isRevokedEntry(x: unknown): x is RevokedEntry {
  const e = x as RevokedEntry;
  // The table's own hex reading checks the id (a regex per id took 13-17 ms of
  // the 83-116 a new process took to read a list of 70,000).
  return typeof e === "object" && e !== null && typeof e.cap_id === "string" &&
    readKey(e.cap_id) && Number.isSafeInteger(e.exp);
}

/**
 * Verifies a signed revocation list against the key set and returns its
 * entries. Throws when the signature, issuer or shape is wrong.
 */
export async function openRevocationList(
  signed: string,
  keys: KeyLookup,
  issuer: string,
): Promise<RevokedEntry[]> {
  return [...await openRevocationListNow(signed, keys, issuer)];
}

/**
 * {@link openRevocationList} without a promise when the key is at hand (a
 * list line's usual case: no promise before the request it is read for); a promise
 * only when the key set must be read again first. Throws when it is forged.
 */
export function openRevocationListNow(
  signed: string,
  keys: KeyLookup,
  issuer: string,
): RevokedBatch | Promise<RevokedBatch> {
  const parsed = parseV4Public(signed, MAX_LIST_LENGTH);
  const key = keys.get(parsed.footer.kid);
  const read = (message: Uint8Array) => readList(message, issuer);
  if (key instanceof Promise) {
    return key.then(async (k) => await openV4Public(parsed, k, read) as RevokedBatch);
  }
  // A WebCrypto key checks with a promise (what readList returns never is one).
  return openV4Public(parsed, key, read) as RevokedBatch | Promise<RevokedBatch>;
}

/**
 * A list's entries: read straight from the bytes when the payload is in the
 * exact form identity writes ({@link scanList}), else parsed as JSON and checked.
 */
function readList(message: Uint8Array, issuer: string): RevokedBatch {
  return scanList(message, issuer) ?? listEntries(readJson(message), issuer);
}

const ascii = new TextEncoder();
const ENTRY_START = ascii.encode('{"cap_id":"');
const ENTRY_EXP = ascii.encode('","exp":');
const LIST_HEAD_END = ascii.encode('","revoked":[');
const PACKED_HEAD_END = ascii.encode('","revoked_packed":"');
/** Bytes as characters: ASCII as itself (base64url is ASCII; any other byte is refused after). */
const latin1 = new TextDecoder("latin1");
/** The fewest bytes of an entry and the byte after it: `{"cap_id":"<32 hex>","exp":0},`. */
const ENTRY_MIN = 54;
/** The bytes a list of `issuer` starts with, up to its iat's text (the last issuer's, kept). */
let head = { issuer: "", bytes: new Uint8Array(0) };

/**
 * The entries of a list payload in the exact form JSON.stringify gives
 * identity's `{typ, iss, iat, revoked: [{cap_id, exp}]}`: that type, `issuer`,
 * an iat of printable ASCII with no escape, ids of 32 lowercase hex digits and
 * expiries of 1 to 15 digits with no leading zero; or its
 * `{typ, iss, iat, revoked_packed}`, the same head and canonical base64url of
 * whole 20-byte entries with no escape ({@link unpackEntries}). Undefined for
 * anything else, which is then parsed as JSON and judged as before: what this
 * reads is exactly what JSON.parse and the checks would make of the same bytes.
 */
export function scanList(b: Uint8Array, issuer: string): PackedEntries | undefined {
  if (head.issuer !== issuer || head.bytes.length === 0) {
    const text = `{"typ":${JSON.stringify(REVOCATION_LIST_TYPE)},"iss":${
      JSON.stringify(issuer)
    },"iat":"`;
    head = { issuer, bytes: ascii.encode(text) };
  }
  if (!bytesAt(b, 0, head.bytes)) return undefined;
  // The iat's text: printable ASCII, no quote or backslash before its closing quote.
  let at = plainStringEnd(b, head.bytes.length, b.length);
  if (at < 0) return undefined;
  // `","revoked_packed":"` or `","revoked":[`, told apart by the byte after "revoked".
  if (b[at + 10] === PACKED_HEAD_END[10]) return scanPacked(b, at);
  if (!bytesAt(b, at, LIST_HEAD_END)) return undefined;
  at += LIST_HEAD_END.length;
  // An entry takes at least 54 bytes with what follows it (its id, one digit, "}" and a
  // comma or "]"): room for all of them. A read past the end (of a "}", a "," or "]", or the
  // head's end when the iat has no closing quote) gives undefined, which matches no byte.
  const most = Math.floor((b.length - at) / ENTRY_MIN) + 1;
  const words = new Uint32Array(most * 4);
  const exps = new Float64Array(most);
  let n = 0;
  if (b[at] === 0x5d) at++; // an empty list
  else {
    for (;;) {
      if (at + ENTRY_MIN > b.length || !bytesAt(b, at, ENTRY_START)) return undefined;
      at += ENTRY_START.length;
      if (!hexWordsAt(b, at, words, n * 4)) return undefined;
      at += 32;
      if (!bytesAt(b, at, ENTRY_EXP)) return undefined;
      at = wholeAt(b, at + ENTRY_EXP.length, b.length, exps, n);
      if (at < 0 || b[at++] !== 0x7d) return undefined;
      n++;
      const next = b[at++];
      if (next === 0x5d) break;
      if (next !== 0x2c) return undefined;
    }
  }
  if (at !== b.length - 1 || b[at] !== 0x7d) return undefined;
  return new PackedEntries(words.subarray(0, n * 4), exps.subarray(0, n));
}

/**
 * {@link scanList} of a packed list, `at` on the quote that closes the iat:
 * `","revoked_packed":"<base64url>"}` to the last byte.
 */
function scanPacked(b: Uint8Array, at: number): PackedEntries | undefined {
  if (!bytesAt(b, at, PACKED_HEAD_END)) return undefined;
  at += PACKED_HEAD_END.length;
  const end = b.length - 2;
  if (end < at || b[end] !== 0x22 || b[end + 1] !== 0x7d) return undefined;
  // A quote or backslash before `end` is not base64url: refused by unpackEntries.
  return unpackEntries(latin1.decode(b.subarray(at, end)));
}

function listEntries(opened: unknown, issuer: string): RevokedBatch {
  const payload = opened as Record<string, unknown>;
  if (payload?.typ !== REVOCATION_LIST_TYPE || payload.iss !== issuer) {
    throw new Error("revocation list: wrong type or issuer");
  }
  if (payload.revoked_packed !== undefined) {
    const packed = payload.revoked === undefined && typeof payload.revoked_packed === "string"
      ? unpackEntries(payload.revoked_packed)
      : undefined;
    if (packed === undefined) throw new Error("revocation list: malformed entries");
    return packed;
  }
  if (!Array.isArray(payload.revoked) || !payload.revoked.every(isRevokedEntry)) {
    throw new Error("revocation list: malformed entries");
  }
  return payload.revoked;
}

/** Entries per signed line of the revocation list file (see sources/revocations.ts). */
export const LIST_CHUNK = 1000;
