/**
 * `fs cat` and `fs get`: a remote file streamed by repeated fs.read of the
 * largest size, so files of any size pass through in bounded memory. `get`
 * writes a temporary file beside DEST and renames it at the end, so DEST
 * appears whole or not at all, and never replaces a file without --force.
 * @module
 */

import { posix } from "../runtime/paths.ts";
import { pathExists } from "../runtime/files.ts";
import { CtlError, usage } from "./errors.ts";
import { formatBytes, formatDuration, progressLine } from "./format.ts";
import type { Session } from "./session.ts";

/** The largest fs.read; equal to MAX_READ in src/fs/service.ts (a unit test checks). */
export const READ_SIZE = 767 * 1024;

/** What streaming needs of a Session: calls (a fake in tests). */
export type Caller = Pick<Session, "call">;

/** Receives the file's bytes in order. */
export type Sink = (chunk: Uint8Array) => Promise<void>;

/** Called after each chunk with the bytes so far and the size fs reported at open. */
export type Progress = (done: number, total: number) => void;

/** How to stream: progress reports and rate-limit retries. */
export interface StreamOptions {
  onProgress?: Progress;
  /** First pause after a rate-limit refusal, doubling to 1 s (default 100 ms). */
  retryDelayMs?: number;
  /** Consecutive rate-limit refusals before giving up (default 50). */
  maxRetries?: number;
}

interface ReadResult {
  data_b64: string;
  bytes_read: number;
  eof: boolean;
}

/** Whether a failure is a rate-limit refusal worth waiting out. */
function rateLimited(err: unknown): boolean {
  return err instanceof CtlError && err.json.details?.reason === "rate_limited";
}

/** Calls fs, waiting out rate-limit refusals (a rate-limited token downloads slowly, not never). */
async function callPatiently<T>(
  session: Caller,
  method: string,
  params: Record<string, unknown>,
  options: StreamOptions,
): Promise<T> {
  let delay = options.retryDelayMs ?? 100;
  for (let attempt = 0;; attempt++) {
    try {
      return await session.call<T>(method, params);
    } catch (err) {
      if (!rateLimited(err) || attempt >= (options.maxRetries ?? 50)) throw err;
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 1000);
    }
  }
}

/** Options for {@link streamFile}: where the bytes go, and how to stream. */
export interface StreamFileOptions extends StreamOptions {
  sink: Sink;
}

/**
 * Opens `path` on fs, reads it to the end in READ_SIZE pieces, hands each to
 * `options.sink`, and closes the handle whatever happens. Returns the bytes read.
 */
export async function streamFile(
  session: Caller,
  path: string,
  options: StreamFileOptions,
): Promise<{ bytes: number; size: number }> {
  const sink = options.sink;
  const { handle, size } = await callPatiently<{ handle: string; size: number }>(
    session,
    "fs.open",
    { path },
    options,
  );
  let offset = 0;
  try {
    options.onProgress?.(0, size);
    while (true) {
      const r = await callPatiently<ReadResult>(
        session,
        "fs.read",
        { handle, offset, size: READ_SIZE },
        options,
      );
      const bytes = Uint8Array.fromBase64(r.data_b64);
      if (bytes.length > 0) await sink(bytes);
      offset += bytes.length;
      options.onProgress?.(offset, size);
      if (r.eof || bytes.length === 0) break;
    }
  } finally {
    await callPatiently(session, "fs.close", { handle }, options).catch(() => {
      // The handle closes by itself after 10 minutes unused.
    });
  }
  return { bytes: offset, size };
}

/** Writes all of `bytes` to `w` (a write may take only part). */
export async function writeAll(w: { write(p: Uint8Array): Promise<number> }, bytes: Uint8Array) {
  let off = 0;
  while (off < bytes.length) off += await w.write(bytes.subarray(off));
}

/**
 * Waits for a transfer to stdout; a reader that went away early (`| head`)
 * ends it quietly, as cat does, instead of as an error. Returns whether the
 * reader took everything.
 */
