/**
 * Path confinement by real paths.
 *
 * A request path is joined to the token's path_prefix, checked lexically
 * (so "..", absolute paths elsewhere and sibling prefixes never touch the
 * disk), then resolved with realpath and checked again (so a symlink cannot
 * lead out). Because Deno opens by path, a path is served only through
 * folders that no other user can change (so nothing on it can be swapped for
 * a symlink between the check and the use), and an opened file must be the
 * one now at its path. The calls are synchronous: on a local disk they cost
 * a few microseconds, far less than a round trip through the async thread
 * pool.
 * @module
 */

import { closeSync, constants, fstatSync, openSync } from "node:fs";
import { posix } from "node:path";
import { invalidArgument, notFound, permissionDenied, StrataError } from "../wire/errors.ts";
import { ByteBudget } from "../wire/budget.ts";
import { normalizeAbsolute } from "./constraints.ts";
import { isWithin } from "../runtime/paths.ts";

/** Where a request may reach: the service's export roots and the token's prefix. */
export interface Confinement {
  /** Real, absolute export roots of the service. */
  roots: readonly string[];
  /** The token's path_prefix, if it has one. */
  prefix?: string;
  /** The service's own uid: folders it (or root) owns are ones no other user can change. */
  uid?: number;
  /**
   * Strata's own folders (state dir, runtime dir; as configured and as
   * resolved), never served whatever the roots and the prefix say.
   */
  private?: readonly string[];
}

/** The longest request path accepted. */
export const MAX_PATH = 4096;

/** The longest name of one file or folder, in UTF-8 bytes (Linux's NAME_MAX). */
export const MAX_NAME_BYTES = 255;

/** The longest whole path the kernel takes, in UTF-8 bytes (PATH_MAX less the NUL). */
const MAX_PATH_BYTES = 4095;

const encoder = new TextEncoder();

function denyOutside(shown: string, c: Confinement): StrataError {
  const roots = c.roots.length > 0 ? c.roots.join(", ") : "none";
  if (c.prefix !== undefined && !isWithin(shown, c.prefix)) {
    return permissionDenied(`path: ${shown} is outside the token's path_prefix ${c.prefix}`, {
      reason: "outside_prefix",
    });
  }
  // Inside the prefix (or no prefix): the roots are what it is outside of.
  const prefixToo = c.prefix !== undefined && !c.roots.some((r) => isWithin(c.prefix!, r))
    ? `; the token's path_prefix ${c.prefix} lies outside them too, so the token reaches nothing`
    : "";
  return permissionDenied(
    `path: ${shown} is outside the exported roots (${roots})${prefixToo}`,
    { reason: "outside_prefix" },
  );
}

/** Refuses a path inside one of Strata's own folders (keys, tokens, sockets). */
function assertNotPrivate(path: string, shown: string, c: Confinement): void {
  const dir = c.private?.find((d) => isWithin(path, d));
  if (dir === undefined) return;
  throw permissionDenied(
    `path: ${shown} is inside ${dir}, one of Strata's own folders (keys, tokens, sockets), ` +
      "which fs never serves; export and ask for paths outside it",
    { reason: "strata_private" },
  );
}

/** Refuses a path the kernel would reject as too long, before it reaches the disk. */
function assertNameLengths(joined: string): void {
  if (encoder.encode(joined).length > MAX_PATH_BYTES) {
    throw invalidArgument(`path: longer than ${MAX_PATH_BYTES} bytes once joined and encoded`);
  }
  for (const name of joined.split("/")) {
    if (encoder.encode(name).length > MAX_NAME_BYTES) {
      throw invalidArgument(
        `path: the name "${name.slice(0, 32)}…" is longer than ${MAX_NAME_BYTES} bytes`,
      );
    }
  }
}

function inside(path: string, c: Confinement): boolean {
  if (c.prefix !== undefined && !isWithin(path, c.prefix)) return false;
  return c.roots.some((root) => isWithin(path, root));
}

