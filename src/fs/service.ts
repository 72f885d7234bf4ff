/**
 * The fs service: lists directories and reads files under its export roots,
 * only for holders of a token with the matching right, confined to the
 * token's path_prefix. Reads are binary-safe (data_b64 always, data too when
 * the bytes are UTF-8 and fit the frame).
 * @module
 */

import { isUtf8 } from "node:buffer";
import { readSync } from "node:fs";
import { invalidArgument } from "../wire/errors.ts";
import { FramePool, MAX_FRAME } from "../wire/frame.ts";
import { type Method, RawJson } from "../server/server.ts";
import { bindMethods } from "../server/bind.ts";
import { FS_METHODS, MAX_READ } from "../api/fs.ts";
import type { Confinement } from "../policy/paths.ts";
import { listConfined, type Listed, openConfined } from "./confined.ts";
import { isWithin, posix } from "../runtime/paths.ts";
import type { Audit } from "../runtime/audit.ts";
import type { Layout } from "../runtime/config.ts";
import type { Capability } from "../token/claims.ts";
import type { HandleTable } from "./handles.ts";

/** The largest fs.read (declared with fs's methods). */
export { MAX_READ };

/**
 * Room for the frame header and the envelope: a req_id is at most 128
 * characters, which JSON escaping can make 768 bytes.
 */
const ENVELOPE_ROOM = 1024;

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Reads go into one buffer, taken from a pool of one ({@link FsDeps.reads}).
 * Reads are synchronous positional reads (pread), and the bytes are encoded
 * before the handler returns, so the buffer is free again by the next
 * request: no per-read allocation. It is a large frame's buffer (1 MiB and a
 * few bytes, more than the largest read and the byte past it: see fs.read's
 * handler), which malloc maps on its own (src/runtime/command.ts,
 * SERVICE_ENV), and the pool lets it go a second after the last read: what
 * a burst of large reads touched goes back whole instead of staying with fs
 * for its life.
 */
export const READ_BUFFERS = 1;

/**
 * Encodes a read result once, as parts the server writes straight into the
 * frame, adding `data` only when the bytes are text and it fits.
 */
export function readResult(bytes: Uint8Array, eof: boolean): RawJson {
  const b64 = bytes.toBase64();
  const parts = ['{"data_b64":"', b64, '"'];
  // Escaping only adds bytes, so this is a necessary condition for data to fit.
  // Binary bytes are told apart without a thrown decoding error, which cost
  // more than the read itself.
  if (b64.length + bytes.length + ENVELOPE_ROOM <= MAX_FRAME && isUtf8(bytes)) {
    const text = utf8.decode(bytes);
    const quoted = JSON.stringify(text);
    // Escapes are ASCII, so escaping adds as many bytes as it adds UTF-16
    // units (native JSON.stringify finds them far faster than a loop over
    // the bytes did).
    const growth = quoted.length - 2 - text.length;
    if (b64.length + bytes.length + growth + ENVELOPE_ROOM <= MAX_FRAME) {
      parts.push(',"data":', quoted);
    }
  }
  parts.push(`,"bytes_read":${bytes.length},"eof":${eof}}`);
  return new RawJson(parts);
}

/** What fs is built from. */
export interface FsDeps {
  roots: readonly string[];
  /** fs's own uid (from its socket, since reading it would need --allow-sys); see fs/confined.ts. */
  uid?: number;
  /** Strata's state and runtime dirs (as configured and as resolved): never served. */
  private?: readonly string[];
  handles: HandleTable;
  audit: Audit;
  /**
   * Where reads are made (see READ_BUFFERS); by default a pool of its own,
   * whose buffer goes at the next collection after it is let go.
   */
  reads?: FramePool;
}

function confinement(d: FsDeps, cap: Capability): Confinement {
  return {
    roots: d.roots,
    prefix: cap.claims.constraints.path_prefix,
    uid: d.uid,
    private: d.private,
  };
}

