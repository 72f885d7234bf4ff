/**
 * Audit events: one JSON line per event to the state dir's audit.log and
 * (unless the service runs under the supervisor) to stderr. Lines are batched (flushed every 100 ms or at 64 KiB) so auditing
 * every read costs one write per batch, not one per request. A token is never
 * written: only its cap_id.
 * @module
 */

import { emitLine, logFormat } from "./log.ts";
import { type Cancel, type Clock, systemClock } from "./clock.ts";

const encoder = new TextEncoder();
const FLUSH_MS = 100;
const FLUSH_BYTES = 64 * 1024;
/** How long after a failed open of the log the file is tried again (see Audit.#open). */
const RETRY_OPEN_MS = 1000;
/** Lines kept for a log that cannot be opened yet, at most (the oldest go first). */
const MAX_UNWRITTEN_BYTES = 1024 * 1024;

/** Options for {@link Audit}. */
export interface AuditOptions {
  /** The audit log file; omitted means stderr only. */
  path?: string;
  /** The program writing, recorded in each line. */
  program: string;
  /** Also copy each line to stderr (default true). */
  stderr?: boolean;
  /** Rotate the file past this size (default {@link MAX_AUDIT_BYTES}). */
  maxBytes?: number;
  /** Timestamps, the refusal rate and the flush timer (default {@link systemClock}). */
  clock?: Clock;
}

/** Field names that must never reach the log. */
const SECRET_FIELDS = new Set(["token", "secret", "auth"]);

/** The log is rotated (to audit.log.1) when it grows past this. */
export const MAX_AUDIT_BYTES = 64 * 1024 * 1024;

/**
 * Refusals are logged at most this often (a burst of `burst`, then `perSecond`
 * a second); the rest are counted in one auth.denied.suppressed line a
 * second, so a flood of bad requests cannot fill the disk.
 */
export const DENIED_RATE = { perSecond: 20, burst: 100 };

function isDigit(code: number): boolean {
  return code >= 48 && code <= 57;
}

/** Event names and field names whose JSON is kept (the code uses a few dozen). */
const MAX_CACHED = 256;

/** Each field name's `,"name":` (the same few names on every line). */
const KEY_JSON = new Map<string, string>();

function keyJson(k: string): string {
  let json = KEY_JSON.get(k);
  if (json === undefined) {
    json = `,${JSON.stringify(k)}:`;
    if (KEY_JSON.size < MAX_CACHED) KEY_JSON.set(k, json);
  }
  return json;
}

/** A batched writer of audit events. */
export class Audit {
  #program: string;
  #path?: string;
  #file?: Deno.FsFile;
  #retryAt = 0;
  #stderr: boolean;
  #lines: string[] = [];
  #bytes = 0;
  /** Lines flushed while the file could not be opened, written once it can (see flush). */
  #unwritten = "";
  #timer: Cancel | undefined;
  #deniedTokens = DENIED_RATE.burst;
  #deniedAt: number;
  #suppressed = 0;
  #maxBytes: number;
  #clock: Clock;
  /** The last line's time and its text: events of the same millisecond share it. */
  #tsMs = NaN;
  #ts = "";
  /** Each event name's part of the line after the time (see #head). */
  #heads = new Map<string, string>();
  /** A rotation under way (see #rotateAway). */
  #rotation: Promise<void> | undefined;

  constructor(options: AuditOptions) {
    this.#clock = options.clock ?? systemClock;
    this.#deniedAt = this.#clock.monotonic();
    this.#program = options.program;
    this.#stderr = options.stderr ?? true;
    this.#maxBytes = options.maxBytes ?? MAX_AUDIT_BYTES;
    this.#path = options.path;
    this.#open();
  }

  /**
   * Opens the log file. The state dir may not exist yet (identity creates
   * it, and the registry starts first), so a failure is retried each second.
   */
  #open(): void {
    if (this.#file || !this.#path || this.#clock.monotonic() < this.#retryAt) return;
    try {
      this.#file = Deno.openSync(this.#path, { append: true, create: true, mode: 0o600 });
    } catch {
      this.#retryAt = this.#clock.monotonic() + RETRY_OPEN_MS;
    }
  }

