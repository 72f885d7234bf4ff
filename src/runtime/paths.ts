/**
 * Path arithmetic: whether a normalised absolute path lies within another,
 * shared by the layout, the permissions module and the policy's
 * confinement, and the POSIX path functions of node:path without node:path.
 * @module
 */

/** Whether `path` is `prefix` or lies below it (so /tmpfoo is not in /tmp). */
export function isWithin(path: string, prefix: string): boolean {
  if (prefix === "/") return path.startsWith("/");
  return path === prefix || (path.startsWith(prefix) && path.charCodeAt(prefix.length) === 47);
}

/**
 * node:path's `posix` functions that Strata uses, with the same results (a
 * test checks them against node:path over generated paths). They are here
 * because importing any `node:` module starts Deno's Node layer: strata-ctl
 * and the layout it parses import none, which took 15-20 ms off each run of
 * strata-ctl (its modules' import 34-44 ms against 12-18, `--help` 57 against
 * 41 ms), and supervisor and registry import none either (about 21 ms of
 * each one's load). fs and identity load that layer anyway (node:crypto).
 */
export const posix = {
  isAbsolute(path: string): boolean {
    return path.length > 0 && path.charCodeAt(0) === SLASH;
  },

  /** Resolves `.` and `..` and repeated slashes; keeps a trailing slash; "." for "". */
  normalize(path: string): string {
    if (path.length === 0) return ".";
    const absolute = path.charCodeAt(0) === SLASH;
    const trailing = path.charCodeAt(path.length - 1) === SLASH;
    let out = normalizeSegments(path, !absolute);
    if (out.length === 0) {
      if (absolute) return "/";
      return trailing ? "./" : ".";
    }
    if (trailing) out += "/";
    return absolute ? `/${out}` : out;
  },

  /** The non-empty parts joined by "/", then normalised ("." when there are none). */
  join(...parts: string[]): string {
    const joined = parts.filter((p) => p.length > 0).join("/");
    return joined.length === 0 ? "." : posix.normalize(joined);
  },

  /** An absolute path: the parts from the right until one is absolute, else from the working directory. */
  resolve(...parts: string[]): string {
    let resolved = "";
    let absolute = false;
    for (let i = parts.length - 1; i >= -1 && !absolute; i--) {
      const path = i >= 0 ? parts[i] : Deno.cwd();
      if (path.length === 0) continue;
      resolved = `${path}/${resolved}`;
      absolute = path.charCodeAt(0) === SLASH;
    }
    resolved = normalizeSegments(resolved, !absolute);
    if (absolute) return `/${resolved}`;
    return resolved.length > 0 ? resolved : ".";
  },

  /** The path without its last part (trailing slashes ignored): "/" at the root, "." for none. */
  dirname(path: string): string {
    if (path.length === 0) return ".";
    const root = path.charCodeAt(0) === SLASH;
    let end = -1;
    let slashes = true;
    for (let i = path.length - 1; i >= 1; --i) {
      if (path.charCodeAt(i) === SLASH) {
        if (!slashes) {
          end = i;
          break;
        }
      } else slashes = false;
    }
    if (end === -1) return root ? "/" : ".";
    if (root && end === 1) return "//";
    return path.slice(0, end);
  },

  /** The last part (trailing slashes ignored). */
  basename(path: string): string {
    let start = 0;
    let end = -1;
    let slashes = true;
    for (let i = path.length - 1; i >= 0; --i) {
      if (path.charCodeAt(i) === SLASH) {
        if (!slashes) {
          start = i + 1;
          break;
        }
      } else if (end === -1) {
        slashes = false;
        end = i + 1;
      }
    }
    return end === -1 ? "" : path.slice(start, end);
  },
};

const SLASH = 47;
const DOT = 46;

/** node:path's normalizeString for "/": the segments with `.` and `..` resolved, no leading slash. */
function normalizeSegments(path: string, allowAboveRoot: boolean): string {
  let res = "";
  let lastSegmentLength = 0;
  let lastSlash = -1;
  let dots = 0;
  let code = 0;
  for (let i = 0; i <= path.length; ++i) {
    if (i < path.length) code = path.charCodeAt(i);
    else if (code === SLASH) break;
    else code = SLASH;
    if (code === SLASH) {
      if (lastSlash === i - 1 || dots === 1) {
        // An empty segment or ".": nothing.
      } else if (dots === 2) {
        if (
          res.length < 2 || lastSegmentLength !== 2 ||
          res.charCodeAt(res.length - 1) !== DOT || res.charCodeAt(res.length - 2) !== DOT
        ) {
          if (res.length > 2) {
            const at = res.lastIndexOf("/");
            if (at === -1) {
              res = "";
              lastSegmentLength = 0;
            } else {
              res = res.slice(0, at);
              lastSegmentLength = res.length - 1 - res.lastIndexOf("/");
            }
            lastSlash = i;
            dots = 0;
            continue;
          } else if (res.length !== 0) {
            res = "";
            lastSegmentLength = 0;
            lastSlash = i;
            dots = 0;
            continue;
          }
        }
        if (allowAboveRoot) {
          res += res.length > 0 ? "/.." : "..";
          lastSegmentLength = 2;
        }
      } else {
        if (res.length > 0) res += `/${path.slice(lastSlash + 1, i)}`;
        else res = path.slice(lastSlash + 1, i);
        lastSegmentLength = i - lastSlash - 1;
      }
      lastSlash = i;
      dots = 0;
    } else if (code === DOT && dots !== -1) {
      ++dots;
    } else {
      dots = -1;
    }
  }
  return res;
}