export async function untilReaderGone(transfer: Promise<unknown>): Promise<boolean> {
  try {
    await transfer;
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.BrokenPipe) return false;
    throw err;
  }
}

/** What {@link getFile} did, as `fs get --json` prints it. */
export interface GetResult {
  /** The remote path. */
  path: string;
  /** The absolute local path written, or "-" for stdout. */
  dest: string;
  bytes: number;
  elapsed_ms: number;
}

/** Options for {@link getFile}. */
export interface GetOptions extends StreamOptions {
  /** The local file or folder (default: PATH's name in `cwd`; "-" for stdout). */
  dest?: string;
  /** Replace DEST when it exists. */
  force?: boolean;
  /** The folder relative DESTs are taken from (default: Deno.cwd()). */
  cwd?: string;
  /**
   * Called on Ctrl-C once the temporary file is gone, before the exit (130):
   * to clear the progress bar and say so.
   */
  onInterrupt?: () => void;
}

/** Where relative DESTs start and how to tell a folder, for {@link resolveDest}. */
export interface DestOptions {
  cwd: string;
  isDir(path: string): boolean;
}

/**
 * The local path `fs get PATH [DEST]` writes: DEST (relative to `cwd`), or
 * the basename of PATH inside DEST when DEST is a folder, or inside `cwd`
 * when DEST is omitted.
 */
export function resolveDest(
  remote: string,
  dest: string | undefined,
  options: DestOptions,
): string {
  const { cwd, isDir } = options;
  const name = posix.basename(remote);
  const named = () => {
    if (name === "" || name === "." || name === "..") {
      throw usage(
        `cannot name the local file after ${remote}`,
        "give DEST, e.g. `fs get PATH out.bin`",
      );
    }
    return name;
  };
  if (dest === undefined) return posix.join(cwd, named());
  const full = posix.resolve(cwd, dest);
  if (dest.endsWith("/") || isDir(full)) return posix.join(full, named());
  return full;
}

function isDirectory(path: string): boolean {
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
}

/** Whether this program may create and rename files in `dir` (its Deno grant). */
export function mayWriteIn(dir: string): boolean {
  return Deno.permissions.querySync({ name: "write", path: dir }).state === "granted" &&
    Deno.permissions.querySync({ name: "read", path: dir }).state === "granted";
}

/** The refusal for a DEST outside strata-ctl's write grant (the folder it runs in). */
function outsideGrant(remote: string, dest: string, cwd: string): CtlError {
  const dir = posix.dirname(dest);
  return usage(
    `cannot write in ${dir}: strata-ctl may write only in the folder it was started from (${cwd})`,
    `cd ${dir} and run it there, or use \`strata-ctl fs cat ${remote} > ${dest}\``,
  );
}

/** Removes a file if it is there; never throws. */
function discard(path: string): void {
  try {
    Deno.removeSync(path);
  } catch { /* already gone */ }
}

/**
 * Puts the finished temporary file at `dest`. Without `force` a hard link
 * makes the name appear only if it is still free (atomically); with it, a
 * rename replaces whatever is there.
 */
function publish(tmp: string, dest: string, force: boolean): void {
  if (force) {
    Deno.renameSync(tmp, dest);
    return;
  }
  try {
    Deno.linkSync(tmp, dest);
    discard(tmp);
    return;
  } catch (err) {
    if (err instanceof Deno.errors.AlreadyExists) {
      throw usage(
        `${dest} appeared while downloading; nothing was overwritten`,
        "use --force to replace it",
      );
    }
    // No hard links on this file system: check, then rename.
  }
  if (pathExists(dest)) {
    throw usage(`${dest} appeared while downloading; nothing was overwritten`, "use --force");
  }
  Deno.renameSync(tmp, dest);
}

/**
 * Downloads `remote` to `options.dest` ("-" for stdout) through a temporary file in
 * DEST's folder, renamed at the end. Ctrl-C removes the temporary file.
 */
