/**
 * The record of capabilities identity has issued, for `identity.list`
 * (strata-ctl token list): one JSON line per issue appended to the state
 * dir's issued.log (0600, written in batches every 100 ms and without fsync:
 * it serves listing, not security; a lost tail only shortens the list), held in memory, bounded, and pruned of
 * expired capabilities at start, when full and when the file has grown to
 * twice what is live.
 * @module
 */

import type { ListedCapability } from "../api/identity.ts";
import { writeAllSync, writeFileAtomic } from "../runtime/files.ts";

/**
 * Capabilities the record holds at most; past it, the oldest live ones are
 * dropped. With 100,000, a sustained 13,000 issues/s fell to 8,000 within 12
 * s as the record filled (each compaction rewrote 30 MB, stalling identity
 * up to 89 ms) and identity held about 30 MB more; with 10,000 it stayed at
 * 11,500-13,500/s.
 */
export const MAX_ISSUED = 10_000;

/** One issued capability as the record keeps it (what identity.list returns, less revocation). */
export type IssuedRecord = Omit<ListedCapability, "revoked" | "revoked_via">;

/** Where the record lives. */
export interface IssuedFiles {
  issuedLog: string;
  issuedLogTmp: string;
}

const encoder = new TextEncoder();

/**
 * A full record looks for expired records (a scan of all of them) at most
 * this often (ms); in between it drops the oldest.
 */
const PRUNE_EVERY_MS = 1000;

/** Pending lines are written at least this often (ms)… */
const FLUSH_MS = 100;

/** …or once this many characters wait. */
const FLUSH_BYTES = 64 * 1024;

/** Whether a parsed line is a record (a torn or foreign line is not). */
function isRecord(r: unknown): r is IssuedRecord {
  const o = r as IssuedRecord;
  return typeof o === "object" && o !== null && typeof o.cap_id === "string" &&
    typeof o.sub === "string" && typeof o.service === "string" && Array.isArray(o.rights) &&
    Number.isSafeInteger(o.exp) && Number.isSafeInteger(o.iat) && Array.isArray(o.chain);
}

/** The bounded, persisted record of issued capabilities. */
export class IssuedBook {
  #files: IssuedFiles;
  #file?: Deno.FsFile;
  /** cap_id → record, in the order issued. */
  #live = new Map<string, IssuedRecord>();
  /** Lines in the file (live or not), to know when to compact it. */
  #lines = 0;
  #max: number;
  /** Lines not yet written. */
  #pending: string[] = [];
  #pendingChars = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** When #makeRoom last pruned (epoch ms). */
  #prunedAt = 0;
  /** Live records dropped for room since start (the list then says so). */
  dropped = 0;

  private constructor(files: IssuedFiles, max: number) {
    this.#files = files;
    this.#max = max;
  }

