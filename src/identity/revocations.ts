/**
 * The durable revocation log: one JSON line per revocation in the state dir,
 * appended and fsynced (one fsync per batch of revocations) before identity answers, so a revocation survives any
 * crash. At start the log is replayed, entries whose tokens can no longer be
 * valid are dropped, and a torn last line (a crash mid-write) is discarded.
 * @module
 */

import { writeFileAtomic } from "../runtime/files.ts";
import {
  bytesAt,
  hexIdAt,
  hexWordsAt,
  PackedEntries,
  plainStringEnd,
  RevocationSet,
  type RevokedEntry,
  wholeAt,
} from "../token/revocation_set.ts";
import type { CatchingUpRevocationSource } from "../sources/revocations.ts";

const encoder = new TextEncoder();

/** Where the log lives. */
export interface RevocationLogFiles {
  revocationLog: string;
  revocationLogTmp: string;
}

/** Lines of the log replayed into the set at a time (see RevocationLog.open). */
const BATCH_LINES = 1000;

/** As Deno.readTextFileSync decodes (a byte order mark kept: JSON.parse refuses a line starting with one). */
const decoder = new TextDecoder("utf-8", { ignoreBOM: true });
const NL = 0x0a;
const LINE_HEAD = encoder.encode('{"cap_id":"');
const EXP_KEY = encoder.encode('","exp":');
const AT_KEY = encoder.encode(',"at":"');
const BY_KEY = encoder.encode(',"by":"');
const TREE_KEY = encoder.encode('","by_tree":[');

/** Whether `b`'s `length` bytes at `x` and at `y` are the same. */
function sameBytes(b: Uint8Array, x: number, y: number, length: number): boolean {
  for (let k = 0; k < length; k++) if (b[x + k] !== b[y + k]) return false;
  return true;
}

/**
 * Reads the line `b[start, end)` up to its tail as appendAll writes it:
 * `{"cap_id":"` 32 lowercase hex digits `","exp":` an integer of plain digits
 * `,"at":"` printable ASCII without `"` or `\` `"`. Puts the id's four words
 * into `words` and its expiry into `exps`, at entry `k`, and returns where the
 * rest (its tail: `}`, or the revoker and tree then `}`) starts; -1 for a line
 * in any other form, which JSON.parse reads instead. The bytes read so are
 * JSON whose values JSON.parse would give the same.
 */
function scanLine(
  b: Uint8Array,
  start: number,
  end: number,
  words: Uint32Array,
  exps: Float64Array,
  k: number,
): number {
  let i = start;
  if (end - i < LINE_HEAD.length + 32 || !bytesAt(b, i, LINE_HEAD)) return -1;
  i += LINE_HEAD.length;
  if (!hexWordsAt(b, i, words, k * 4)) return -1;
  i += 32;
  if (!bytesAt(b, i, EXP_KEY)) return -1;
  i = wholeAt(b, i + EXP_KEY.length, end, exps, k);
  if (i < 0 || !bytesAt(b, i, AT_KEY)) return -1;
  i = plainStringEnd(b, i + AT_KEY.length, end);
  return i < 0 || i + 1 >= end ? -1 : i + 1;
}

/** A line's tail read: its revoker and tree, and how many kept lines end with it. */
interface Tail {
  by?: string;
  byTree?: string[];
  lines: number;
}

/** The 32 lowercase hex digits at `b[at]`, before `end`, as a string; undefined at any other byte. */
function hexAt(b: Uint8Array, at: number, end: number): string | undefined {
  return at + 32 > end ? undefined : hexIdAt(b, at);
}

/**
 * The tail `b[at, end)` of a line {@link scanLine} read, in one of the forms
 * appendAll writes: `}`; `,"by":"<id>"}`; `,"by":"<id>","by_tree":["<id>",...]}`
 * (ids of 32 lowercase hex digits, the tree not empty). Such a line is one
 * JSON object whose by and by_tree JSON.parse gives as these. Undefined for
 * any other tail: that line goes through JSON.parse.
 */