/** The methods fs serves (declared in src/api/fs.ts). */
export function fsMethods(d: FsDeps): Method<Capability>[] {
  const reads = d.reads ?? new FramePool(READ_BUFFERS);
  return bindMethods<Capability>(FS_METHODS, {
    "fs.list": {
      // About 100 bytes of JSON per entry, and as much again while it is
      // built. Most folders are small: room for 64 entries is taken up front,
      // and a larger listing counts at its real size once it is made.
      cost: (p: { limit: number }) => Math.min(p.limit, 64) * 256,
      handler: (p: { path: string; limit: number }, ctx) => {
        const shape = (out: Listed) =>
          out.truncated ? out : { path: out.path, entries: out.entries };
        const out = listConfined(p.path, confinement(d, ctx.cap!), { limit: p.limit });
        return out instanceof Promise ? out.then(shape) : shape(out);
      },
    },
    "fs.open": {
      handler: (p: { path: string }, ctx) => {
        const cap = ctx.cap!;
        const opened = openConfined(p.path, confinement(d, cap));
        const handle = d.handles.add(cap, opened.fd, opened.path);
        d.audit.event("fs.open", { cap_id: cap.capId, path: opened.path, handle });
        return { handle, size: opened.size };
      },
    },
    "fs.read": {
      // What the answer holds while it is made: the base64 string (4/3 of
      // the size) and the frame with it (4/3 again). Text adds its own copy
      // to the frame, which is counted at its real size once made. Every
      // read counts, however small: unread answers add up.
      cost: (p: { size: number }) => Math.ceil((p.size * 8) / 3),
      heavy: (p: { size: number }) => p.size >= 32 * 1024,
      handler: (p: { handle: string; offset: number; size: number }, ctx) => {
        const cap = ctx.cap!;
        const h = d.handles.get(p.handle, cap);
        // One byte past the range tells whether the file goes on, without an
        // fstat (node:fs builds a Stats object for it, which cost more than the read).
        const buffer = reads.take();
        try {
          const got = readSync(h.fd, buffer, 0, p.size + 1, p.offset);
          const eof = got <= p.size;
          const n = eof ? got : p.size;
          d.audit.event("fs.read", { cap_id: cap.capId, handle: h.id, offset: p.offset, bytes: n });
          return readResult(buffer.subarray(0, n), eof);
        } finally {
          reads.give(buffer);
        }
      },
    },
    "fs.roots": { handler: () => ({ roots: d.roots }) },
    "fs.close": {
      handler: (p: { handle: string }, ctx) => {
        d.handles.close(p.handle, ctx.cap!);
        return { status: "closed" };
      },
    },
  });
}

/**
 * Strata's own folders as fs must refuse them: the state and runtime dirs as
 * configured, and as they resolve (found through files fs may read, since
 * its sandbox may refuse the folders' other entries), so a symlink cannot
 * reach them.
 */
export function privateDirs(layout: Layout, known: readonly string[]): string[] {
  const dirs = [layout.stateDir, layout.runtimeDir];
  for (const file of known) {
    try {
      dirs.push(posix.dirname(Deno.realPathSync(file)));
    } catch {
      // Not there yet: the configured form still holds.
    }
  }
  return [...new Set(dirs)];
}

/**
 * The one start-up warning about the export roots: which of them contain (or
 * lie inside) Strata's own folders, whose contents fs refuses to serve.
 */
export function overlapWarning(roots: readonly string[], layout: Layout): string | undefined {
  const own = [["state dir", layout.stateDir], ["runtime dir", layout.runtimeDir]];
  const hits: string[] = [];
  for (const root of roots) {
    for (const [what, dir] of own) {
      if (isWithin(dir, root)) hits.push(`${root} contains the ${what} ${dir}`);
      else if (isWithin(root, dir)) hits.push(`${root} lies inside the ${what} ${dir}`);
    }
  }
  if (hits.length === 0) return undefined;
  return `export roots overlap Strata's own folders (${hits.join("; ")}): ` +
    "fs refuses every path inside those folders";
}

/** Checks the export roots: absolute, existing folders, not reached through a symlink. */
export function checkRoots(roots: readonly string[]): string[] {
  return roots.map((root) => {
    let real: string;
    try {
      real = Deno.realPathSync(root);
    } catch (err) {
      const why = err instanceof Deno.errors.NotFound
        ? "does not exist"
        : `cannot be opened (${err instanceof Error ? err.message : err})`;
      throw invalidArgument(
        `fs root ${root} ${why}: create it, or export another folder (--fs-roots; ` +
          "STRATA_FS_ROOTS for deno task start)",
      );
    }
    if (real !== root) {
      throw invalidArgument(
        `fs root ${root} is a symbolic link to ${real}; export ${real} instead`,
      );
    }
    if (!Deno.statSync(root).isDirectory) throw invalidArgument(`fs root ${root} is not a folder`);
    return root;
  });
}
