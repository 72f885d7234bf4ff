/**
 * Durable file writes: write to a temporary file, fsync it, rename it over
 * the target, fsync the folder. A reader sees the old file or the new one,
 * never half of either, and a crash at any point loses nothing acknowledged.
 * @module
 */

import { posix } from "./paths.ts";

/** Options for {@link writeFileAtomic}. */
export interface AtomicWriteOptions {
  /** The temporary file to write first (must be writable by the program). */
  tmpPath: string;
  /** File mode, e.g. 0o600. */
  mode?: number;
  /** fsync file and folder (default true; off for files on tmpfs). */
  durable?: boolean;
}

/** Writes all of `bytes` to `file` (a write may take only part of them). */
export function writeAllSync(file: { writeSync(p: Uint8Array): number }, bytes: Uint8Array): void {
  let off = 0;
  while (off < bytes.length) off += file.writeSync(bytes.subarray(off));
}

/** Reads `length` bytes at `offset` of an open file (fewer only past its end). */
export function readAtSync(file: Deno.FsFile, offset: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  file.seekSync(offset, Deno.SeekMode.Start);
  let got = 0;
  while (got < length) {
    const n = file.readSync(out.subarray(got));
    if (n === null || n === 0) break;
    got += n;
  }
  return out.subarray(0, got);
}

/** Replaces `path` with `data` atomically. */
export function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  options: AtomicWriteOptions,
): void {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const durable = options.durable ?? true;
  const file = Deno.openSync(options.tmpPath, {
    write: true,
    create: true,
    truncate: true,
    mode: options.mode ?? 0o600,
  });
  try {
    writeAllSync(file, bytes);
    if (options.mode !== undefined) Deno.chmodSync(options.tmpPath, options.mode);
    if (durable) file.syncSync();
  } finally {
    file.close();
  }
  Deno.renameSync(options.tmpPath, path);
  if (durable) syncDir(posix.dirname(path));
}

/** fsyncs a folder so a rename or a new file in it survives a crash. */
export function syncDir(dir: string): void {
  try {
    const d = Deno.openSync(dir, { read: true });
    try {
      d.syncSync();
    } finally {
      d.close();
    }
  } catch {
    // Some file systems refuse fsync on folders; the data itself is synced.
  }
}

/**
 * Creates a folder (and parents) with `mode` if it is missing, leaving an
 * existing one's mode as it is; refuses a symlink or a file in its place.
 */
export function makeDir(dir: string, mode: number): void {
  try {
    Deno.mkdirSync(dir, { recursive: true, mode });
  } catch (err) {
    // A file in its place (or in place of a parent): the check below says which.
    if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
  }
  const st = Deno.lstatSync(dir);
  if (st.isSymlink || !st.isDirectory) {
    throw new Error(`${dir} is not a folder (a symlink or file is in its place); remove it`);
  }
}

/**
 * Creates a folder (and parents) and sets its mode exactly. Refuses a
 * symlink in its place, and fails unless this user owns it (only the owner
 * may chmod), so a folder planted by someone else in /tmp is never used.
 */
export function ensureDir(dir: string, mode: number): void {
  makeDir(dir, mode);
  try {
    Deno.chmodSync(dir, mode);
  } catch (err) {
    throw new Error(`${dir} belongs to another user (${err}); remove it or choose another dir`);
  }
}

/**
 * Takes group and other access away from a file that should be the owner's
 * alone (a key restored from a backup as 0644): returns the mode it had when
 * it was changed, else undefined (not there, not a plain file, or already
 * private).
 */
export function makePrivate(path: string): number | undefined {
  let st: Deno.FileInfo;
  try {
    st = Deno.lstatSync(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
  const mode = st.mode! & 0o7777;
  if (!st.isFile || (mode & 0o7077) === 0) return undefined;
  Deno.chmodSync(path, mode & 0o700);
  return mode;
}

/** The text of the file at `path` ("" when there is none). */
export function readTextIfAny(path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
    return "";
  }
}

/** Removes `path` if it is there. */
export function removeIfAny(path: string): void {
  try {
    Deno.removeSync(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
}

/** Whether anything (a symlink too, not followed) is at `path`; errors other than NotFound are thrown. */
export function pathExists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

/** Files locked by {@link holdLock}, held open (and so locked) until the process ends. */
const held: Deno.FsFile[] = [];

/**
 * Takes an exclusive lock (flock) on `path`, creating it (0600) if need be,
 * and holds it until the process ends: the kernel lets it go however the
 * process ends, so a `kill -9` leaves no stale lock. Throws `refusal` when
 * another process still holds it after `waitMs` (a process that is exiting
 * lets go within that), and the system's error when the lock cannot be
 * taken at all (a file system without locks).
 */
export async function holdLock(path: string, refusal: string, waitMs = 250): Promise<void> {
  const file = Deno.openSync(path, { read: true, write: true, create: true, mode: 0o600 });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const outcome = await Promise.race([
    file.lock(true).then(() => "locked" as const, (err: unknown) => err),
    new Promise<"held">((r) => (timer = setTimeout(() => r("held"), waitMs))),
  ]);
  clearTimeout(timer);
  if (outcome === "locked") {
    held.push(file);
    return;
  }
  file.close();
  if (outcome === "held") throw new Error(refusal);
  throw new Error(`cannot lock ${path} (${outcome})`);
}
