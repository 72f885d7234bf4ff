/**
 * Reading the audit trail for `supervisor.audit`: the events every service
 * appends to the state dir's audit.log (and, after a rotation, audit.log.1),
 * filtered by time, capability and event, newest last. A cursor (the file's
 * inode and a byte offset) lets a follower ask for what was appended since,
 * across a rotation, so `strata-ctl audit -f` misses nothing.
 * @module
 */

import { invalidArgument } from "../wire/errors.ts";

/** Bytes of the files one answer reads at most, so one call cannot stall the supervisor. */
export const MAX_SCAN_BYTES = 16 * 1024 * 1024;

/** Characters of events one answer carries at most (well within a frame). */
export const MAX_PAGE_CHARS = 128 * 1024;

/** The files of the trail: the current one and the one rotated before it. */
export interface AuditFiles {
  audit: string;
  auditOld: string;
}

/** Which events to return. */
export interface AuditQuery {
  /** Only events at or after this time (epoch ms). */
  sinceMs?: number;
  /** Only events about this capability (its cap_id, or as `by` or `parent`). */
  capId?: string;
  /** Only this event, or (given a prefix such as "fs" or "cap") every event under it. */
  event?: string;
  /** At most this many: the last ones, or when following the first after the cursor. */
  lines: number;
  /** A `next` of an earlier answer: only what was appended after it. */
  after?: string;
}

/** One audit event: ts, event, program and its fields. */
export type AuditEvent = Record<string, unknown> & { ts: string; event: string };

/** What {@link readAudit} returns. */
export interface AuditPage {
  events: AuditEvent[];
  /** Pass as `after` to get only what is appended later. */
  next: string;
  /** More matched after these than one answer carries: ask again with `after: next`. */
  truncated?: boolean;
  /** Older events were not searched (the scan stopped at MAX_SCAN_BYTES). */
  more?: boolean;
}

/** Whether an event passes the query's filters. */
function matches(e: AuditEvent, q: AuditQuery): boolean {
  if (q.event !== undefined && e.event !== q.event && !e.event.startsWith(q.event + ".")) {
    return false;
  }
  if (q.capId !== undefined && e.cap_id !== q.capId && e.by !== q.capId && e.parent !== q.capId) {
    return false;
  }
  if (q.sinceMs !== undefined && !(Date.parse(e.ts) >= q.sinceMs)) return false;
  return true;
}

/** A line as an event, or undefined for a torn or foreign line. */
function parse(line: string): AuditEvent | undefined {
  try {
    const o = JSON.parse(line);
    return o && typeof o === "object" && typeof o.ts === "string" && typeof o.event === "string"
      ? o
      : undefined;
  } catch {
    return undefined;
  }
}

