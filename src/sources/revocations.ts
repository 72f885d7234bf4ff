/**
 * Where a verifier's revocations come from: a {@link RevocationSource} gives
 * a snapshot and a change feed of newly revoked capabilities, fed into the
 * in-memory RevocationSet the hot path reads. {@link FileRevocationSource} is
 * today's: the signed list file identity writes in the runtime dir, read
 * incrementally, plus the signed lists identity pushes.
 * @module
 */

import type { KeyLookup } from "../token/key_set.ts";
import {
  openRevocationList,
  openRevocationListNow,
  type RevokedEntry,
} from "../token/revocation_set.ts";
import { TokenError } from "../token/paseto.ts";
import type { Unsubscribe } from "./key_set.ts";

/** Pushed lists remembered for the poll to skip at most (their signatures, about 140 bytes each). */
const MAX_PUSHED = 4096;

/**
 * The signature part of a signed list as text: the token's last characters,
 * which hold its 64-byte signature (86 base64url characters) and its footer.
 */
function signatureOf(signed: string): string {
  return signed.slice(-SIGNATURE_TAIL);
}

/** Characters at the end of a signed list that take in its whole signature (the footer is 76). */
const SIGNATURE_TAIL = 200;

/** Revocations: every one known now, and a feed of those learned since. */
export interface RevocationSource {
  /** Every revocation the source holds now (a full read; the feed is not advanced). */
  snapshot(): Promise<RevokedEntry[]>;
  /**
   * Looks for revocations added since the last look and delivers them to the
   * feed; resolves once every subscriber has them.
   */
  poll(): Promise<void>;
  /** The change feed: `fn` runs synchronously with each batch of entries learned. */
  subscribe(fn: (entries: RevokedEntry[]) => void): Unsubscribe;
}

/** A source that also takes identity's signed pushes (the `<service>.sync` method). */
export interface PushableRevocationSource extends RevocationSource {
  /**
   * Verifies a signed list and delivers its entries before it returns (or
   * resolves, when the key set had to be read first); throws if forged.
   */
  push(signed: string): void | Promise<void>;
}

/** What a {@link FileRevocationSource} reads and checks with. */
export interface FileRevocationOptions {
  /** The keys a line's signature must verify with. */
  keys: KeyLookup;
  /** The issuer every list must name. */
  issuer: string;
}

/**
 * The revocation list file in the runtime dir, one signed list per line,
 * and identity's signed pushes. Identity writes the file whole at start and
 * appends one line per revocation, so a revocation costs the same however
 * many came before it: the source remembers how far it has read and reads
 * only the lines added since (from the start again when the file was
 * replaced). A line signed by a key not loaded yet is read again next time.
 */
export class FileRevocationSource implements PushableRevocationSource {
  #path: string;
  #o: FileRevocationOptions;
  #ino = -1;
  #offset = 0;
  #listeners = new Set<(entries: RevokedEntry[]) => void>();
  /**
   * The signatures of pushed lists already verified and delivered, which
   * identity also appends to the file: a poll that meets the same line skips
   * it instead of verifying it a second time.
   */
  #pushed = new Set<string>();

  /** A source over the signed list file at `path`, checked with `options`. */
  constructor(path: string, options: FileRevocationOptions) {
    this.#path = path;
    this.#o = options;
  }

  /** Subscribes to revocations as they are learned. */
  subscribe(fn: (entries: RevokedEntry[]) => void): Unsubscribe {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  #deliver(entries: RevokedEntry[]): void {
    if (entries.length === 0) return;
    for (const fn of this.#listeners) fn(entries);
  }

  /**
   * Verifies a signed list identity pushed and delivers its entries before
   * it returns (so a push is applied before the service answers it); a
   * promise only when the key set must be read again first. Throws when it
   * is not signed by this node's identity.
   */
  push(signed: string): void | Promise<void> {
    // A list signed by a key not loaded yet makes the lookup re-check the key set.
    const entries = openRevocationListNow(signed, this.#o.keys, this.#o.issuer);
    if (entries instanceof Promise) return entries.then((e) => this.#pushDone(signed, e));
    this.#pushDone(signed, entries);
  }

  #pushDone(signed: string, entries: RevokedEntry[]): void {
    // Bounded: a push whose line the poll never meets (the file was replaced) is forgotten.
    if (this.#pushed.size >= MAX_PUSHED) this.#pushed.clear();
    this.#pushed.add(signatureOf(signed));
    this.#deliver(entries);
  }

  /** Every entry of the file as it is now. */
  async snapshot(): Promise<RevokedEntry[]> {
    const out: RevokedEntry[] = [];
    await this.#read({ ino: -1, offset: 0 }, (e) => out.push(...e), false);
    return out;
  }

  /** Reads the lines added since the last poll and delivers their entries. */
  async poll(): Promise<void> {
    const at = { ino: this.#ino, offset: this.#offset };
    const found: RevokedEntry[] = [];
    await this.#read(at, (e) => found.push(...e), true);
    this.#ino = at.ino;
    this.#offset = at.offset;
    this.#deliver(found);
  }

  /** Reads whole lines from `at`, moving `at` past each line read. */
  async #read(
    at: { ino: number; offset: number },
    found: (entries: RevokedEntry[]) => void,
    skipPushed: boolean,
  ): Promise<void> {
    let file: Deno.FsFile;
    try {
      file = await Deno.open(this.#path, { read: true });
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return;
      throw err;
    }
    try {
      const st = await file.stat();
      if ((st.ino ?? -1) !== at.ino || st.size < at.offset) {
        // A file written whole again (compacted): its lines are not the pushed ones.
        if (skipPushed && at.ino !== -1) this.#pushed.clear();
        at.ino = st.ino ?? -1;
        at.offset = 0;
      }
      if (st.size === at.offset) return;
      await file.seek(at.offset, Deno.SeekMode.Start);
      const bytes = new Uint8Array(st.size - at.offset);
      let have = 0;
      while (have < bytes.length) {
        const n = await file.read(bytes.subarray(have));
        if (n === null) break;
        have += n;
      }
      // Only whole lines: a line being appended right now is read next time.
      const decoder = new TextDecoder();
      let start = 0;
      for (let nl = bytes.indexOf(10); nl >= 0 && nl < have; nl = bytes.indexOf(10, start)) {
        const line = decoder.decode(bytes.subarray(start, nl));
        // A line whose list was pushed, verified and delivered already: the
        // same signature means the same bytes identity signed (Ed25519 never
        // signs two lists alike), so skipping it can only leave out what the
        // set has.
        if (skipPushed && line !== "" && this.#pushed.delete(signatureOf(line))) {
          start = nl + 1;
          continue;
        }
        if (line !== "") {
          try {
            found(await openRevocationList(line, this.#o.keys, this.#o.issuer));
          } catch (err) {
            // Signed by a key not loaded yet: retry from this line next time.
            // Anything else (a torn or forged line) can never verify: skip it.
            if (err instanceof TokenError && err.reason === "unknown_key") break;
          }
        }
        start = nl + 1;
      }
      at.offset += start;
    } finally {
      file.close();
    }
  }
}
