/**
 * Where a verifier's revocations come from: a {@link RevocationSource} gives
 * a snapshot and a change feed of newly revoked capabilities, fed into the
 * in-memory RevocationSet the hot path reads. {@link FileRevocationSource} is
 * today's: the signed list file identity writes in the runtime dir, held
 * open and read from where the last look stopped before every authorization.
 * @module
 */

import type { KeyLookup } from "../token/key_set.ts";
import {
  listSignaturePart,
  openRevocationList,
  openRevocationListNow,
  type RevokedBatch,
  type RevokedEntry,
} from "../token/revocation_set.ts";
import { TokenError } from "../token/paseto.ts";
import { StrataError } from "../wire/errors.ts";
import type { Unsubscribe } from "./key_set.ts";

/**
 * The line identity appends to the list file just before it replaces the
 * file (compaction, a key rotation, its start): a reader that meets it
 * looks at the path again. It is no signed list, so a reader of any
 * version skips it as a torn line.
 */
export const LIST_REPLACED_LINE = "strata:list-replaced";

/** Bytes read from the list file at a time (more while a long line is unfinished). */
const READ_CHUNK = 64 * 1024;

/**
 * An unfinished line longer than this is dropped up to its newline: a
 * signed list is at most 16 MiB of text, so it can be no list.
 */
const MAX_LINE_BYTES = 16 * 1024 * 1024 + 1024;

/** Lines signed by a key not known yet, kept to be tried again (each at most 16 MiB). */
const MAX_HELD_LINES = 64;

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
  subscribe(fn: (entries: RevokedBatch) => void): Unsubscribe;
  /** Releases what the source holds open. */
  close?(): void;
}

/**
 * A source a verifier can bring up to date before each authorization, so a
 * revocation identity has acknowledged is in effect for every request that
 * arrives after the acknowledgement.
 */
export interface CatchingUpRevocationSource extends RevocationSource {
  /**
   * Delivers every revocation written since the last look before it
   * returns; a promise only when a line's key must be looked up first.
   */
  catchUp(): void | Promise<void>;
}

/** What a {@link FileRevocationSource} reads and checks with. */
export interface FileRevocationOptions {
  /** The keys a line's signature must verify with. */
  keys: KeyLookup;
  /** The issuer every list must name. */
  issuer: string;
  /**
   * Told, as a file is opened, about how many entries it holds (by its size:
   * about 2.5% over for the full lines of a file written whole; the short
   * lines of single batches, at most 1,024 before a compaction, count a few
   * times over), so the set they go into can make room for them at once.
   */
  expect?: (entries: number) => void;
}

/**
 * The characters an entry takes in a line of a file identity wrote whole: its 20 bytes in
 * `revoked_packed` are 26⅔ characters of base64url in the payload, 35.6 of the token (a
 * file of 100,000 in full lines has 35.9 an entry with the lines' heads and signatures), so
 * a file's size over this is a little more than the entries it holds. The lines of batches
 * appended since hold entries as JSON objects, 84 characters each plus about 310 a line:
 * they are told as 2.4 times what they hold and more (a line of one entry as 11), a few
 * thousand at most before identity writes the file whole again.
 */
const MIN_ENTRY_CHARS = 35;

/**
 * Lines at least this long (hundreds of entries: the lines of a file written
 * whole) are remembered by their signature once their entries are in, so the
 * same line in the next file identity writes whole is not checked and parsed
 * again; shorter ones cost little to check again.
 */
const REMEMBERED_LINE_CHARS = 4096;

/**
 * The revocation list file in the runtime dir, one signed list per line.
 * Identity writes the file whole at start and appends one line per batch of
 * revocations before it acknowledges them; this source keeps the file open
 * and {@link catchUp} reads what was appended since (a read at the end of
 * the file costs about half a microsecond), so each request is judged with
 * every revocation acknowledged before it arrived. Identity appends
 * {@link LIST_REPLACED_LINE} to the file before it replaces it; the source
 * then opens the new file at the path and reads it whole. A line signed by
 * a key not loaded yet is held and tried again at the next poll.
 */
