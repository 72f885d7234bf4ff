/**
 * Operational log lines on stderr, one JSON object per line (journald and
 * `jq` read them as they are). Audit events go through audit.ts instead.
 * @module
 */

const encoder = new TextEncoder();

/** Severity of a log line. */
export type Level = "info" | "warn" | "error";

/** A logger bound to one program's name. */
export interface Logger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/** Returns a logger that tags each line with `program`. */
export function logger(program: string): Logger {
  const write = (level: Level, msg: string, fields?: Record<string, unknown>) => {
    const line = JSON.stringify({ ts: new Date().toISOString(), level, program, msg, ...fields });
    try {
      Deno.stderr.writeSync(encoder.encode(line + "\n"));
    } catch {
      // stderr is gone (parent died): nothing useful left to do with the line.
    }
  };
  return {
    info: (msg, fields) => write("info", msg, fields),
    warn: (msg, fields) => write("warn", msg, fields),
    error: (msg, fields) => write("error", msg, fields),
  };
}
