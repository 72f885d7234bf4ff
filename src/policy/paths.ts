/**
 * Path confinement decisions, without touching the disk.
 *
 * A request path is joined to the token's path_prefix and checked lexically
 * (so "..", absolute paths elsewhere and sibling prefixes never touch the
 * disk); once fs has resolved it, the real path is checked again against the
 * same rules (so a symlink cannot lead out). Whether a folder is one other
 * users may change is decided here from its owner and mode. The I/O (realpath,
 * lstat, open, readdir) is fs's: see fs/confined.ts.
 * @module
 */

import { invalidArgument, permissionDenied, type StrataError } from "../wire/errors.ts";
import { normalizeAbsolute } from "./constraints.ts";
import { isWithin, posix } from "../runtime/paths.ts";

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

/** The refusal for a path outside the prefix or the roots, naming which. */
export function denyOutside(shown: string, c: Confinement): StrataError {
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
export function assertNotPrivate(path: string, shown: string, c: Confinement): void {
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
  // UTF-8 takes at most 3 bytes per UTF-16 unit: what is short enough in
  // units is short enough in bytes without encoding it.
  if (joined.length * 3 <= MAX_NAME_BYTES) return;
  if (joined.length * 3 > MAX_PATH_BYTES && encoder.encode(joined).length > MAX_PATH_BYTES) {
    throw invalidArgument(`path: longer than ${MAX_PATH_BYTES} bytes once joined and encoded`);
  }
  for (const name of joined.split("/")) {
    if (name.length * 3 > MAX_NAME_BYTES && encoder.encode(name).length > MAX_NAME_BYTES) {
      throw invalidArgument(
        `path: the name "${name.slice(0, 32)}…" is longer than ${MAX_NAME_BYTES} bytes`,
      );
    }
  }
}

/** Whether a normalised absolute path is inside the token's prefix and one export root. */
export function isConfined(path: string, c: Confinement): boolean {
  if (c.prefix !== undefined && !isWithin(path, c.prefix)) return false;
  return c.roots.some((root) => isWithin(path, root));
}

/**
 * The lexical half of confinement: joins a request path to the token's
 * path_prefix, normalises it and refuses it (before any disk access) when it
 * is malformed, outside the prefix or the roots, private, or too long.
 * Returns the joined path, which fs then resolves.
 */
export function confinePath(raw: string, c: Confinement): string {
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
  if (!isConfined(joined, c)) throw denyOutside(joined, c);
  assertNotPrivate(joined, joined, c);
  assertNameLengths(joined);
  return joined;
}

/** The refusal for a token whose path_prefix runs through a symlink. */
export function symlinkedPrefixError(c: Confinement): StrataError {
  return permissionDenied(
    `token: path_prefix ${c.prefix} runs through a symbolic link; issue it for the real path`,
    { reason: "symlinked_prefix" },
  );
}

/** The refusal for a path whose real path lies outside the confinement. */
export function symlinkEscapeError(joined: string): StrataError {
  return permissionDenied(
    `path: ${joined} resolves through a symbolic link to a place outside the token's reach`,
    { reason: "symlink_escape" },
  );
}

/** The owner and mode of a folder or entry, as lstat reports them. */
export interface Ownership {
  /** The owner's uid. */
  uid: number | null;
  /** The mode bits (permissions, sticky). */
  mode: number | null;
}

/** Whether a file belongs to root or to the service itself. */
function ours(st: Ownership, c: Confinement): boolean {
  return st.uid === 0 || (c.uid !== undefined && st.uid === c.uid);
}

/**
 * Whether the name `entry` in `folder` is one only root or the service user
 * can change (as sshd's StrictModes decides): the folder is theirs and not
 * group- or world-writable, or sticky (like /tmp) with the entry itself theirs.
 */
export function isStableName(folder: Ownership, entry: Ownership, c: Confinement): boolean {
  const othersMayWrite = !ours(folder, c) || (folder.mode! & 0o022) !== 0;
  const sticky = (folder.mode! & 0o1000) !== 0;
  return !othersMayWrite || (sticky && ours(entry, c));
}

/** The refusal for a path that goes through a folder other users can change. */
export function changeablePathError(folder: string, path: string): StrataError {
  return permissionDenied(
    `path: ${folder} can be changed by other users, so ${path} could be ` +
      "swapped for a symlink; fs serves only paths that root or its own user controls",
    { reason: "changeable_path" },
  );
}
