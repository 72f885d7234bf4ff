/**
 * The record of capabilities identity has issued, for `identity.list`
 * (strata-ctl token list): one JSON line per issue appended to the state
 * dir's issued.log (0600, written in batches every 100 ms and without fsync:
 * it serves listing, not security; a lost tail only shortens the list),
 * bounded, and pruned of expired capabilities at start, when full and when
 * the file has grown to twice what is live. Memory holds only which
 * capabilities are live (each cap_id and its expiry); a listing reads the
 * records from the file. Holding every record as objects kept 10,000 of
 * them, renewed at the issue rate, in V8's old generation: against no
 * record in memory at all, identity held 3-4 MB more after a burst of
 * issues and spent 2-13 µs more CPU an issue (alternated runs of 8
 * connections issuing); ids and expiries alone held 1.2-1.6 MB less than
 * the objects, at the same CPU within the noise.
 * @module
 */

import type { ListedCapability } from "../api/identity.ts";
import { readAtSync, writeAllSync, writeFileAtomic } from "../runtime/files.ts";

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
const decoder = new TextDecoder();

/**
 * A full record looks for expired records (a scan of all of them) at most
 * this often (ms); in between it drops the oldest.
 */
const PRUNE_EVERY_MS = 1000;

/** Pending lines are written at least this often (ms)… */
const FLUSH_MS = 100;

/** …or once this many characters wait. */
const FLUSH_BYTES = 64 * 1024;

/** Lines whose write failed that are kept (and listed) until a write succeeds. */
const MAX_UNWRITTEN_CHARS = 4 * 1024 * 1024;

/** Whether a parsed line is a record (a torn or foreign line is not). */
function isRecord(r: unknown): r is IssuedRecord {
  const o = r as IssuedRecord;
  return typeof o === "object" && o !== null && typeof o.cap_id === "string" &&
    typeof o.sub === "string" && typeof o.service === "string" && Array.isArray(o.rights) &&
    Number.isSafeInteger(o.exp) && Number.isSafeInteger(o.iat) && Array.isArray(o.chain);
}

/**
 * Whether `path` is a file of its own (not a symbolic link, no other hard
 * link) that only its owner may read or write (0600, no setuid, setgid or
 * sticky bit).
 */
function plainPrivateFile(path: string): boolean {
  try {
    const st = Deno.lstatSync(path);
    return st.isFile && st.nlink === 1 && st.mode !== null && (st.mode & 0o7777) === 0o600;
  } catch {
    return false;
  }
}

/** The lines of a record's text, blank ones left out. */
function linesOf(text: string): string[] {
  return text.split("\n").filter((line) => line !== "");
}

/** `{"cap_id":"` : every line starts so (a record's first field), then the id. */
const ID_AT = 11;

/**
 * The cap_id of a record's line, or undefined for a torn or foreign line.
 * A 32-character id is read in place, without parsing the line.
 */
function idOfLine(line: string): string | undefined {
  if (line.startsWith('{"cap_id":"') && line.charCodeAt(ID_AT + 32) === 34) {
    const id = line.slice(ID_AT, ID_AT + 32);
    if (id.indexOf("\\") < 0 && id.indexOf('"') < 0) return id;
  }
  try {
    const r = JSON.parse(line);
    return isRecord(r) ? r.cap_id : undefined;
  } catch {
    return undefined;
  }
}

/** The bounded, persisted record of issued capabilities. */
export class IssuedBook {
  #files: IssuedFiles;
  #file?: Deno.FsFile;
  /** cap_id → expiry (unix seconds) of each record held, in the order issued. */
  #live = new Map<string, number>();
  /** Lines in the file (live or not), to know when to compact it. */
  #lines = 0;
  #max: number;
  /** Lines not yet written (or whose write failed: they are listed from here). */
  #pending: string[] = [];
  #pendingChars = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** After a failed write, the next is tried from then on (epoch ms). */
  #retryAt = 0;
  /** A write failed since the last that succeeded (the file may end in part of a line). */
  #torn = false;
  /** When #makeRoom last pruned (epoch ms). */
  #prunedAt = 0;
  /** Live records dropped for room since start (the list then says so). */
  dropped = 0;

  private constructor(files: IssuedFiles, max: number) {
    this.#files = files;
    this.#max = max;
  }

  /**
   * Loads the record, dropping expired, torn and superseded lines: the file
   * is written again without them, and also when it is not a plain 0600
   * file. A file with nothing to drop is kept as it is (a full record's
   * rewrite cost identity's start 12 ms here, with its rename over the old).
   */
  static open(
    files: IssuedFiles,
    options: { now?: number; max?: number } = {},
  ): IssuedBook {
    const book = new IssuedBook(files, options.max ?? MAX_ISSUED);
    const nowSec = Math.floor((options.now ?? Date.now()) / 1000);
    const latest = new Map<string, string>();
    const text = book.#readText();
    const lines = linesOf(text);
    for (const line of lines) {
      try {
        const r = JSON.parse(line);
        if (!isRecord(r) || r.exp <= nowSec) continue;
        book.#keep(r.cap_id, r.exp);
        latest.set(r.cap_id, line);
      } catch {
        // A torn line (a crash mid-append): dropped by the compaction below.
      }
    }
    // Every line a live record of its own (each added one to the ids held, none dropped for
    // room), no blank line, and the last one whole.
    const asWritten = lines.length > 0 && book.#live.size === lines.length &&
      text.endsWith("\n") && !text.includes("\n\n");
    if (asWritten && plainPrivateFile(files.issuedLog)) book.#lines = lines.length;
    else book.#compact(latest);
    return book;
  }

