/**
 * Process lifecycle shared by every service: stop on SIGINT/SIGTERM, and,
 * when started by the supervisor, exit as soon as the supervisor is gone.
 *
 * The supervisor gives each child a pipe on stdin and writes nothing to it
 * but, to a child it started ahead of its dependencies (`--held`), the one
 * newline that releases it (see {@link awaitRelease}); the registry, which
 * is never held, serves requests on it (see {@link parentPipe}). When the supervisor dies, even by SIGKILL, the kernel
 * closes the pipe and the child sees end of file: no orphans, with no
 * polling.
 * @module
 */

import type { Duplex } from "../server/server.ts";

/** Runs `stop` once on the first SIGINT or SIGTERM; a second one exits at once. */
export function onStopSignal(stop: (signal: Deno.Signal) => Promise<void> | void): void {
  let stopping = false;
  const handler = (signal: Deno.Signal) => () => {
    if (stopping) Deno.exit(130);
    stopping = true;
    Promise.resolve(stop(signal)).finally(() => Deno.exit(0));
  };
  for (const sig of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(sig, handler(sig));
}

/**
 * Waits for the supervisor's release of a child started ahead of its
 * dependencies (`--held`): one byte on the stdin pipe, written once they are
 * Healthy. Such a child has loaded its code, the bulk of a Deno program's
 * start-up, while they started; it reads no key, no revocation and binds no
 * socket before this returns. End of file (the supervisor is gone, or
 * dropped it) exits the process.
 */
export async function awaitRelease(): Promise<void> {
  // One byte: whatever follows on the pipe is not the release's.
  const one = new Uint8Array(1);
  let n: number | null = null;
  try {
    n = await Deno.stdin.read(one);
  } catch {
    // A broken pipe means the same as end of file.
  }
  if (n === null) Deno.exit(0);
}

/**
 * Watches the pipe from the supervisor on stdin: end of file (the supervisor
 * is gone) calls `onClose`.
 */
export function watchParentPipe(onClose: () => void): void {
  (async () => {
    const buf = new Uint8Array(4096);
    try {
      while ((await Deno.stdin.read(buf)) !== null) {
        // The supervisor writes nothing here: bytes are dropped.
      }
    } catch {
      // A broken pipe means the same as end of file.
    }
    onClose();
  })();
}

/** Options for {@link parentPipe}. */
export interface ParentPipeOptions {
  /** Told of each error answer to a request the supervisor sent (it reads none). */
  onRefused?: (response: Record<string, unknown>) => void;
}

/**
 * The supervisor's pipe as a connection a server can serve: requests are
 * read from stdin; the answers are for the supervisor, which holds no read
 * end for them, so error answers go to `onRefused` and the rest are dropped.
 * End of file (or a broken pipe) on stdin calls `onClose` once.
 */
export function parentPipe(onClose: () => void, options: ParentPipeOptions = {}): Duplex {
  let ended = false;
  const end = () => {
    if (!ended) {
      ended = true;
      onClose();
    }
  };
  let pending = new Uint8Array(0);
  const decoder = new TextDecoder();
  return {
    async read(p: Uint8Array): Promise<number | null> {
      try {
        const n = await Deno.stdin.read(p);
        if (n === null) end();
        return n;
      } catch {
        end();
        return null;
      }
    },
    write(p: Uint8Array): Promise<number> {
      const all = new Uint8Array(pending.length + p.length);
      all.set(pending);
      all.set(p, pending.length);
      let off = 0;
      while (all.length - off >= 4) {
        const len = new DataView(all.buffer, off).getUint32(0);
        if (all.length - off - 4 < len) break;
        try {
          const res = JSON.parse(decoder.decode(all.subarray(off + 4, off + 4 + len)));
          if (res?.ok === false) options.onRefused?.(res);
        } catch { /* not JSON: the server writes only responses */ }
        off += 4 + len;
      }
      pending = all.slice(off);
      return Promise.resolve(p.length);
    },
    close(): void {
      // stdin stays open until the process exits: its end of file is the supervisor's exit.
    },
  };
}
