/**
 * Process lifecycle shared by every service: stop on SIGINT/SIGTERM, and,
 * when started by the supervisor, exit as soon as the supervisor is gone.
 *
 * The supervisor gives each child a pipe on stdin and never writes to it
 * (the registry excepted, which takes control frames on it). When the
 * supervisor dies, even by SIGKILL, the kernel closes the pipe and the child
 * sees end of file: no orphans, with no polling.
 * @module
 */

import { FrameReader } from "../wire/frame.ts";

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
 * Watches the pipe from the supervisor on stdin. Each frame written to it is
 * passed to `onFrame`; end of file (the supervisor is gone) calls `onClose`.
 */
export function watchParentPipe(
  onClose: () => void,
  onFrame?: (body: Uint8Array) => void,
): void {
  (async () => {
    const reader = new FrameReader(Deno.stdin);
    try {
      while (true) {
        const body = await reader.next();
        if (body === null) break;
        onFrame?.(body);
      }
    } catch {
      // A broken pipe means the same as end of file.
    }
    onClose();
  })();
}
