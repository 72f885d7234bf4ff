/**
 * The services' log lines, kept by the supervisor: each child's stdout and
 * stderr are read line by line, passed on to the supervisor's own stderr
 * (journald under systemd, the terminal under `deno task start`), appended
 * to `<state dir>/logs/<service>.log` (0600, one JSON object per line,
 * rotated to `.log.1` at {@link MAX_LOG_BYTES}), and the last
 * {@link RING_LINES} of each service are held in memory for the
 * `supervisor.logs` method.
 * @module
 */

import type { Layout } from "../runtime/config.ts";
import { stateFiles } from "../runtime/config.ts";
import { writeAllSync } from "../runtime/files.ts";
import { RING_LINES } from "../api/supervisor.ts";

/** A log file is renamed to `.log.1` (replacing the previous one) when it would pass this size. */
export const MAX_LOG_BYTES = 4 * 1024 * 1024;

/** Lines of each service held in memory (what `supervisor.logs` can return; declared with it). */
export { RING_LINES };

/** Lines a ring may hold past RING_LINES before it is trimmed back. */
const RING_SLACK = 64;

/** A longer line is cut into pieces of this many characters. */
export const MAX_LINE_CHARS = 8192;

/**
 * Characters of lines one `supervisor.logs` answer carries at most, so that
 * even fully escaped (a control character is 6 in JSON) it fits in a frame.
 */
export const MAX_PAGE_CHARS = 128 * 1024;

/** One line of a service's log, as `supervisor.logs` returns it. */
export interface LogLine {
  /** Increases by one for each line the supervisor keeps (across services). */
  seq: number;
  /** When the line was written (RFC 3339). */
  ts: string;
  service: string;
  /** The line: a JSON object with ts, level, program and msg (a service's logger writes these). */
  line: string;
}

/** What {@link LogBook.read} returns: the lines, and the cursor to follow from. */
export interface LogPage {
  lines: LogLine[];
  /** Pass as `after` to get only lines kept after these. */
  next: number;
  /** More lines matched than one answer carries (ask again with `after: next`). */
  truncated?: boolean;
}

/** Which lines to read: a service (default all), at most `lines`, newer than `since`/`after`. */
export interface LogQuery {
  service?: string;
  lines: number;
  /** Only lines written at or after this time (epoch ms). */
  sinceMs?: number;
  /** Only lines with a seq above this. */
  after?: number;
}

/** Where lines go besides the book: the supervisor's stderr, one line at a time. */
export type Passthrough = (service: string, line: string) => void;

const encoder = new TextEncoder();

/**
 * A line as it is kept: a service's JSON log line as it is (it has its own
 * ts), anything else (a panic, a stray print) wrapped into one.
 */
export function normalizeLine(
  service: string,
  text: string,
  now: number,
): { ts: string; line: string } {
  if (text.startsWith("{")) {
    try {
      const o = JSON.parse(text);
      if (
        o && typeof o === "object" && typeof o.ts === "string" && !Number.isNaN(Date.parse(o.ts))
      ) {
        return { ts: o.ts, line: text };
      }
    } catch {
      // Not JSON after all: wrap it below.
    }
  }
  const ts = new Date(now).toISOString();
  return { ts, line: JSON.stringify({ ts, level: "info", program: service, msg: text }) };
}

/** One service's log file: appended to, rotated at MAX_LOG_BYTES, 0600. */
class LogFile {
  #path: string;
  #file?: Deno.FsFile;
  #size = 0;
  #dir: string;

  constructor(dir: string, service: string) {
    this.#dir = dir;
    this.#path = `${dir}/${service}.log`;
  }

  get path(): string {
    return this.#path;
  }

