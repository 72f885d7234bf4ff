/**
 * fs's confined I/O: resolving, opening and listing request paths under the
 * export roots, with the listing cache and the folder-scan budget.
 *
 * The decisions (is this path inside the prefix and the roots, is it one of
 * Strata's own folders, is a folder one other users may change) are
 * policy/paths.ts's; this module does the disk work between them. Because
 * Deno opens by path, a path is served only through folders that no other
 * user can change (so nothing on it can be swapped for a symlink between the
 * check and the use), and an opened file must be the one now at its path.
 * The calls are synchronous: on a local disk they cost a few microseconds,
 * far less than a round trip through the async thread pool.
 * @module
 */

import { closeSync, constants, fstatSync, openSync } from "node:fs";
import { invalidArgument, notFound, permissionDenied, StrataError } from "../wire/errors.ts";
import { ByteBudget } from "../wire/budget.ts";
import {
  assertNotPrivate,
  changeablePathError,
  type Confinement,
  confinePath,
  denyOutside,
  isConfined,
  isStableName,
  symlinkedPrefixError,
  symlinkEscapeError,
} from "../policy/paths.ts";
import { isWithin, posix } from "../runtime/paths.ts";
import { compareNames } from "../api/method.ts";
import { type Clock, systemClock } from "../runtime/clock.ts";

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

/**
 * Resolves a request path to a real path inside the confinement.
 * Relative paths are taken from the token's path_prefix.
 */