  /** Loads the record (dropping expired and torn lines), then opens it for appending. */
  static open(
    files: IssuedFiles,
    options: { now?: number; max?: number } = {},
  ): IssuedBook {
    const book = new IssuedBook(files, options.max ?? MAX_ISSUED);
    const nowSec = Math.floor((options.now ?? Date.now()) / 1000);
    let text = "";
    try {
      text = Deno.readTextFileSync(files.issuedLog);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    for (const line of text.split("\n")) {
      if (line === "") continue;
      try {
        const r = JSON.parse(line);
        if (isRecord(r) && r.exp > nowSec) book.#keep(r);
      } catch {
        // A torn line (a crash mid-append): dropped by the compaction below.
      }
    }
    book.#compact();
    return book;
  }

  /** Adds to memory, making room first. */
  #keep(r: IssuedRecord): void {
    if (this.#live.size >= this.#max && !this.#live.has(r.cap_id)) this.#makeRoom();
    this.#live.set(r.cap_id, r);
  }

  /**
   * Drops expired records (at most once every {@link PRUNE_EVERY_MS}: with a
   * full record under a stream of issues, a scan of all of them for every
   * hundredth issue cost more than the record's line); if that frees too
   * little, the oldest hundredth (an expired one among them is not counted
   * as dropped).
   */
  #makeRoom(): void {
    const now = Date.now();
    if (now - this.#prunedAt >= PRUNE_EVERY_MS) {
      this.#prunedAt = now;
      this.prune(now);
      if (this.#live.size < this.#max) return;
    }
    const nowSec = Math.floor(now / 1000);
    let n = Math.max(1, Math.floor(this.#max / 100));
    for (const [id, r] of this.#live) {
      if (n-- <= 0) break;
      this.#live.delete(id);
      if (r.exp > nowSec) this.dropped++;
    }
  }

  /** Forgets expired records (the file forgets them at the next compaction). */
  prune(now: number = Date.now()): void {
    const nowSec = Math.floor(now / 1000);
    for (const [id, r] of this.#live) if (r.exp <= nowSec) this.#live.delete(id);
  }

  /** Rewrites the file with the live records only, and reopens it for appending. */
  #compact(): void {
    this.#file?.close();
    this.#file = undefined;
    const records = [...this.#live.values()];
    writeFileAtomic(
      this.#files.issuedLog,
      records.map((r) => JSON.stringify(r) + "\n").join(""),
      { tmpPath: this.#files.issuedLogTmp, mode: 0o600, durable: false },
    );
    this.#lines = records.length;
  }

  /**
   * Records one issue. The line is written with the others of the same
   * moment (one write each {@link FLUSH_MS} or {@link FLUSH_BYTES}, no
   * fsync); a failed write keeps them in memory only.
   */
  add(r: IssuedRecord): void {
    this.#keep(r);
    const line = JSON.stringify(r) + "\n";
    this.#pending.push(line);
    this.#pendingChars += line.length;
    if (this.#pendingChars >= FLUSH_BYTES) this.flush();
    else if (this.#timer === undefined) {
      this.#timer = setTimeout(() => this.flush(), FLUSH_MS);
      Deno.unrefTimer(this.#timer);
    }
  }

  /** Writes the lines not yet written (and compacts the file when it has grown too long). */
  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#pending.length === 0) return;
    const text = this.#pending.join("");
    const lines = this.#pending.length;
    this.#pending = [];
    this.#pendingChars = 0;
    try {
      if (this.#lines + lines > 2 * this.#live.size + 1000) {
        // Rewriting holds every live record, those just added too.
        this.prune();
        this.#compact();
        return;
      }
      this.#file ??= Deno.openSync(this.#files.issuedLog, {
        append: true,
        create: true,
        mode: 0o600,
      });
      writeAllSync(this.#file, encoder.encode(text));
      this.#lines += lines;
    } catch {
      // A full disk: the records stay listed; the next compaction writes them.
      this.#file?.close();
      this.#file = undefined;
    }
  }

  /**
   * The live records, oldest first: all of them, or (`tree` given) those
   * whose lineage contains that cap_id.
   */
  list(options: { tree?: string; now?: number } = {}): IssuedRecord[] {
    const nowSec = Math.floor((options.now ?? Date.now()) / 1000);
    const out: IssuedRecord[] = [];
    for (const r of this.#live.values()) {
      if (r.exp <= nowSec) continue;
      if (
        options.tree !== undefined && r.cap_id !== options.tree && !r.chain.includes(options.tree)
      ) {
        continue;
      }
      out.push(r);
    }
    return out;
  }

  /** Whether a capability is in the record. */
  has(capId: string): boolean {
    return this.#live.has(capId);
  }

  /** How many records are held (live or not yet pruned). */
  get size(): number {
    return this.#live.size;
  }

  /** Writes what is pending and closes the file. */
  close(): void {
    this.flush();
    this.#file?.close();
    this.#file = undefined;
  }
}
