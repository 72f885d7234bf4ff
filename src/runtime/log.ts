/**
 * Operational log lines on stderr, one JSON object per line (journald and
 * `jq` read them as they are), or, for a person at a terminal, one readable
 * line each: time, program, level when not info, message, then the fields.
 * Audit events go through audit.ts instead.
 * @module
 */

import { writeAllSync } from "./files.ts";

const encoder = new TextEncoder();

/** Severity of a log line. */
export type Level = "info" | "warn" | "error";

/** How lines are written: JSON (the default) or readable text. */
export type LogFormat = "json" | "human";

let format: LogFormat = "json";

/** Sets how this program writes its log lines (the supervisor: human on a terminal). */
export function setLogFormat(f: LogFormat): void {
  format = f;
}

/** How this program writes its log lines. */
export function logFormat(): LogFormat {
  return format;
}

/** A logger bound to one program's name. */
export interface Logger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/**
 * A field's value as a word: strings as they are (quoted when they hold
 * spaces), lists of words joined by commas, anything else as JSON.
 */
function fieldValue(v: unknown): string {
  if (typeof v === "string") return /[\s"]/.test(v) || v === "" ? JSON.stringify(v) : v;
  if (Array.isArray(v) && v.every((x) => typeof x === "string" && !/[\s",]/.test(x))) {
    return v.length ? v.join(",") : "-";
  }
  return JSON.stringify(v) ?? String(v);
}

/** Options for {@link humanLine}. */
export interface HumanLineOptions {
  /** Show the date as well as the time (default: the time alone). */
  date?: boolean;
  /** Width the program's name is padded to (default 10). */
  programWidth?: number;
}

/**
 * A JSON log line as one readable line: "17:04:05 fs         listening
 * socket=/run/strata/fs.sock pid=812"; a warning or error carries WARN or
 * ERROR before its message. A line that is not such JSON is returned as is.
 */
export function humanLine(line: string, options: HumanLineOptions = {}): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(line);
  } catch {
    return line;
  }
  // A logger line has msg; an audit event (also on stderr) names its event.
  if (!o || typeof o !== "object" || (typeof o.msg !== "string" && typeof o.event !== "string")) {
    return line;
  }
  const { ts, level, program, ...rest } = o;
  const msg = typeof rest.msg === "string" ? rest.msg : rest.event;
  const fields = Object.fromEntries(
    Object.entries(rest).filter(([k]) => k !== (typeof rest.msg === "string" ? "msg" : "event")),
  );
  const at = typeof ts === "string" && !Number.isNaN(Date.parse(ts))
    ? new Date(ts).toISOString()
    : "";
  const time = options.date ? at.slice(0, 19).replace("T", " ") : at.slice(11, 19);
  const who = String(program ?? "-").padEnd(options.programWidth ?? 10);
  const lvl = level === "info" || level === undefined ? "" : `${String(level).toUpperCase()} `;
  // A field with no value (signal=null on a plain exit) says nothing: left out.
  const kv = Object.entries(fields).filter(([, v]) => v !== null && v !== undefined)
    .map(([k, v]) => `${k}=${fieldValue(v)}`).join(" ");
  return `${time} ${who} ${lvl}${msg}${kv ? `  ${kv}` : ""}`;
}

/** Writes one log line to stderr in this program's format. */
export function emitLine(line: string): void {
  const out = format === "human" ? humanLine(line) : line;
  try {
    Deno.stderr.writeSync(encoder.encode(out + "\n"));
  } catch {
    // stderr is gone (parent died): nothing useful left to do with the line.
  }
}

/** Writes log lines to stderr in this program's format, in one write (a batch passed on). */
export function emitLines(lines: readonly string[]): void {
  if (lines.length === 0) return;
  const out = format === "human" ? lines.map((l) => humanLine(l)) : lines;
  const bytes = encoder.encode(out.join("\n") + "\n");
  try {
    writeAllSync(Deno.stderr, bytes);
  } catch {
    // stderr is gone (parent died): nothing useful left to do with the lines.
  }
}

/** Returns a logger that tags each line with `program`. */
export function logger(program: string): Logger {
  const write = (level: Level, msg: string, fields?: Record<string, unknown>) => {
    emitLine(JSON.stringify({ ts: new Date().toISOString(), level, program, msg, ...fields }));
  };
  return {
    info: (msg, fields) => write("info", msg, fields),
    warn: (msg, fields) => write("warn", msg, fields),
    error: (msg, fields) => write("error", msg, fields),
  };
}
