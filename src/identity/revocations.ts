/**
 * The durable revocation log: one JSON line per revocation in the state dir,
 * appended and fsynced (one fsync per batch of revocations) before identity answers, so a revocation survives any
 * crash. At start the log is replayed, entries whose tokens can no longer be
 * valid are dropped, and a torn last line (a crash mid-write) is discarded.
 * @module
 */

import { writeFileAtomic } from "../runtime/files.ts";
import { RevocationSet, type RevokedEntry } from "../token/revocation_set.ts";
import type { CatchingUpRevocationSource } from "../sources/revocations.ts";

const encoder = new TextEncoder();

/** Where the log lives. */
export interface RevocationLogFiles {
  revocationLog: string;
  revocationLogTmp: string;
}

/** Lines of the log replayed into the set at a time (see RevocationLog.open). */
const BATCH_LINES = 1000;

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
   * a third of the replay's time in garbage collection.
   */
  static open(files: RevocationLogFiles, now: number = Date.now()): RevocationLog {
    let text = "";
    try {
      text = Deno.readTextFileSync(files.revocationLog);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    const log = new RevocationLog();
    // Room for every line at once (none dropped: the usual case), not a table rebuilt at each doubling.
    let lines = 0;
    for (let nl = text.indexOf("\n"); nl >= 0; nl = text.indexOf("\n", nl + 1)) lines++;
    log.set.reserve(lines + 1);
    const batch: LogLine[] = [];
    const put = () => {
      log.set.merge(batch);
      for (const e of batch) if (e.by) log.#count(e.by, e.by_tree);
      batch.length = 0;
    };
    /** Start and end of each line kept, in pairs (written again when any was dropped). */
    const kept: number[] = [];
    let dropped = 0;
    for (let start = 0; start < text.length;) {
      const nl = text.indexOf("\n", start);
      const end = nl < 0 ? text.length : nl;
      const line = text.slice(start, end);
      const from = start;
      start = end + 1;
      if (line === "") continue;
      try {
        const e = JSON.parse(line) as LogLine;
        if (typeof e.cap_id === "string" && Number.isSafeInteger(e.exp) && e.exp * 1000 >= now) {
          batch.push(e);
          kept.push(from, end);
          if (batch.length === BATCH_LINES) put();
          continue;
        }
      } catch {
        // A torn line from a crash in the middle of an append.
      }
      dropped++;
    }
    put();
    // A last line without its newline (cut by a crash) would merge with the
    // next append; rewriting the kept lines puts every one back on its own.
    if (dropped > 0 || (text !== "" && !text.endsWith("\n"))) {
      const out: string[] = [];
      for (let i = 0; i < kept.length; i += 2) out.push(text.slice(kept[i], kept[i + 1]) + "\n");
      writeFileAtomic(files.revocationLog, out.join(""), {
        tmpPath: files.revocationLogTmp,
        mode: 0o600,
      });
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
    // {...entry, at, by, by_tree} without the copies that took.
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
          : byTree && byTree.length > 0
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

  /** Counts a revocation once for `by` and once for each other id of `tree`. */
  #count(by: string, tree: readonly string[] = []): void {
    this.#byCaller.set(by, (this.#byCaller.get(by) ?? 0) + 1);
    for (let i = 0; i < tree.length; i++) {
      const id = tree[i];
      if (id === by || tree.indexOf(id) < i) continue;
      this.#byCaller.set(id, (this.#byCaller.get(id) ?? 0) + 1);
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
