/**
 * The record of capabilities identity has issued, for `identity.list`
 * (strata-ctl token list): one JSON line per issue appended to a segment
 * file in the state dir's issued/ folder (0600, written in batches every
 * 100 ms and without fsync: it serves listing, not security; a lost tail
 * only shortens the list), bounded, and pruned of expired capabilities at
 * start, when full, and at most once a second as lines are written. A segment takes {@link SEGMENT_LINES} lines; one
 * whose records have all died (dropped oldest first, or expired) is removed
 * whole. A single file compacted when it had grown to twice what is live
 * was read back and rewritten every 11,000 issues under a stream of them:
 * about 2.4 µs an issue, in stalls of 8-50 ms. Memory holds only which
 * capabilities are live (each cap_id and its expiry) and each segment's ids;
 * a listing reads the records from the files. Holding every record as
 * objects kept 10,000 of them, renewed at the issue rate, in V8's old
 * generation: against no record in memory at all, identity held 3-4 MB more
 * after a burst of issues and spent 2-13 µs more CPU an issue (alternated
 * runs of 8 connections issuing); ids and expiries alone held 1.2-1.6 MB
 * less than the objects, at the same CPU within the noise.
 * @module
 */

import type { ListedCapability } from "../api/identity.ts";
import {
  ensureDir,
  pathExists,
  readAtSync,
  readTextIfAny,
  removeIfAny,
  writeAllSync,
  writeFileAtomic,
} from "../runtime/files.ts";
import { CapIdList, CapIdMap } from "../token/cap_ids.ts";

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
  /** The folder of its segments (0700): `<seq>.log` files, 0600, written in order. */
  issuedDir: string;
  /** The single file of earlier versions: read at start, its records moved into segments. */
  issuedLog: string;
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

/**
 * Lines a segment takes before the next write starts another. Records die
 * in about the order they were issued (dropped oldest first, or expired),
 * so a segment whose records have all died is removed whole, and the file
 * is never read back to be compacted under a stream of issues.
 */
export const SEGMENT_LINES = 1000;

/** A segment's file name: its sequence number. */
const SEGMENT_NAME = /^([0-9]{1,15})\.log$/;