export async function getFile(
  session: Caller,
  remote: string,
  options: GetOptions = {},
): Promise<GetResult> {
  const dest = options.dest;
  const started = Date.now();
  if (dest === "-") {
    const { bytes } = await streamFile(session, remote, {
      ...options,
      sink: (c) => writeAll(Deno.stdout, c),
    });
    return { path: remote, dest: "-", bytes, elapsed_ms: Date.now() - started };
  }
  const cwd = options.cwd ?? Deno.cwd();
  const target = resolveDest(remote, dest, { cwd, isDir: isDirectory });
  const dir = posix.dirname(target);
  if (!mayWriteIn(dir)) throw outsideGrant(remote, target, cwd);
  if (!isDirectory(dir)) {
    throw usage(`the folder ${dir} does not exist`, `create it first (mkdir -p ${dir})`);
  }
  if (!options.force && pathExists(target)) {
    throw usage(`${target} already exists`, "use --force to replace it, or give another DEST");
  }
  const tmp = `${dir}/.${posix.basename(target)}.${crypto.randomUUID().slice(0, 8)}.part`;
  const file = await Deno.open(tmp, { write: true, createNew: true, mode: 0o666 });
  let closed = false;
  const interrupted = () => {
    if (!closed) file.close();
    discard(tmp);
    options.onInterrupt?.();
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", interrupted);
  try {
    const { bytes } = await streamFile(session, remote, {
      ...options,
      sink: (c) => writeAll(file, c),
    });
    await file.sync();
    file.close();
    closed = true;
    publish(tmp, target, options.force ?? false);
    return { path: remote, dest: target, bytes, elapsed_ms: Date.now() - started };
  } catch (err) {
    if (!closed) file.close();
    closed = true;
    discard(tmp);
    if (err instanceof Deno.errors.NotCapable) throw outsideGrant(remote, target, cwd);
    throw err;
  } finally {
    Deno.removeSignalListener("SIGINT", interrupted);
  }
}

/** The one-line summary of a finished download. */
export function getSummary(r: GetResult): string {
  const secs = r.elapsed_ms / 1000;
  // A rate means something only for a transfer of some size.
  const rate = r.bytes >= 1024 * 1024 && secs > 0
    ? `, ${formatBytes(Math.round(r.bytes / secs))}/s`
    : "";
  const took = r.elapsed_ms < 1000 ? `${r.elapsed_ms} ms` : formatDuration(r.elapsed_ms);
  return `saved ${r.dest} (${formatBytes(r.bytes)} in ${took}${rate})`;
}

/** Options for {@link terminalProgress}. */
export interface TerminalProgressOptions {
  /** The terminal's width now (default: Deno.consoleSize(), 80 when it cannot tell). */
  columns?: () => number;
}

/** The terminal's width, asked anew at each redraw (it may have been resized). */
function consoleColumns(): number {
  try {
    return Deno.consoleSize().columns || 80;
  } catch {
    return 80;
  }
}

/** How far back the rate looks: recent enough to follow a change, long enough to be steady. */
const RATE_WINDOW_MS = 3000;

/**
 * A progress bar redrawn in place on a terminal, at most ten times a second,
 * with the rate over the last few seconds and the time left, cut to the
 * terminal's width so that it never wraps.
 */
export function terminalProgress(
  write: (text: string) => void,
  now: () => number = Date.now,
  options: TerminalProgressOptions = {},
): { onProgress: Progress; finish(): void } {
  const columns = options.columns ?? consoleColumns;
  let last = -Infinity;
  let drawn = false;
  const samples: { t: number; done: number }[] = [];
  return {
    onProgress(done, total) {
      const t = now();
      samples.push({ t, done });
      while (samples.length > 2 && t - samples[1].t >= RATE_WINDOW_MS) samples.shift();
      if (t - last < 100 && done < total) return;
      last = t;
      drawn = true;
      const first = samples[0];
      // A rate from less than a quarter second says little: shown as unknown until then.
      const rateBps = t - first.t >= 250 ? ((done - first.done) * 1000) / (t - first.t) : 0;
      write(`\r${progressLine(done, total, { rateBps, columns: columns() })}\x1b[K`);
    },
    finish() {
      if (drawn) write("\r\x1b[K");
    },
  };
}