  /** Records one event, e.g. `event("fs.open", {cap_id, path})`. */
  event(name: string, fields: Record<string, unknown> = {}): void {
    if (name === "auth.denied" && !this.#takeDenied()) return;
    // The line is written field by field (every request of fs and identity
    // writes one): the same JSON as stringifying {ts, event, program, ...fields}
    // without the copies of the fields that took.
    let line = `{"ts":"${this.#now()}"${this.#head(name)}`;
    for (const k in fields) {
      const v = fields[k];
      if (v === undefined || SECRET_FIELDS.has(k) || !Object.hasOwn(fields, k)) continue;
      if (k === "ts" || k === "event" || k === "program" || isDigit(k.charCodeAt(0))) {
        return this.#eventSlow(name, fields);
      }
      const json = JSON.stringify(v) as string | undefined; // undefined for a function: left out
      if (json !== undefined) line += `${keyJson(k)}${json}`;
    }
    line += "}\n";
    this.#append(line);
  }

  /** `,"event":<name>,"program":<program>` (made once per event name). */
  #head(name: string): string {
    let head = this.#heads.get(name);
    if (head === undefined) {
      head = `,"event":${JSON.stringify(name)},"program":${JSON.stringify(this.#program)}`;
      if (this.#heads.size < MAX_CACHED) this.#heads.set(name, head);
    }
    return head;
  }

  /** The time for a line, ISO 8601 (made once per millisecond). */
  #now(): string {
    const ms = this.#clock.now();
    if (ms !== this.#tsMs) {
      this.#tsMs = ms;
      this.#ts = new Date(ms).toISOString();
    }
    return this.#ts;
  }