function readTail(b: Uint8Array, at: number, end: number): Tail | undefined {
  if (end - at === 1 && b[at] === 0x7d) return { lines: 0 };
  if (!bytesAt(b, at, BY_KEY)) return undefined;
  let i = at + BY_KEY.length;
  const by = hexAt(b, i, end);
  if (by === undefined) return undefined;
  i += 32;
  if (end - i === 2 && b[i] === 0x22 && b[i + 1] === 0x7d) return { by, lines: 0 };
  if (!bytesAt(b, i, TREE_KEY)) return undefined;
  i += TREE_KEY.length;
  const byTree: string[] = [];
  for (;;) {
    if (b[i++] !== 0x22) return undefined;
    const id = hexAt(b, i, end);
    if (id === undefined) return undefined;
    byTree.push(id);
    i += 32;
    if (b[i++] !== 0x22) return undefined;
    const next = b[i++];
    if (next === 0x5d) break;
    if (next !== 0x2c) return undefined;
  }
  return i === end - 1 && b[i] === 0x7d ? { by, byTree, lines: 0 } : undefined;
}

interface LogLine extends RevokedEntry {
  at: string;
  by?: string;
  /** The caller's ancestors below the root token: the revocation counts against them too. */
  by_tree?: string[];
}

/** Whether two caller trees (absent or arrays) name the same ids in the same order. */
function sameIds(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  if (a === b) return true;
  if (a === undefined || b === undefined || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The append-only log and the set it describes. */
export class RevocationLog {
  readonly set = new RevocationSet();
  /** Opened once the log is replayed (and rewritten if it must be). */
  #file!: Deno.FsFile;
  #byCaller = new Map<string, number>();
  /** The file's size after the last append, or -1 when not known (after a failure). */
  #size = -1;

  private constructor() {}

  /**
   * Replays and compacts the log, then opens it for appending. The entries
   * go into the set a thousand lines at a time, and only the places of the
   * lines kept are remembered: holding every line as an object until the end
   * (60,000 after a burst of revocations) had V8 copy and promote them all,
   * a third of the replay's time in garbage collection. A line in the form
   * appendAll writes is read from the file's bytes (see {@link scanLine} and
   * {@link readTail}), with no string, JSON.parse or object per line: after
   * 60,000 revocations the replay was most of identity's restart. Any other line goes through
   * JSON.parse as before.
   */
  static open(files: RevocationLogFiles, now: number = Date.now()): RevocationLog {
    let bytes = new Uint8Array(0);
    try {
      bytes = Deno.readFileSync(files.revocationLog);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    const log = new RevocationLog();
    // Room for every line at once (none dropped: the usual case), not a table rebuilt at each doubling.
    let lines = 0;
    for (let nl = bytes.indexOf(NL); nl >= 0; nl = bytes.indexOf(NL, nl + 1)) lines++;
    log.set.reserve(lines + 1);
    // The lines read from their bytes, as a list line's packed entries are.
    const words = new Uint32Array(BATCH_LINES * 4);
    const exps = new Float64Array(BATCH_LINES);
    let scanned = 0;
    // The lines read by JSON.parse.
    const parsed: LogLine[] = [];
    const put = () => {
      log.set.merge(new PackedEntries(words.subarray(0, scanned * 4), exps.subarray(0, scanned)));
      scanned = 0;
      log.set.merge(parsed);
      for (const e of parsed) if (e.by) log.#count(e.by, e.by_tree);
      parsed.length = 0;
    };
    // The tail of the last line read from its bytes, where it is in the file, and what it was
    // read as (undefined when in no form of appendAll's: such lines go through JSON.parse). The
    // lines of a caller's batch end alike: they are counted together when the run ends.
    let last: Tail | undefined;
    let lastAt = -1, lastEnd = -1;
    const endRun = () => {
      if (last?.by && last.lines > 0) log.#count(last.by, last.byTree, last.lines);
    };
    /** Start and end of each line kept, in pairs (written again when any was dropped). */
    const kept: number[] = [];
    let dropped = 0;
    for (let start = 0; start < bytes.length;) {
      const nl = bytes.indexOf(NL, start);
      const end = nl < 0 ? bytes.length : nl;
      const from = start;
      start = end + 1;
      if (end === from) continue;
      const at = scanLine(bytes, from, end, words, exps, scanned);
      if (at >= 0) { // the line up to its tail is in appendAll's form
        if (
          lastAt < 0 || end - at !== lastEnd - lastAt || !sameBytes(bytes, at, lastAt, end - at)
        ) {
          endRun();
          last = readTail(bytes, at, end);
          lastAt = at;
          lastEnd = end;
        }
        if (last !== undefined) {
          if (exps[scanned] * 1000 >= now) {
            scanned++;
            last.lines++;
            kept.push(from, end);
            if (scanned === BATCH_LINES) put();
          } else dropped++;
          continue;
        }
      }
      try {
        const e = JSON.parse(decoder.decode(bytes.subarray(from, end))) as LogLine;
        if (typeof e.cap_id === "string" && Number.isSafeInteger(e.exp) && e.exp * 1000 >= now) {
          parsed.push(e);
          kept.push(from, end);
          if (parsed.length === BATCH_LINES) put();
          continue;
        }
      } catch {
        // A torn line from a crash in the middle of an append.
      }
      dropped++;
    }
    put();
    endRun();
    // A last line without its newline (cut by a crash) would merge with the
    // next append; rewriting the kept lines puts every one back on its own.
    // They are written as they were read (bytes that are not UTF-8 too, which
    // decode to the same U+FFFD at the next start).
    if (dropped > 0 || (bytes.length > 0 && bytes[bytes.length - 1] !== NL)) {
      let size = 0;
      for (let i = 0; i < kept.length; i += 2) size += kept[i + 1] - kept[i] + 1;
      const out = new Uint8Array(size);
      for (let i = 0, o = 0; i < kept.length; i += 2) {
        out.set(bytes.subarray(kept[i], kept[i + 1]), o);
        o += kept[i + 1] - kept[i];
        out[o++] = NL;
      }
      writeFileAtomic(files.revocationLog, out, { tmpPath: files.revocationLogTmp, mode: 0o600 });
    }
    log.#file = Deno.openSync(files.revocationLog, { append: true, create: true, mode: 0o600 });
    return log;
  }

  /**
   * Records revocations durably, with one write and one fsync for them all
   * (group commit), then adds them to the set. `byTree` of an item are the
   * caller's ancestors below the root token, whose quota it also uses.
   * Entries already in the set are skipped; returns the ones recorded. Calls
   * must not overlap. `options.beside` runs once the lines are written and
   * their fsync is under way (or at once when none is needed), so the caller's
   * own work for the batch overlaps the disk's; when it throws, nothing is
   * added to the set and appendAll fails with its error after the fsync.
   */
  async appendAll(
    items: readonly { entry: RevokedEntry; by?: string; byTree?: readonly string[] }[],
    options: { beside?: () => void } = {},
  ): Promise<RevokedEntry[]> {
    const seen = new Set<string>();
    const fresh = items.filter(({ entry }) =>
      !this.set.has(entry.cap_id) && !seen.has(entry.cap_id) && seen.add(entry.cap_id)
    );
    if (fresh.length === 0) {
      options.beside?.();
      return [];
    }
    // The lines are written field by field: the same JSON as stringifying
    // {...entry, at, by, by_tree} without the copies that took. A tree of the
    // caller alone (the operator's, a root token's) is left out: it counts
    // the same as none (see #count), and each line is then a quarter shorter
    // (135 bytes instead of 182), which the fsync of a batch writes out.
    const at = `,"at":"${new Date().toISOString()}"`;
    let text = "";
    // A batch's revocations mostly come from one caller: its part is made once.
    let lastBy: string | undefined;
    let lastTree: readonly string[] | undefined;
    let tail = "}\n";
    for (const { entry, by, byTree } of fresh) {
      if (by !== lastBy || !sameIds(byTree, lastTree)) {
        lastBy = by;
        lastTree = byTree;
        tail = !by
          ? "}\n"
          : byTree && byTree.some((id) => id !== by)
          ? `,"by":${JSON.stringify(by)},"by_tree":${JSON.stringify(byTree)}}\n`
          : `,"by":${JSON.stringify(by)}}\n`;
      }
      text += `{"cap_id":${JSON.stringify(entry.cap_id)},"exp":${
        JSON.stringify(entry.exp)
      }${at}${tail}`;
    }
    const bytes = encoder.encode(text);
    // Where this batch starts: known from the last append (a stat of the file
    // took more CPU than the write), read again only after a failure.
    const size = this.#size >= 0 ? this.#size : this.#file.statSync().size;
    this.#size = -1;
    let synced: Promise<void>;
    try {
      let off = 0;
      while (off < bytes.length) off += this.#file.writeSync(bytes.subarray(off));
      // Off the event loop: requests that arrive meanwhile form the next batch.
      synced = this.#file.syncData();
    } catch (err) {
      this.#cutBack(size);
      throw err;
    }
    let besideError: { err: unknown } | undefined;
    try {
      options.beside?.();
    } catch (err) {
      besideError = { err };
    }
    try {
      await synced;
    } catch (err) {
      this.#cutBack(size);
      throw err;
    }
    this.#size = size + bytes.length;
    // Durable, but the caller's part failed: not in the set, so a retry records it again.
    if (besideError) throw besideError.err;
    this.set.add(fresh.map((it) => it.entry));
    for (const it of fresh) if (it.by) this.#count(it.by, it.byTree);
    return fresh.map((it) => it.entry);
  }

  /**
   * Cuts a half-written batch off (disk full) before failing: it would merge
   * with the next append and take both with it at the next start.
   */
  #cutBack(size: number): void {
    try {
      this.#file.truncateSync(size);
    } catch { /* the open() compaction at the next start still drops it */ }
  }

  /** Records one revocation (see appendAll); false when it was already revoked. */
  async append(
    entry: RevokedEntry,
    by?: string,
    byTree: readonly string[] = [],
  ): Promise<boolean> {
    return (await this.appendAll([{ entry, by, byTree }])).length === 1;
  }

  /** Counts `n` revocations (one by default) once for `by` and once for each other id of `tree`. */
  #count(by: string, tree: readonly string[] = [], n = 1): void {
    this.#byCaller.set(by, (this.#byCaller.get(by) ?? 0) + n);
    for (let i = 0; i < tree.length; i++) {
      const id = tree[i];
      if (id === by || tree.indexOf(id) < i) continue;
      this.#byCaller.set(id, (this.#byCaller.get(id) ?? 0) + n);
    }
  }

  /**
   * How many live revocations `capId` and the capabilities delegated from it
   * have made (counted since the log was opened).
   */
  countBy(capId: string): number {
    return this.#byCaller.get(capId) ?? 0;
  }

  /**
   * The log as the revocation source of identity's own trust: the log puts
   * every revocation in the set itself, so there is nothing to read (the
   * list file's source re-read and verified, once a second, every line
   * identity had just appended to it: 3-5 µs of CPU per revoke under load).
   */
  trustSource(): CatchingUpRevocationSource {
    return {
      snapshot: () => Promise.resolve(this.set.entries()),
      poll: () => Promise.resolve(),
      subscribe: () => () => {},
      // Nothing to read: every revocation is in the set as soon as it is made.
      catchUp: () => {},
    };
  }

  /** Closes the log file. */
  close(): void {
    this.#file.close();
  }
}
