/**
 * Audit events: one JSON line per event to the state dir's audit.log and to
 * stderr. Lines are batched (flushed every 100 ms or at 64 KiB) so auditing
 * every read costs one write per batch, not one per request. A token is never
 * written: only its cap_id.
 * @module
 */

const encoder = new TextEncoder();
const FLUSH_MS = 100;
const FLUSH_BYTES = 64 * 1024;

/** Options for {@link Audit}. */
export interface AuditOptions {
  /** The audit log file; omitted means stderr only. */
  path?: string;
  /** The program writing, recorded in each line. */
  program: string;
  /** Also copy each line to stderr (default true). */
  stderr?: boolean;
}

/** Field names that must never reach the log. */
const SECRET_FIELDS = new Set(["token", "secret", "auth"]);

/** A batched writer of audit events. */
export class Audit {
  #program: string;
  #path?: string;
  #file?: Deno.FsFile;
  #retryAt = 0;
  #stderr: boolean;
  #lines: string[] = [];
  #bytes = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(options: AuditOptions) {
    this.#program = options.program;
    this.#stderr = options.stderr ?? true;
    this.#path = options.path;
    this.#open();
  }

  /**
   * Opens the log file. The state dir may not exist yet (identity creates
   * it, and the registry starts first), so a failure is retried each second.
   */
  #open(): void {
    if (this.#file || !this.#path || Date.now() < this.#retryAt) return;
    try {
      this.#file = Deno.openSync(this.#path, { append: true, create: true, mode: 0o600 });
    } catch {
      this.#retryAt = Date.now() + 1000;
    }
  }

  /** Records one event, e.g. `event("fs.open", {cap_id, path})`. */
  event(name: string, fields: Record<string, unknown> = {}): void {
    const clean: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(fields)) {
      if (v !== undefined && !SECRET_FIELDS.has(k)) clean[k] = v;
    }
    const line = JSON.stringify({
      ts: new Date().toISOString(),
      event: name,
      program: this.#program,
      ...clean,
    }) + "\n";
    this.#lines.push(line);
    this.#bytes += line.length;
    if (this.#bytes >= FLUSH_BYTES) this.flush();
    else if (this.#timer === undefined) {
      this.#timer = setTimeout(() => this.flush(), FLUSH_MS);
      Deno.unrefTimer(this.#timer);
    }
  }

  /** Writes out every pending line now. */
  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#lines.length === 0) return;
    const bytes = encoder.encode(this.#lines.join(""));
    this.#lines = [];
    this.#bytes = 0;
    this.#open();
    try {
      // One write per batch: O_APPEND keeps concurrent writers' batches whole.
      this.#file?.writeSync(bytes);
    } catch {
      // A full disk must not take the service down; stderr still has it.
    }
    if (this.#stderr) {
      try {
        Deno.stderr.writeSync(bytes);
      } catch { /* no stderr */ }
    }
  }

  /** Flushes and closes the log file. */
  close(): void {
    this.flush();
    this.#file?.close();
    this.#file = undefined;
    this.#path = undefined;
  }
}