export class FileRevocationSource implements CatchingUpRevocationSource {
  #path: string;
  #o: FileRevocationOptions;
  #listeners = new Set<(entries: RevokedBatch) => void>();
  #file?: Deno.FsFile;
  #ino = -1;
  /** Bytes read from the open file. */
  #offset = 0;
  /** Look at the path before reading: no file open yet, or a replaced-line was read. */
  #moving = true;
  /** The bytes of a line not yet ended by its newline (being appended right now). */
  #rest: Uint8Array = new Uint8Array(0);
  #buf = new Uint8Array(READ_CHUNK);
  /** Dropping an overlong unfinished line: the bytes up to its newline are skipped. */
  #skipping = false;
  #decoder = new TextDecoder();
  /** The catch-up waiting for a key lookup (at most one). */
  #waiting?: Promise<void>;
  /** Lines whose key was not known when read: tried again at each poll. */
  #held: string[] = [];
  /**
   * The signature parts (listSignaturePart) of the long lines whose entries
   * were delivered, in the file open and in the one before it. A line with
   * the same part carries the same signature: it is either that same signed
   * list, whose entries are in already, or a forgery, which must not count;
   * either way it is skipped.
   */
  #delivered = new Set<string>();
  #deliveredBefore = new Set<string>();

  /** A source over the signed list file at `path`, checked with `options`. */
  constructor(path: string, options: FileRevocationOptions) {
    this.#path = path;
    this.#o = options;
  }