/** Realpath with its failures mapped to the protocol's errors, naming the request path. */
function realPath(path: string, shown: string): string {
  try {
    return Deno.realPathSync(path);
  } catch (err) {
    throw pathError(err, shown);
  }
}

/** Whether the token's path_prefix runs through a symlink (checked on refusals only). */
function symlinkedPrefix(c: Confinement): boolean {
  if (c.prefix === undefined) return false;
  try {
    return Deno.realPathSync(c.prefix) !== c.prefix;
  } catch {
    return false;
  }
}

function symlinkedPrefixError(c: Confinement): StrataError {
  return permissionDenied(
    `token: path_prefix ${c.prefix} runs through a symbolic link; issue it for the real path`,
    { reason: "symlinked_prefix" },
  );
}

/**
 * Resolves a request path to a real path inside the confinement.
 * Relative paths are taken from the token's path_prefix.
 */
export function resolveConfined(raw: string, c: Confinement): string {
  if (raw.length === 0) throw invalidArgument("path: must not be empty");
  if (raw.length > MAX_PATH) throw invalidArgument(`path: longer than ${MAX_PATH} characters`);
  if (raw.includes("\0")) throw invalidArgument("path: contains a NUL byte");
  let joined: string;
  if (posix.isAbsolute(raw)) {
    joined = normalizeAbsolute(raw, "path");
  } else if (c.prefix !== undefined) {
    joined = normalizeAbsolute(posix.join(c.prefix, raw), "path");
  } else {
    throw invalidArgument(
      "path: a relative path needs a token with a path_prefix; give an absolute path",
    );
  }
  if (!inside(joined, c)) throw denyOutside(joined, c);
  assertNotPrivate(joined, joined, c);
  assertNameLengths(joined);
  let real: string;
  try {
    real = realPath(joined, joined);
  } catch (err) {
    // Through a symlinked prefix, "no such file" would tell what exists elsewhere.
    if (symlinkedPrefix(c)) throw symlinkedPrefixError(c);
    throw err;
  }
  if (!inside(real, c)) {
    // A prefix that runs through a symlink fails here, since no real path lies
    // below it: a delegated token cannot reach wherever the link points.
    if (symlinkedPrefix(c)) throw symlinkedPrefixError(c);
    throw permissionDenied(
      `path: ${joined} resolves through a symbolic link to a place outside the token's reach`,
      { reason: "symlink_escape" },
    );
  }
  // A symlink in an export root may lead into Strata's own folders.
  assertNotPrivate(real, joined, c);
  return real;
}

/** A file opened inside the confinement. */
export interface ConfinedFile {
  /** The open file descriptor (read it with node:fs readSync, at an offset). */
  fd: number;
  /** The real path that was checked and opened. */
  path: string;
  size: number;
}

/**
 * Maps a file-system error (Deno's or node:fs's, both carry `code`) to the
 * protocol's, naming the request path `shown`: whatever the path, the answer
 * is INVALID_ARGUMENT, NOT_FOUND or PERMISSION_DENIED, never INTERNAL.
 * `opening` tells a final symlink met by O_NOFOLLOW (a swap) from a loop.
 */
function pathError(err: unknown, shown: string, opening = false): unknown {
  if (err instanceof StrataError) return err;
  if (err instanceof Deno.errors.NotCapable) {
    return permissionDenied(`path: ${shown} is outside what fs's sandbox lets it read`);
  }
  switch ((err as { code?: string }).code) {
    case "ENOENT":
      return notFound(`path: ${shown}: no such file or directory`);
    case "ENOTDIR":
      return invalidArgument(`path: ${shown}: a name on the path is a file, not a folder`);
    case "ELOOP":
      return opening
        ? permissionDenied("path: changed while it was being opened; try again", {
          reason: "path_swapped",
        })
        : invalidArgument(`path: ${shown}: too many levels of symbolic links`);
    case "ENAMETOOLONG":
      return invalidArgument(`path: ${shown.slice(0, 64)}…: a name or the path is too long`);
    case "EACCES":
    case "EPERM":
      return permissionDenied(`path: ${shown}: refused by the operating system`);
    case "EISDIR":
      return invalidArgument("path: is a directory; use fs.list to read a directory");
    case "ENXIO":
    case "ENODEV":
    case "EOPNOTSUPP":
      return invalidArgument(`path: ${shown} is not a regular file (a socket or device)`);
    case "EINVAL":
    case "EILSEQ":
      return invalidArgument(`path: ${shown} is not a name the file system accepts`);
    default:
      return err;
  }
}