/** inode and size of a file, or undefined when it is not there. */
async function statOf(path: string): Promise<{ ino: number; size: number } | undefined> {
  try {
    const info = await Deno.stat(path);
    return { ino: info.ino ?? 0, size: info.size };
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

/** Reads `length` bytes of `path` from `offset` (fewer at its end). */
async function readRange(path: string, offset: number, length: number): Promise<Uint8Array> {
  const file = await Deno.open(path, { read: true });
  try {
    await file.seek(offset, Deno.SeekMode.Start);
    const buf = new Uint8Array(length);
    let got = 0;
    while (got < length) {
      const n = await file.read(buf.subarray(got));
      if (n === null) break;
      got += n;
    }
    return buf.subarray(0, got);
  } finally {
    file.close();
  }
}

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** Parses a cursor "<inode>:<offset>". */
function parseCursor(text: string): { ino: number; offset: number } {
  const m = /^(\d{1,20}):(\d{1,16})$/.exec(text);
  if (!m) {
    throw invalidArgument(
      'params.after: expected a cursor "<inode>:<offset>", the next of an earlier answer',
    );
  }
  return { ino: Number(m[1]), offset: Number(m[2]) };
}

/**
 * The events of the trail that match `q`: the last `q.lines` of them (the
 * newest file first, read backwards), or with `q.after` those appended
 * after the cursor, oldest first.
 */
export async function readAudit(files: AuditFiles, q: AuditQuery): Promise<AuditPage> {
  const current = await statOf(files.audit);
  const end = current ? `${current.ino}:${current.size}` : "0:0";
  if (q.after !== undefined) return await follow(files, q, parseCursor(q.after), end);
  // Newest first: the current file from its end, then the rotated one.
  const found: AuditEvent[] = [];
  let budget = MAX_SCAN_BYTES;
  let more = false;
  let older = false;
  for (const path of [files.audit, files.auditOld]) {
    const st = await statOf(path);
    if (!st) continue;
    let pos = st.size;
    let carry = new Uint8Array(0);
    while (pos > 0 && found.length < q.lines && !older) {
      if (budget <= 0) {
        more = true;
        break;
      }
      const size = Math.min(64 * 1024, pos, budget);
      pos -= size;
      budget -= size;
      const chunk = await readRange(path, pos, size);
      const joined = new Uint8Array(chunk.length + carry.length);
      joined.set(chunk);
      joined.set(carry, chunk.length);
      // The bytes before the first newline may be the end of a line further back.
      const first = pos > 0 ? joined.indexOf(0x0a) : -1;
      carry = first >= 0 ? joined.slice(0, first) : new Uint8Array(0);
      const lines = decoder.decode(first >= 0 ? joined.subarray(first + 1) : joined).split("\n");
      for (let i = lines.length - 1; i >= 0 && found.length < q.lines; i--) {
        const e = parse(lines[i]);
        if (!e) continue;
        // Services batch their lines for 100 ms: a little slack before giving up on time.
        if (q.sinceMs !== undefined && Date.parse(e.ts) < q.sinceMs - 5000) older = true;
        if (matches(e, q)) found.push(e);
      }
    }
    if (found.length >= q.lines || older || more) break;
  }
  found.reverse();
  return { ...page(found, q.lines, { fromEnd: true }), next: end, ...(more ? { more } : {}) };
}

/** At most `lines` events and MAX_PAGE_CHARS characters, from the end or from the start. */
function page(
  events: AuditEvent[],
  lines: number,
  options: { fromEnd: boolean },
): { events: AuditEvent[]; truncated?: boolean } {
  const ordered = options.fromEnd ? [...events].reverse() : events;
  const out: AuditEvent[] = [];
  let chars = 0;
  for (const e of ordered) {
    const n = JSON.stringify(e).length;
    if (out.length >= lines || chars + n > MAX_PAGE_CHARS) break;
    out.push(e);
    chars += n;
  }
  if (options.fromEnd) out.reverse();
  return { events: out, ...(out.length < events.length ? { truncated: true } : {}) };
}

/**
 * What was appended after a cursor: the rest of the file it names (the
 * rotated one, if the trail has rotated since), then the current file.
 */
async function follow(
  files: AuditFiles,
  q: AuditQuery,
  from: { ino: number; offset: number },
  end: string,
): Promise<AuditPage> {
  const current = await statOf(files.audit);
  const old = await statOf(files.auditOld);
  // Where to read: the file the cursor names, then (after a rotation) the new one.
  const spans: { path: string; ino: number; offset: number; size: number }[] = [];
  if (current && current.ino === from.ino) {
    spans.push({ path: files.audit, ...current, offset: Math.min(from.offset, current.size) });
  } else {
    if (old && old.ino === from.ino) {
      spans.push({ path: files.auditOld, ...old, offset: Math.min(from.offset, old.size) });
    }
    // A cursor from before a rotation (or from another node): the new file from its start.
    if (current) spans.push({ path: files.audit, ...current, offset: 0 });
  }
  let budget = MAX_SCAN_BYTES;
  let next = end;
  const found: { e: AuditEvent; cursor: string }[] = [];
  let chars = 0;
  let full = false;
  for (const span of spans) {
    let pos = span.offset;
    next = `${span.ino}:${pos}`;
    while (pos < span.size && !full) {
      const size = Math.min(256 * 1024, span.size - pos, budget);
      if (size <= 0) {
        full = true;
        break;
      }
      budget -= size;
      const chunk = await readRange(span.path, pos, size);
      const last = chunk.lastIndexOf(0x0a);
      // A line still being written is left for the next call.
      if (last < 0) break;
      let at = pos;
      for (const line of decoder.decode(chunk.subarray(0, last + 1)).split("\n")) {
        if (line === "") continue;
        at += encoder.encode(line).length + 1;
        const e = parse(line);
        if (!e || !matches(e, q)) {
          next = `${span.ino}:${at}`;
          continue;
        }
        const n = JSON.stringify(e).length;
        if (found.length >= q.lines || chars + n > MAX_PAGE_CHARS) {
          full = true;
          break;
        }
        found.push({ e, cursor: `${span.ino}:${at}` });
        chars += n;
        next = `${span.ino}:${at}`;
      }
      if (full) break;
      pos += last + 1;
    }
    if (full) break;
  }
  return {
    events: found.map((f) => f.e),
    next,
    ...(full ? { truncated: true } : {}),
  };
}