/** One segment: its file and the cap_id of each of its lines, in order. */
interface Segment {
  seq: number;
  path: string;
  ids: CapIdList;
  /** Lines before this one are known to belong to records no longer held. */
  scan: number;
}

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
  /** Where a segment is written before it is renamed into place. */
  #tmp: string;
  /** The segments, oldest first; new lines go to the last. */
  #segments: Segment[] = [];
  /** The last segment's file, open for appending. */
  #file?: Deno.FsFile;
  /** cap_id → expiry (unix seconds) of each record held, in the order issued. */
  #live = new CapIdMap();
  /**
   * Records added again while held (rare): the sequence number of the segment with their
   * latest line (0 while it is not written), so that their earlier lines count as dead.
   */
  #again = new Map<string, number>();
  /** Lines in the segments (live or not), to know when to compact them. */
  #lines = 0;
  #max: number;
  /** Lines not yet written (or whose write failed: they are listed from here), and their ids. */
  #pending: string[] = [];
  #pendingIds: string[] = [];
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
    this.#tmp = `${files.issuedDir}/.tmp`;
    this.#max = max;
  }

  /**
   * Loads the record, dropping expired, torn and superseded lines: the live
   * records are written again into new segments without them (and the old
   * ones removed), also when a segment is not a plain 0600 file or the file
   * of an earlier version is there. Segments with nothing to drop are kept as
   * they are, the last one appended to (a full record's rewrite cost
   * identity's start 12 ms here).
   */
  static open(
    files: IssuedFiles,
    options: { now?: number; max?: number } = {},
  ): IssuedBook {
    const book = new IssuedBook(files, options.max ?? MAX_ISSUED);
    const nowSec = Math.floor((options.now ?? Date.now()) / 1000);
    ensureDir(files.issuedDir, 0o700);
    const found: Segment[] = [];
    for (const entry of Deno.readDirSync(files.issuedDir)) {
      const m = SEGMENT_NAME.exec(entry.name);
      if (m) {
        found.push({
          seq: Number(m[1]),
          path: `${files.issuedDir}/${entry.name}`,
          ids: new CapIdList(),
          scan: 0,
        });
      }
    }
    found.sort((a, b) => a.seq - b.seq);
    const hasLegacy = pathExists(files.issuedLog);
    const legacy = hasLegacy ? readTextIfAny(files.issuedLog) : "";
    // Every line a live record of its own (each added one to the ids held, none dropped for
    // room), no blank line, each segment's last line whole, each a plain 0600 file.
    let asWritten = !hasLegacy;
    let lineCount = 0;
    // Each record's latest line, in the order the records first appear: a record added again
    // keeps its place, and its latest line alone says whether it has expired. (Once the segment
    // of its first line has gone, it takes its latest line's place: identity records each
    // cap_id once, so only a record written again by hand moves.)
    const last = new Map<string, { line: string; exp: number }>();
    const take = (text: string, seg?: Segment) => {
      const lines = linesOf(text);
      lineCount += lines.length;
      if (lines.length > 0 && (!text.endsWith("\n") || text.includes("\n\n"))) asWritten = false;
      for (const line of lines) {
        try {
          const r = JSON.parse(line);
          if (!isRecord(r)) continue;
          const seen = last.get(r.cap_id);
          if (seen) Object.assign(seen, { line, exp: r.exp });
          else last.set(r.cap_id, { line, exp: r.exp });
          seg?.ids.push(r.cap_id);
        } catch {
          // A torn line (a crash mid-append): dropped by the rewrite below.
        }
      }
    };
    take(legacy);
    for (const seg of found) {
      if (!plainPrivateFile(seg.path)) asWritten = false;
      take(readTextIfAny(seg.path), seg);
    }
    const latest = new Map<string, string>();
    for (const [id, { line, exp }] of last) {
      if (exp <= nowSec) continue;
      book.#keep(id, exp);
      latest.set(id, line);
    }
    if (asWritten && book.#live.size === lineCount) {
      book.#segments = found.filter((s) => s.ids.length > 0);
      for (const s of found) if (s.ids.length === 0) removeIfAny(s.path);
      book.#lines = lineCount;
    } else {
      book.#rewrite(latest, (found.at(-1)?.seq ?? 0) + 1);
      for (const s of found) removeIfAny(s.path);
      removeIfAny(files.issuedLog);
      removeIfAny(`${files.issuedLog}.tmp`); // an earlier version's, left by a crash
    }
    return book;
  }

  /**
   * Writes the live records' `lines`, in the order issued, into new
   * segments numbered from `seq` on (each whole or not at all: a temporary
   * file renamed).
   */
  #rewrite(lines: Map<string, string>, seq: number): void {
    let ids = new CapIdList();
    let text = "";
    const write = () => {
      const path = `${this.#files.issuedDir}/${seq}.log`;
      this.#writeWhole(path, text);
      this.#segments.push({ seq: seq++, path, ids, scan: 0 });
      this.#lines += ids.length;
      ids = new CapIdList();
      text = "";
    };
    for (const id of this.#live.keys()) {
      const line = lines.get(id);
      if (line === undefined) continue;
      text += line + "\n";
      ids.push(id);
      if (ids.length >= SEGMENT_LINES) write();
    }
    if (ids.length > 0) write();
  }

  /** Replaces a segment's file with `data`, whole or not at all (0600, not fsynced). */
  #writeWhole(path: string, data: string | Uint8Array): void {
    writeFileAtomic(path, data, { tmpPath: this.#tmp, mode: 0o600, durable: false });
  }

  /** The text of a segment: the last through its open file (even if its path was removed). */
  #segmentText(seg: Segment): string {
    if (this.#file && seg === this.#segments.at(-1)) {
      return decoder.decode(readAtSync(this.#file, 0, this.#file.statSync().size));
    }
    return readTextIfAny(seg.path);
  }

  /** The latest line of each record held: the segments', then those not yet written. */
  #latestLines(): Map<string, string> {
    const latest = new Map<string, string>();
    const take = (line: string) => {
      const id = idOfLine(line);
      if (id !== undefined && this.#live.has(id)) latest.set(id, line);
    };
    for (const seg of this.#segments) {
      for (const line of linesOf(this.#segmentText(seg))) take(line);
    }
    for (const text of this.#pending) take(text.slice(0, -1));
    return latest;
  }

  /** Holds a record's expiry, making room first. */
  #keep(capId: string, exp: number): void {
    if (this.#live.has(capId)) this.#again.set(capId, 0);
    else if (this.#live.size >= this.#max) this.#makeRoom();
    this.#live.set(capId, exp);
  }

  /** Forgets a record (its lines go with their segments). */
  #forget(capId: string): void {
    this.#live.delete(capId);
    if (this.#again.size > 0) this.#again.delete(capId);
  }

  /** Whether `seg`'s line of `capId` is the latest of a record held. */
  #holds(seg: Segment, capId: string): boolean {
    if (!this.#live.has(capId)) return false;
    return this.#again.size === 0 || (this.#again.get(capId) ?? seg.seq) === seg.seq;
  }

  /** #holds for `seg`'s line `i`, without making the id's string when no record was added again. */
  #holdsAt(seg: Segment, i: number): boolean {
    return this.#again.size === 0 ? seg.ids.heldIn(this.#live, i) : this.#holds(seg, seg.ids.at(i));
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
      this.#forget(id);
      if (exp > nowSec) this.dropped++;
    }
  }

  /** Forgets expired records (their lines go with their segments). */
  prune(now: number = Date.now()): void {
    const nowSec = Math.floor(now / 1000);
    for (const [id, exp] of this.#live) if (exp <= nowSec) this.#forget(id);
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
    this.#pendingIds.push(r.cap_id);
    this.#pendingChars += line.length;
    if (this.#pendingChars >= FLUSH_BYTES) this.flush();
    else if (this.#timer === undefined) {
      this.#timer = setTimeout(() => this.flush(), FLUSH_MS);
      Deno.unrefTimer(this.#timer);
    }
  }

  /**
   * Writes the lines not yet written to the last segment (starting another
   * when it is full), then removes the segments whose records have all died
   * and, when the segments hold too many dead lines, writes runs of sparse
   * ones again, merged.
   */
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
    try {
      this.#append(this.#pending.join(""), this.#pendingIds);
      this.#pending = [];
      this.#pendingIds = [];
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
      return;
    }
    const now = Date.now();
    if (now - this.#prunedAt >= PRUNE_EVERY_MS) {
      // Expired records are forgotten as time goes, not only when the record is full, so
      // that their segments go.
      this.#prunedAt = now;
      this.prune(now);
    }
    try {
      this.#reclaim();
    } catch {
      // Tried again after the next write; a segment not removed is read at the next start.
    }
  }

  /** Appends whole lines (`text`) and their ids to the last segment, or to a new one when full. */
  #append(text: string, ids: readonly string[]): void {
    let seg = this.#segments.at(-1);
    if (seg === undefined || seg.ids.length >= SEGMENT_LINES) {
      this.#closeFile();
      const next = (seg?.seq ?? 0) + 1;
      seg = {
        seq: next,
        path: `${this.#files.issuedDir}/${next}.log`,
        ids: new CapIdList(),
        scan: 0,
      };
      this.#segments.push(seg);
    }
    if (this.#file === undefined) {
      this.#makeFolder();
      this.#file = Deno.openSync(seg.path, { read: true, append: true, create: true, mode: 0o600 });
    }
    // After a failed write the file may end in part of a line: it stays a line of its own
    // (torn, dropped at the next start), and the whole line follows it.
    writeAllSync(this.#file, encoder.encode((this.#torn ? "\n" : "") + text));
    this.#torn = false;
    for (const id of ids) {
      seg.ids.push(id);
      if (this.#again.has(id)) this.#again.set(id, seg.seq);
    }
    this.#lines += ids.length;
  }

  /** The segments' folder, made again if it was removed (not the state dir around it). */
  #makeFolder(): void {
    try {
      Deno.mkdirSync(this.#files.issuedDir, { mode: 0o700 });
    } catch (err) {
      if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
    }
  }

  /**
   * Closes the last segment's file. If its path no longer names that file (removed, or its
   * folder), what was written to it is written there again first, from the open file: the
   * segment's lines are read by path once it is closed.
   */
  #closeFile(): void {
    const file = this.#file;
    if (file === undefined) return;
    this.#file = undefined;
    const seg = this.#segments.at(-1)!;
    try {
      let same = false;
      try {
        same = Deno.statSync(seg.path).ino === file.statSync().ino;
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      }
      if (!same) {
        const text = readAtSync(file, 0, file.statSync().size);
        this.#makeFolder();
        this.#writeWhole(seg.path, text);
      }
    } finally {
      file.close();
    }
  }

  /**
   * Removes the closed segments none of whose records is held; then,
   * if the segments still hold more than twice the live records (and 1,000
   * lines), writes the live lines of each run of sparse ones (half or less
   * live) again, merged up to {@link SEGMENT_LINES} a segment, in place.
   */
  #reclaim(): void {
    // Each closed segment's dead lines are skipped once: a long-lived record (a token for a
    // month among ones for a minute) holds its own segment, not every one after it.
    for (const seg of this.#segments.slice(0, -1)) {
      while (seg.scan < seg.ids.length && !this.#holdsAt(seg, seg.scan)) seg.scan++;
      if (seg.scan === seg.ids.length) this.#drop(seg);
    }
    if (this.#lines <= 2 * this.#live.size + 1000) return;
    // Records that do not die in the order issued (longer lifetimes among shorter ones).
    let run: Segment[] = [];
    let live = 0;
    for (const seg of this.#segments.slice(0, -1)) {
      let n = 0;
      for (let i = 0; i < seg.ids.length; i++) if (this.#holdsAt(seg, i)) n++;
      if (n * 2 > seg.ids.length || live + n > SEGMENT_LINES) {
        this.#merge(run);
        run = [];
        live = 0;
      }
      if (n * 2 <= seg.ids.length) {
        run.push(seg);
        live += n;
      }
    }
    this.#merge(run);
  }

  /** Forgets a segment and removes its file. */
  #drop(seg: Segment): void {
    this.#segments.splice(this.#segments.indexOf(seg), 1);
    this.#lines -= seg.ids.length;
    removeIfAny(seg.path);
  }

  /**
   * Writes the live records' lines of consecutive closed segments into the
   * last one's place (a temporary file renamed), then removes the others: in
   * the same order, so a listing after a restart still goes as issued, and
   * a record added again keeps its latest line last (a stale one merged
   * here is still read before it).
   */
  #merge(run: Segment[]): void {
    if (run.length === 0) return;
    const last = run[run.length - 1];
    const lines = new Map<string, string>();
    for (const seg of run) {
      for (const line of linesOf(readTextIfAny(seg.path))) {
        const id = idOfLine(line);
        if (id !== undefined && this.#holds(seg, id)) lines.set(id, line);
      }
    }
    if (lines.size === 0) {
      for (const seg of run) this.#drop(seg);
      return;
    }
    let text = "";
    for (const line of lines.values()) text += line + "\n";
    this.#writeWhole(last.path, text);
    // The merged segment is accounted for before the others go, so that a failed removal
    // leaves a segment known by what it now holds.
    this.#lines += lines.size - last.ids.length;
    last.ids = CapIdList.of(lines.keys());
    last.scan = 0;
    for (const id of last.ids) if (this.#again.has(id)) this.#again.set(id, last.seq);
    for (const seg of run.slice(0, -1)) this.#drop(seg);
  }

  /** Past MAX_UNWRITTEN_CHARS of lines not written, the oldest go, counted as dropped. */
  #trimUnwritten(): void {
    const nowSec = Math.floor(Date.now() / 1000);
    while (this.#pendingChars > MAX_UNWRITTEN_CHARS) {
      const line = this.#pending.shift()!;
      const id = this.#pendingIds.shift()!;
      this.#pendingChars -= line.length;
      const exp = this.#live.get(id);
      if (exp === undefined) continue;
      this.#forget(id);
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
    try {
      this.#closeFile();
    } catch {
      // Its lines are lost with its path; the records stay held until the next start.
    }
  }
}