/** A path that changed between its check and its use. */
function swapped(what: string): StrataError {
  return permissionDenied(`path: changed while it was being ${what}; try again`, {
    reason: "path_swapped",
  });
}

/** Whether a file belongs to root or to the service itself. */
function ours(st: Deno.FileInfo, c: Confinement): boolean {
  return st.uid === 0 || (c.uid !== undefined && st.uid === c.uid);
}

/**
 * Refuses a path that other users could redirect. Deno opens files by path
 * (there is no openat), so a folder on the path that someone else can
 * rename or replace lets them swap in a symlink between the check and the
 * open and send fs anywhere the service user can read, whatever its
 * --allow-read says (Deno checks the path as written, not where it leads).
 * So, as sshd's StrictModes does, every name from the export root down to
 * `real` (down to its folder when `lastMayChange`) must be a name only root
 * or the service user can change: its folder is theirs and not group- or
 * world-writable, or sticky (like /tmp) with the entry itself theirs.
 */
function assertStable(real: string, c: Confinement, what: string, lastMayChange: boolean): void {
  const root = c.roots.find((r) => isWithin(real, r));
  if (root === undefined) throw denyOutside(real, c);
  if (real === root) return;
  const names = real.slice(root === "/" ? 1 : root.length + 1).split("/");
  const check = lastMayChange ? names.length - 1 : names.length;
  let folder = Deno.lstatSync(root);
  let path = root === "/" ? "" : root;
  for (let i = 0; i < check; i++) {
    path += "/" + names[i];
    const st = Deno.lstatSync(path);
    if (st.isSymlink) throw swapped(what);
    const othersMayWrite = !ours(folder, c) || (folder.mode! & 0o022) !== 0;
    const sticky = (folder.mode! & 0o1000) !== 0;
    if (othersMayWrite && !(sticky && ours(st, c))) {
      throw permissionDenied(
        `path: ${posix.dirname(path)} can be changed by other users, so ${path} could be ` +
          "swapped for a symlink; fs serves only paths that root or its own user controls",
        { reason: "changeable_path" },
      );
    }
    folder = st;
  }
}

/**
 * Opens a regular file for reading inside the confinement: only through
 * folders no other user can change, non-blocking (a FIFO or device cannot
 * stall the service), without following a final symlink, and checked
 * afterwards to be the file now at that path (same device and inode).
 */