  /**
   * event() for fields that replace ts, event or program (their values win,
   * in their places) or whose names are numbers (which objects put first).
   */
  #eventSlow(name: string, fields: Record<string, unknown>): void {
    const clean: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(fields)) {
      if (v !== undefined && !SECRET_FIELDS.has(k)) clean[k] = v;
    }
    this.#append(
      JSON.stringify({
        ts: new Date(this.#clock.now()).toISOString(),
        event: name,
        program: this.#program,
        ...clean,
      }) + "\n",
    );
  }

  #append(line: string): void {
    this.#lines.push(line);
    this.#bytes += line.length;
    if (this.#bytes >= FLUSH_BYTES) this.flush();
    else if (this.#timer === undefined) {
      this.#timer = this.#clock.after(FLUSH_MS, () => this.flush());
    }
  }

  /** Whether one more refusal may be logged now; counts it as suppressed if not. */
  #takeDenied(): boolean {
    const now = this.#clock.monotonic();
    this.#deniedTokens = Math.min(
      DENIED_RATE.burst,
      this.#deniedTokens + ((now - this.#deniedAt) / 1000) * DENIED_RATE.perSecond,
    );
    this.#deniedAt = now;
    if (this.#deniedTokens >= 1) {
      this.#deniedTokens -= 1;
      return true;
    }
    if (this.#suppressed++ === 0) {
      // One summary line a second while the flood lasts.
      this.#clock.after(1000, () => {
        const count = this.#suppressed;
        this.#suppressed = 0;
        this.event("auth.denied.suppressed", { count });
      });
    }
    return false;
  }

  /**
   * Follows a rotation by another process (the path now names a new file)
   * and rotates the file itself once it has grown past MAX_AUDIT_BYTES.
   */
  #rotate(): void {
    if (!this.#file || !this.#path) return;
    try {
      const mine = this.#file.statSync();
      let current: Deno.FileInfo | undefined;
      try {
        current = Deno.statSync(this.#path);
      } catch { /* renamed away and not yet recreated */ }
      if (current?.ino === mine.ino) {
        if (mine.size > this.#maxBytes && this.#rotation === undefined) this.#rotateAway(mine.ino);
        return;
      }
      this.#file.close();
      this.#file = undefined;
      this.#open();
    } catch {
      // Rotation is best effort; writing goes on to the file we have.
    }
  }

  /**
   * Renames the log to audit.log.1, off the event loop, then opens a new one.
   * A rename over the last rotated file frees that file's blocks within the
   * call (and ext4 then also starts writing out the log's unwritten blocks,
   * its auto_da_alloc): 25-55 ms for 64 MiB here, on the event loop a stall
   * of every request the service had under way, and off it a wait for the
   * flushes that ran meanwhile. So the old file is removed first, and the
   * log renamed over no file at all. Writers of the same log in other
   * processes take turns by an exclusive lock on it: the one that gets it
   * second finds the path naming another file and only follows. Lines
   * flushed meanwhile go to the file being renamed, after the ones before
   * them.
   */
  #rotateAway(ino: number | null): void {
    const file = this.#file!;
    const path = this.#path!;
    this.#rotation = (async () => {
      // Locked through a handle of its own: close() may close the writer's file meanwhile, and
      // that must not let another writer in before this rotation is done.
      const held = await Deno.open(path, { read: true });
      try {
        await held.lock(true);
        const [locked, current] = await Promise.all([
          held.stat(),
          Deno.stat(path).catch(() => undefined),
        ]);
        // Rotated by another writer meanwhile: the path names another file now.
        if (locked.ino !== ino || current?.ino !== ino) return;
        await Deno.remove(`${path}.1`).catch(() => {});
        await Deno.rename(path, `${path}.1`);
      } finally {
        held.close(); // and the lock with it
      }
      if (this.#file !== file) return; // closed meanwhile
      file.close();
      this.#file = undefined;
      this.#open();
    })().catch(() => {
      // Best effort, as above; the next flush past the size tries again.
    }).finally(() => {
      this.#rotation = undefined;
    });
  }

  /** Settles once a rotation under way, if any, is done (for tests). */
  get rotated(): Promise<void> {
    return this.#rotation ?? Promise.resolve();
  }

  /**
   * Writes out every pending line now. Lines the file could not take yet (it
   * cannot be opened: the state dir not made yet, as for fs started ahead of
   * identity, which makes it) are kept and written with the next flush, a
   * second later at most, up to {@link MAX_UNWRITTEN_BYTES}.
   */
  flush(): void {
    this.#timer?.();
    this.#timer = undefined;
    if (this.#lines.length === 0 && this.#unwritten === "") return;
    const text = this.#lines.join("");
    this.#lines = [];
    this.#bytes = 0;
    if (this.#stderr && text !== "") {
      if (logFormat() === "human") {
        for (const line of text.split("\n")) if (line !== "") emitLine(line);
      } else {
        try {
          Deno.stderr.writeSync(encoder.encode(text));
        } catch { /* no stderr */ }
      }
    }
    this.#open();
    this.#rotate();
    const out = this.#unwritten + text;
    this.#unwritten = "";
    if (!this.#file) {
      if (!this.#path) return;
      // Kept for the file, the oldest lines first to go past the bound.
      let keep = out;
      if (keep.length > MAX_UNWRITTEN_BYTES) {
        const cut = keep.indexOf("\n", keep.length - MAX_UNWRITTEN_BYTES);
        keep = cut < 0 ? "" : keep.slice(cut + 1);
      }
      this.#unwritten = keep;
      if (keep !== "") this.#timer = this.#clock.after(RETRY_OPEN_MS, () => this.flush());
      return;
    }
    try {
      // One write per batch: O_APPEND keeps concurrent writers' batches whole.
      this.#file.writeSync(encoder.encode(out));
    } catch {
      // A full disk must not take the service down; stderr still has it.
    }
  }

  /** Flushes and closes the log file. */
  close(): void {
    this.flush();
    this.#timer?.();
    this.#timer = undefined;
    this.#file?.close();
    this.#file = undefined;
    this.#path = undefined;
  }
}