  /** Subscribes to revocations as they are learned. */
  subscribe(fn: (entries: RevokedBatch) => void): Unsubscribe {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  #deliver(entries: RevokedBatch): void {
    if (entries.length === 0) return;
    for (const fn of this.#listeners) fn(entries);
  }

  /** Every entry of the file as it is now. */
  async snapshot(): Promise<RevokedEntry[]> {
    let text: string;
    try {
      text = await Deno.readTextFile(this.#path);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return [];
      throw err;
    }
    const out: RevokedEntry[] = [];
    // Only whole lines: a line being appended right now is not in effect yet.
    for (const line of text.slice(0, text.lastIndexOf("\n") + 1).split("\n")) {
      if (line === "" || line === LIST_REPLACED_LINE) continue;
      try {
        out.push(...await openRevocationList(line, this.#o.keys, this.#o.issuer));
      } catch {
        // A torn or forged line, or one signed by a key not loaded yet.
      }
    }
    return out;
  }

  /**
   * Catches up, and also looks whether the path names another file than
   * the one open (one removed or replaced by hand, without a replaced-line),
   * and tries the held lines again.
   */
  async poll(): Promise<void> {
    if (!this.#moving && this.#file !== undefined) {
      try {
        if (Deno.statSync(this.#path).ino !== this.#ino) this.#moving = true;
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      }
      if (!this.#moving && this.#file.statSync().size < this.#offset) {
        // Written again in place, shorter (not identity's way, which renames): read it anew.
        this.#file.seekSync(0, Deno.SeekMode.Start);
        this.#offset = 0;
        this.#rest = new Uint8Array(0);
      }
    }
    await this.catchUp();
    const held = this.#held.splice(0);
    for (const line of held) await this.#open(line);
  }

  /**
   * Reads the lines appended since the last look and delivers their entries
   * before it returns; a promise only while a line's key is looked up.
   */
  catchUp(): void | Promise<void> {
    if (this.#waiting) return this.#waiting.then(() => this.catchUp());
    try {
      return this.#catchUpNow();
    } catch (err) {
      // Fail closed, and say why: without the list no request can be judged.
      throw new StrataError(
        "UNAVAILABLE",
        `revocation list ${this.#path}: ${(err as Error).message}; this service refuses ` +
          "every request until it can read the file identity writes there (a regular file " +
          "this service may read)",
        { reason: "revocation_list_unreadable" },
      );
    }
  }

  #catchUpNow(): void | Promise<void> {
    for (;;) {
      let bytes: Uint8Array | undefined;
      if (this.#moving) {
        const open = this.#file;
        if (!this.#reopen()) return;
        // Still the same file: the whole lines after the replaced-line come first.
        if (this.#file === open && this.#rest.indexOf(10) >= 0) {
          bytes = this.#rest;
          this.#rest = new Uint8Array(0);
        }
      }
      let from = 0;
      if (bytes === undefined) {
        // The unfinished line has no newline: look only in the bytes read now.
        from = this.#rest.length;
        bytes = this.#readAppended();
      }
      if (bytes === undefined) return;
      const waited = this.#lines(bytes, from);
      if (waited === undefined) continue;
      if (waited instanceof Promise) {
        this.#waiting = waited.finally(() => (this.#waiting = undefined));
        return this.#waiting.then(() => this.catchUp());
      }
    }
  }

  /**
   * Opens the file at the path when it is another than the one open. False
   * when there is none (nothing was ever revoked on this node).
   */
  #reopen(): boolean {
    let ino: number;
    try {
      ino = Deno.statSync(this.#path).ino ?? -1;
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return this.#file !== undefined;
      throw err;
    }
    // The same file (identity stopped between the replaced-line and the
    // rename, or wrote none): read on, and look at the path again next time.
    if (ino === this.#ino && this.#file !== undefined) return true;
    const file = Deno.openSync(this.#path, { read: true });
    const stat = file.statSync();
    const opened = stat.ino ?? -1;
    this.#o.expect?.(Math.floor(stat.size / MIN_ENTRY_CHARS));
    if (this.#file !== undefined) {
      this.#deliveredBefore = this.#delivered;
      this.#delivered = new Set();
    }
    this.#file?.close();
    this.#file = file;
    this.#ino = opened;
    this.#offset = 0;
    this.#rest = new Uint8Array(0);
    this.#skipping = false;
    // Opened the file the path names now: settled until the next replaced-line.
    this.#moving = false;
    return true;
  }

  /** The bytes appended to the open file since the last read (with a line begun before). */
  #readAppended(): Uint8Array | undefined {
    // Reads as large as the unfinished line so far: a long line costs its
    // length in copies, not its length squared.
    if (this.#buf.length < this.#rest.length) this.#buf = new Uint8Array(this.#rest.length);
    else if (this.#rest.length === 0 && this.#buf.length > READ_CHUNK) {
      this.#buf = new Uint8Array(READ_CHUNK);
    }
    const n = this.#file!.readSync(this.#buf);
    if (n === null || n === 0) return undefined;
    this.#offset += n;
    let bytes = this.#buf.subarray(0, n);
    if (this.#skipping) {
      const nl = bytes.indexOf(10);
      if (nl < 0) return this.#readAppended();
      this.#skipping = false;
      bytes = bytes.subarray(nl + 1);
    }
    if (this.#rest.length > 0) {
      const joined = new Uint8Array(this.#rest.length + n);
      joined.set(this.#rest);
      joined.set(bytes, this.#rest.length);
      bytes = joined;
    }
    return bytes;
  }

  /**
   * Delivers the whole lines of `bytes` and keeps the unfinished one. Returns
   * "replaced" when a replaced-line was read (the path is looked at again), a
   * promise when a line's key is being looked up or its signature checked
   * with WebCrypto (the lines after it follow once it settles), or undefined.
   * `owned`: `bytes` is this call's own copy, not the read buffer a later
   * read fills again, so the lines after a pending one are kept as a view of
   * it instead of a copy (a copy per line made a catch-up of n lines copy
   * n²/2 lines' bytes).
   */
  #lines(bytes: Uint8Array, from = 0, owned = false): "replaced" | Promise<void> | undefined {
    let start = 0;
    for (let nl = bytes.indexOf(10, from); nl >= 0; nl = bytes.indexOf(10, start)) {
      const line = this.#decoder.decode(bytes.subarray(start, nl));
      start = nl + 1;
      if (line === "") continue;
      if (line === LIST_REPLACED_LINE) {
        this.#moving = true;
        this.#rest = bytes.slice(start);
        return "replaced";
      }
      const opened = this.#open(line);
      if (opened instanceof Promise) {
        const after = owned ? bytes.subarray(start) : bytes.slice(start);
        this.#rest = new Uint8Array(0);
        return opened.then(() => {
          // The lines after it, read already, go before anything read later.
          const more = this.#lines(after, 0, true);
          if (more instanceof Promise) return more;
        });
      }
    }
    this.#rest = bytes.slice(start);
    if (this.#rest.length > MAX_LINE_BYTES) {
      this.#rest = new Uint8Array(0);
      this.#skipping = true;
    }
    return undefined;
  }

  /** Verifies one line and delivers its entries; holds it when its key is not known yet. */
  #open(line: string): void | Promise<void> {
    const sig = line.length >= REMEMBERED_LINE_CHARS ? listSignaturePart(line) : "";
    if (sig !== "" && (this.#delivered.has(sig) || this.#deliveredBefore.has(sig))) {
      this.#delivered.add(sig);
      return;
    }
    let entries: RevokedBatch | Promise<RevokedBatch>;
    try {
      entries = openRevocationListNow(line, this.#o.keys, this.#o.issuer);
    } catch (err) {
      return this.#hold(line, err); // a torn or forged line can never verify: skipped
    }
    const deliver = (e: RevokedBatch) => {
      this.#deliver(e);
      if (sig !== "") this.#delivered.add(sig);
    };
    if (!(entries instanceof Promise)) return deliver(entries);
    return entries.then(deliver, (err) => this.#hold(line, err));
  }

  /** Keeps a line whose key is not known (yet) for the next poll; drops anything else. */
  #hold(line: string, err: unknown): void {
    if (!(err instanceof TokenError && err.reason === "unknown_key")) return;
    if (this.#held.length < MAX_HELD_LINES) this.#held.push(line);
  }

  /** Closes the open list file. */
  close(): void {
    this.#file?.close();
    this.#file = undefined;
    this.#ino = -1;
    this.#moving = true;
  }
}