export function openConfined(raw: string, c: Confinement): ConfinedFile {
  let real: string;
  let fd: number;
  try {
    real = resolveConfined(raw, c);
    assertStable(real, c, "opened", true);
    fd = openSync(real, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
  } catch (err) {
    throw pathError(err, raw, true);
  }
  try {
    const info = fstatSync(fd);
    if (info.isDirectory()) {
      throw invalidArgument("path: is a directory; use fs.list to read a directory");
    }
    if (!info.isFile()) throw invalidArgument("path: not a regular file");
    const now = Deno.lstatSync(real);
    if (now.dev !== info.dev || now.ino !== info.ino) throw swapped("opened");
    return { fd, path: real, size: info.size };
  } catch (err) {
    closeSync(fd);
    throw pathError(err, raw, true);
  }
}

/** fs.list looks at no more directory entries than this (bounded work per request). */
export const MAX_SCAN = 10_000;

/** A directory's entries, sorted by name, as of one modification time. */
interface Listing {
  stamp: string;
  entries: Deno.DirEntry[];
  truncated: boolean;
}

/** Directories whose names are remembered (only small ones: at most this many entries). */
const LISTING_CACHE = { dirs: 256, entries: 1000 };
const listings = new Map<string, Listing>();

/** Folders read at once. */
const scans = new ByteBudget(2);

/**
 * The sorted entries of a directory. Adding, removing or renaming an entry
 * changes the directory's mtime and ctime, so names remembered under the
 * directory's device, inode and those times are exactly what readdir would
 * return; sizes are never remembered (every listing stats its files).
 */
function dirEntries(real: string, info: Deno.FileInfo): Listing | Promise<Listing> {
  const stamp = `${info.dev}:${info.ino}:${info.mtime?.getTime()}:${info.ctime?.getTime()}`;
  const hit = listings.get(real);
  if (hit && hit.stamp === stamp) {
    listings.delete(real);
    listings.set(real, hit);
    return hit;
  }
  return readListing(real, info, stamp);
}

/**
 * Reads the names and sorts them: a truncated listing is the alphabetically
 * first `limit`, and only the entries returned are stat'ed. Reading a folder
 * happens off the event loop (a huge one takes a while and would stall every
 * other request), a few folders at a time (each read holds all its names in
 * memory).
 */
async function readListing(real: string, info: Deno.FileInfo, stamp: string): Promise<Listing> {
  const entries: Deno.DirEntry[] = [];
  let truncated = false;
  const slot = await scans.take(1);
  try {
    for await (const e of Deno.readDir(real)) {
      if (entries.length >= MAX_SCAN) {
        truncated = true;
        break;
      }
      entries.push(e);
    }
  } finally {
    scans.give(slot);
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const listing = { stamp, entries, truncated };
  // File times have millisecond precision here, so a change in the same
  // millisecond as the one remembered would go unseen: only directories left
  // alone for a second are remembered.
  const quietFor = Date.now() -
    Math.max(info.mtime?.getTime() ?? Infinity, info.ctime?.getTime() ?? Infinity);
  if (entries.length <= LISTING_CACHE.entries && quietFor > 1000) {
    if (listings.size >= LISTING_CACHE.dirs) listings.delete(listings.keys().next().value!);
    listings.set(real, listing);
  }
  return listing;
}

/** One directory entry as fs.list reports it. */
export interface DirEntry {
  name: string;
  is_dir: boolean;
  is_symlink: boolean;
  size: number;
}

/**
 * Lists a directory inside the confinement, checking afterwards that the
 * directory listed is still the one that was checked. Symlinks are reported,
 * not followed.
 */
export function listConfined(
  raw: string,
  c: Confinement,
  limit: number,
): Listed | Promise<Listed> {
  let real: string;
  let info: Deno.FileInfo;
  try {
    real = resolveConfined(raw, c);
    assertStable(real, c, "listed", false);
    info = Deno.statSync(real);
  } catch (err) {
    throw pathError(err, raw);
  }
  if (!info.isDirectory) {
    throw invalidArgument("path: not a directory; use fs.open to read a file");
  }
  const listing = dirEntries(real, info);
  // A remembered folder is answered at once; one that must be read, later.
  return listing instanceof Promise
    ? listing.then((l) => sized(real, l, limit), (err) => Promise.reject(pathError(err, raw)))
    : sized(real, listing, limit);
}

/** A listing as fs.list returns it. */
export interface Listed {
  path: string;
  entries: DirEntry[];
  truncated: boolean;
}

/** The first `limit` entries with their sizes (lstat: a symlink is reported, never followed). */
function sized(real: string, listed: Listing, limit: number): Listed {
  const truncated = listed.truncated || listed.entries.length > limit;
  const found = listed.entries.length > limit ? listed.entries.slice(0, limit) : listed.entries;
  const base = real === "/" ? "" : real;
  const entries: DirEntry[] = found.map((e) => {
    let size = 0;
    try {
      if (e.isFile) size = Deno.lstatSync(`${base}/${e.name}`).size;
    } catch {
      // The entry vanished between readdir and stat: report it with size 0.
    }
    return { name: e.name, is_dir: e.isDirectory, is_symlink: e.isSymlink, size };
  });
  return { path: real, entries, truncated };
}