  /** The file's lines (none when there is no file yet). */
  #read(): string[] {
    return linesOf(this.#readText());
  }

  /** The file's text ("" when there is no file yet). */
  #readText(): string {
    if (this.#file) {
      // The file appended to, even if its path was removed or renamed meanwhile.
      return decoder.decode(readAtSync(this.#file, 0, this.#file.statSync().size));
    }
    try {
      return Deno.readTextFileSync(this.#files.issuedLog);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
      return "";
    }
  }

  /** The latest line of each record held: the file's, then those not yet written. */
  #latestLines(): Map<string, string> {
    const latest = new Map<string, string>();
    const take = (line: string) => {
      const id = idOfLine(line);
      if (id !== undefined && this.#live.has(id)) latest.set(id, line);
    };
    for (const line of this.#read()) take(line);
    for (const text of this.#pending) take(text.slice(0, -1));
    return latest;
  }

  /** Holds a record's expiry, making room first. */
  #keep(capId: string, exp: number): void {
    if (this.#live.size >= this.#max && !this.#live.has(capId)) this.#makeRoom();
    this.#live.set(capId, exp);
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
    for (const [id, exp] of this.#live) {
      if (n-- <= 0) break;
      this.#live.delete(id);
      if (exp > nowSec) this.dropped++;
    }
  }

  /** Forgets expired records (the file forgets them at the next compaction). */
  prune(now: number = Date.now()): void {
    const nowSec = Math.floor(now / 1000);
    for (const [id, exp] of this.#live) if (exp <= nowSec) this.#live.delete(id);
  }

  /** Rewrites the file with `lines` (the live records' latest), and reopens it for appending. */
  #compact(lines: Map<string, string>): void {
    this.#file?.close();
    this.#file = undefined;
    let text = "";
    let n = 0;
    for (const id of this.#live.keys()) {
      const line = lines.get(id);
      if (line === undefined) continue;
      text += line + "\n";
      n++;
    }
    writeFileAtomic(this.#files.issuedLog, text, {
      tmpPath: this.#files.issuedLogTmp,
      mode: 0o600,
      durable: false,
    });
    this.#lines = n;
  }

  /**
   * Records one issue. The line is written with the others of the same
   * moment (one write each {@link FLUSH_MS} or {@link FLUSH_BYTES}, no
   * fsync); a failed write keeps them listed from memory and is tried again
   * a second later.
   */
  add(r: IssuedRecord): void {
    this.#keep(r.cap_id, r.exp);
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
    const wait = this.#retryAt - Date.now();
    if (wait > 0) {
      this.#timer = setTimeout(() => this.flush(), wait);
      Deno.unrefTimer(this.#timer);
      this.#trimUnwritten();
      return;
    }
    const lines = this.#pending.length;
    try {
      if (this.#lines + lines > 2 * this.#live.size + 1000) {
        // Rewriting holds every live record, those just added too.
        this.prune();
        this.#compact(this.#latestLines());
      } else {
        this.#file ??= Deno.openSync(this.#files.issuedLog, {
          read: true,
          append: true,
          create: true,
          mode: 0o600,
        });
        // After a failed write the file may end in part of a line: it stays a line of its own
        // (torn, dropped at the next compaction), and the whole line follows it.
        const text = (this.#torn ? "\n" : "") + this.#pending.join("");
        writeAllSync(this.#file, encoder.encode(text));
        this.#torn = false;
        this.#lines += lines;
      }
      this.#pending = [];
      this.#pendingChars = 0;
    } catch {
      // A full disk: the lines stay listed from memory and are written again a second later.
      this.#torn = true;
      this.#file?.close();
      this.#file = undefined;
      this.#retryAt = Date.now() + 1000;
      this.#timer = setTimeout(() => this.flush(), 1000);
      Deno.unrefTimer(this.#timer);
      this.#trimUnwritten();
    }
  }

  /** Past MAX_UNWRITTEN_CHARS of lines not written, the oldest go, counted as dropped. */
  #trimUnwritten(): void {
    const nowSec = Math.floor(Date.now() / 1000);
    while (this.#pendingChars > MAX_UNWRITTEN_CHARS) {
      const line = this.#pending.shift()!;
      this.#pendingChars -= line.length;
      const id = idOfLine(line.slice(0, -1));
      const exp = id === undefined ? undefined : this.#live.get(id);
      if (exp === undefined) continue;
      this.#live.delete(id!);
      if (exp > nowSec) this.dropped++;
    }
  }

  /**
   * The live records, oldest first: all of them, or (`tree` given) those
   * whose lineage contains that cap_id.
   */
  list(options: { tree?: string; now?: number } = {}): IssuedRecord[] {
    const nowSec = Math.floor((options.now ?? Date.now()) / 1000);
    const latest = this.#latestLines();
    const out: IssuedRecord[] = [];
    for (const [id, exp] of this.#live) {
      if (exp <= nowSec) continue;
      const line = latest.get(id);
      if (line === undefined) continue; // its line was lost (a full disk)
      let r: IssuedRecord;
      try {
        r = JSON.parse(line);
      } catch {
        continue;
      }
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
    this.#retryAt = 0;
    this.flush();
    this.#file?.close();
    this.#file = undefined;
  }
}