  #open(): Deno.FsFile | undefined {
    if (this.#file) return this.#file;
    try {
      Deno.mkdirSync(this.#dir, { recursive: true, mode: 0o700 });
      this.#file = Deno.openSync(this.#path, { append: true, create: true, mode: 0o600 });
      this.#size = this.#file.statSync().size;
      return this.#file;
    } catch {
      // The state dir may not exist yet (identity creates it) or be full:
      // the line is still in memory and on stderr; the next line tries again.
      return undefined;
    }
  }

  /** Appends lines (without their newlines) in one write: a child's chunk costs one system call. */
  append(lines: readonly string[]): void {
    const bytes = encoder.encode(lines.join("\n") + "\n");
    if (this.#file && this.#size + bytes.length > MAX_LOG_BYTES) this.#rotate();
    const file = this.#open();
    if (!file) return;
    try {
      writeAllSync(file, bytes);
      this.#size += bytes.length;
    } catch {
      this.close();
    }
  }

  #rotate(): void {
    this.close();
    try {
      Deno.renameSync(this.#path, `${this.#path}.1`);
    } catch {
      // Could not rotate: keep appending rather than lose lines.
    }
  }

  /** The last `n` lines on disk (the current file, then the rotated one if need be). */
  tail(n: number): string[] {
    const read = (p: string) => {
      try {
        return Deno.readTextFileSync(p).split("\n").filter((l) => l !== "");
      } catch {
        return [];
      }
    };
    let lines = read(this.#path);
    if (lines.length < n) lines = [...read(`${this.#path}.1`), ...lines];
    return lines.slice(-n);
  }

  close(): void {
    try {
      this.#file?.close();
    } catch { /* already closed */ }
    this.#file = undefined;
  }
}

/** The log lines of every supervised service: files, memory, and the pass-through. */
export class LogBook {
  #files = new Map<string, LogFile>();
  #rings = new Map<string, LogLine[]>();
  #seq = 0;
  #passthrough?: Passthrough;

  /** Opens the book for `services`, loading the last lines each left on disk. */
  constructor(layout: Layout, services: readonly string[], passthrough?: Passthrough) {
    this.#passthrough = passthrough;
    const dir = stateFiles(layout).logs;
    for (const s of services) {
      const file = new LogFile(dir, s);
      this.#files.set(s, file);
      this.#rings.set(
        s,
        file.tail(RING_LINES).map((line) => {
          const n = normalizeLine(s, line, Date.now());
          return { seq: ++this.#seq, ts: n.ts, service: s, line: n.line };
        }),
      );
    }
  }

  /** The file a service's lines go to. */
  pathOf(service: string): string | undefined {
    return this.#files.get(service)?.path;
  }

  /** Keeps one line a service wrote (without its newline). */
  add(service: string, text: string): void {
    this.addLines(service, [text]);
  }

  /**
   * Keeps the lines a service wrote in one chunk: each is passed on and kept
   * in memory, and the file gets them in one write.
   */
  addLines(service: string, texts: readonly string[]): void {
    const ring = this.#rings.get(service);
    if (!ring) return;
    const kept: string[] = [];
    const now = Date.now();
    for (const text of texts) {
      for (let i = 0; i < text.length; i += MAX_LINE_CHARS) {
        const piece = text.slice(i, i + MAX_LINE_CHARS);
        const n = normalizeLine(service, piece, now);
        this.#passthrough?.(service, n.line);
        kept.push(n.line);
        ring.push({ seq: ++this.#seq, ts: n.ts, service, line: n.line });
      }
    }
    if (kept.length === 0) return;
    // Trimmed in steps rather than a line at a time (read() looks at the last RING_LINES only).
    if (ring.length >= RING_LINES + RING_SLACK) ring.splice(0, ring.length - RING_LINES);
    this.#files.get(service)!.append(kept);
  }

  /**
   * Lines of one service or all, in the order they were kept: the last
   * `q.lines` of them; or, following (`after` given), the first `q.lines`
   * after the cursor, so that a follower misses none.
   */
  read(q: LogQuery): LogPage {
    const rings = (q.service ? [this.#rings.get(q.service) ?? []] : [...this.#rings.values()])
      .map((r) => r.length > RING_LINES ? r.slice(-RING_LINES) : r);
    const matched = rings.flat().filter((l) =>
      (q.after === undefined || l.seq > q.after) &&
      (q.sinceMs === undefined || Date.parse(l.ts) >= q.sinceMs)
    ).sort((a, b) => a.seq - b.seq);
    const following = q.after !== undefined;
    const ordered = following ? matched : matched.reverse();
    const lines: LogLine[] = [];
    let chars = 0;
    for (const l of ordered) {
      if (lines.length >= q.lines || chars + l.line.length > MAX_PAGE_CHARS) break;
      lines.push(l);
      chars += l.line.length;
    }
    const truncated = lines.length < matched.length;
    if (!following) lines.reverse();
    const next = following && truncated ? lines.at(-1)?.seq ?? q.after! : this.#seq;
    return { lines, next, ...(truncated ? { truncated } : {}) };
  }

  /** Closes every file. */
  close(): void {
    for (const f of this.#files.values()) f.close();
  }
}

/**
 * The bytes a child's output is read in. A read waits, holding its buffer,
 * for as long as the child is quiet: a stream's own reads take 64 KiB each,
 * 384 KiB held for the six pipes of three children.
 */
const PIPE_READ_BYTES = 4096;

/**
 * The chunks of `stream`: of a byte stream (a child's pipe) read into one
 * buffer of {@link PIPE_READ_BYTES}, each valid until the next is asked for.
 */
async function* chunksOf(stream: ReadableStream<Uint8Array>): AsyncGenerator<Uint8Array> {
  let reader: ReadableStreamBYOBReader;
  try {
    reader = stream.getReader({ mode: "byob" });
  } catch {
    yield* stream; // not a byte stream
    return;
  }
  let buf = new Uint8Array(PIPE_READ_BYTES);
  try {
    for (;;) {
      const { value, done } = await reader.read(buf);
      if (done || !value) return;
      yield value;
      buf = new Uint8Array(value.buffer); // the read handed the buffer back in value
    }
  } finally {
    reader.releaseLock();
  }
}

/**
 * Reads a child's stream into the book until it ends: the complete lines of
 * each chunk are handed on together (a partial last line is kept too).
 */
export async function pumpLines(
  stream: ReadableStream<Uint8Array>,
  onLines: (lines: string[]) => void,
): Promise<void> {
  const decoder = new TextDecoder();
  let pending = "";
  try {
    for await (const chunk of chunksOf(stream)) {
      pending += decoder.decode(chunk, { stream: true });
      const lines: string[] = [];
      let start = 0;
      let nl: number;
      while ((nl = pending.indexOf("\n", start)) !== -1) {
        const end = nl > start && pending.charCodeAt(nl - 1) === 13 ? nl - 1 : nl;
        lines.push(pending.slice(start, end));
        start = nl + 1;
      }
      pending = pending.slice(start);
      // A runaway line without a newline is cut rather than held without bound.
      while (pending.length > MAX_LINE_CHARS) {
        lines.push(pending.slice(0, MAX_LINE_CHARS));
        pending = pending.slice(MAX_LINE_CHARS);
      }
      if (lines.length > 0) onLines(lines);
    }
  } catch {
    // The child is gone; what it wrote so far is kept.
  }
  pending += decoder.decode();
  if (pending !== "") onLines([pending]);
}