export function resolveConfined(raw: string, c: Confinement): string {
  const joined = confinePath(raw, c);
  let real: string;
  try {
    real = realPath(joined, joined);
  } catch (err) {
    // Through a symlinked prefix, "no such file" would tell what exists elsewhere.
    if (symlinkedPrefix(c)) throw symlinkedPrefixError(c);
    throw err;
  }
  if (!isConfined(real, c)) {
    // A prefix that runs through a symlink fails here, since no real path lies
    // below it: a delegated token cannot reach wherever the link points.
    if (symlinkedPrefix(c)) throw symlinkedPrefixError(c);
    throw symlinkEscapeError(joined);
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

/**
 * Refuses a path that other users could redirect. Deno opens files by path
 * (there is no openat), so a folder on the path that someone else can
 * rename or replace lets them swap in a symlink between the check and the
 * open and send fs anywhere the service user can read, whatever its
 * --allow-read says (Deno checks the path as written, not where it leads).
 * So every name from the export root down to `real` (down to its folder when
 * `lastMayChange`) must be a name only root or the service user can change
 * (policy/paths.ts isStableName decides). Returns the lstat of the last name
 * checked (of `real` itself unless `lastMayChange`; none when `real` is a root).
 */
function assertStable(
  real: string,
  c: Confinement,
  what: string,
  lastMayChange: boolean,
): Deno.FileInfo | undefined {
  const root = c.roots.find((r) => isWithin(real, r));
  if (root === undefined) throw denyOutside(real, c);
  if (real === root) return undefined;
  const names = real.slice(root === "/" ? 1 : root.length + 1).split("/");
  const check = lastMayChange ? names.length - 1 : names.length;
  let folder = Deno.lstatSync(root);
  let path = root === "/" ? "" : root;
  for (let i = 0; i < check; i++) {
    path += "/" + names[i];
    const st = Deno.lstatSync(path);
    if (st.isSymlink) throw swapped(what);
    if (!isStableName(folder, st, c)) throw changeablePathError(posix.dirname(path), path);
    folder = st;
  }
  return folder;
}

/**
 * Each export root's device and inode when a realpath last showed that it is
 * its own real path (checkRoots did at start): while an lstat of the root
 * still finds that folder, nothing above it was swapped for a symlink that
 * leads elsewhere.
 */
const plainRoots = new Map<string, string>();

/**
 * The lstat of `joined` (a path confinePath accepted), when lstats alone
 * prove it is its own real path and stable: the root is still the folder a
 * realpath vouched for, and every name from it down is no symlink and one only
 * root or the service user can change (assertStable's rule, checked in the
 * same order, root first). Those names cannot change after the check, so the
 * path cannot come to lead elsewhere, and a realpath would only repeat what
 * the walk saw. Undefined whenever anything is not plain (a symlink, a
 * changeable name, a name that is not there, a root that moved): the caller
 * then takes the realpath road, which gives the exact answer or refusal.
 */
function plainPath(joined: string, c: Confinement): Deno.FileInfo | undefined {
  const root = c.roots.find((r) => isWithin(joined, r));
  if (root === undefined) return undefined;
  try {
    let folder = Deno.lstatSync(root);
    if (folder.isSymlink) return undefined;
    const id = `${folder.dev}:${folder.ino}`;
    if (plainRoots.get(root) !== id) {
      if (Deno.realPathSync(root) !== root) return undefined;
      if (plainRoots.size >= 64) plainRoots.clear();
      plainRoots.set(root, id);
    }
    if (joined === root) return folder;
    let at = root === "/" ? 0 : root.length;
    while (at < joined.length) {
      const next = joined.indexOf("/", at + 1);
      const end = next < 0 ? joined.length : next;
      const st = Deno.lstatSync(joined.slice(0, end));
      if (st.isSymlink || !isStableName(folder, st, c)) return undefined;
      folder = st;
      at = end;
    }
    return folder;
  } catch {
    return undefined;
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
function dirEntries(real: string, info: Deno.FileInfo, clock: Clock): Listing | Promise<Listing> {
  const stamp = `${info.dev}:${info.ino}:${info.mtime?.getTime()}:${info.ctime?.getTime()}`;
  const hit = listings.get(real);
  if (hit && hit.stamp === stamp) {
    listings.delete(real);
    listings.set(real, hit);
    return hit;
  }
  return readListing(real, info, { stamp, clock });
}

/**
 * Reads the names and sorts them: a truncated listing is the alphabetically
 * first `limit`, and only the entries returned are stat'ed. Reading a folder
 * happens off the event loop (a huge one takes a while and would stall every
 * other request), a few folders at a time (each read holds all its names in
 * memory).
 */
async function readListing(
  real: string,
  info: Deno.FileInfo,
  { stamp, clock }: { stamp: string; clock: Clock },
): Promise<Listing> {
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
  entries.sort((a, b) => compareNames(a.name, b.name));
  const listing = { stamp, entries, truncated };
  // File times have millisecond precision here, so a change in the same
  // millisecond as the one remembered would go unseen: only directories left
  // alone for a second are remembered.
  const quietFor = clock.now() -
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

/** Options for {@link listConfined}. */
export interface ListOptions {
  /** The most entries returned (the listing says when it was truncated). */
  limit: number;
  /** Decides whether a folder has been quiet long enough to remember (default the system's). */
  clock?: Clock;
}

/**
 * Lists a directory inside the confinement, checking afterwards that the
 * directory listed is still the one that was checked. Symlinks are reported,
 * not followed.
 */
export function listConfined(
  raw: string,
  c: Confinement,
  { limit, clock = systemClock }: ListOptions,
): Listed | Promise<Listed> {
  let real: string;
  let info: Deno.FileInfo;
  try {
    const joined = confinePath(raw, c);
    const plain = plainPath(joined, c);
    if (plain !== undefined) {
      real = joined;
      info = plain;
    } else {
      real = resolveConfined(raw, c);
      // The last lstat of the check is the folder's own (not a symlink: that
      // was refused), so it stands for a stat of it.
      info = assertStable(real, c, "listed", false) ?? Deno.statSync(real);
    }
  } catch (err) {
    throw pathError(err, raw);
  }
  if (!info.isDirectory) {
    throw invalidArgument("path: not a directory; use fs.open to read a file");
  }
  const listing = dirEntries(real, info, clock);
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
