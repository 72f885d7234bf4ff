/**
 * fs: the process entry. Checks its export roots, then serves fs.sock.
 * @module
 */

// node:crypto with the program, not at its first key (token/keys.ts loads it then): a
// dynamic import at start-up made a restart of fs 60-100 ms slower.
import "node:crypto";
import { setImmediate } from "node:timers";
import { Audit } from "../runtime/audit.ts";
import { runtimeFiles, stateFiles } from "../runtime/config.ts";
import { parseLayoutArgs } from "../runtime/layout_args.ts";
import { logger } from "../runtime/log.ts";
import { runMain, runService, SUPERVISED_OPTIONS } from "../node/service.ts";
import { HandleTable } from "./handles.ts";
import {
  checkRoots,
  type FsDeps,
  fsMethods,
  overlapWarning,
  privateDirs,
  READ_BUFFERS,
} from "./service.ts";
import { FramePool } from "../wire/frame.ts";

/** How often expired and idle handles are closed. */
const SWEEP_MS = 10_000;

await runMain("fs", async () => {
  const { layout, options } = parseLayoutArgs(Deno.args, SUPERVISED_OPTIONS);
  const roots = checkRoots(layout.fsRoots);
  if (roots.length === 0) {
    logger("fs").warn("no export roots (--fs-roots): every path will be refused");
  }
  const overlap = overlapWarning(roots, layout);
  if (overlap) logger("fs").warn(overlap);
  const handles = new HandleTable();
  // Under the supervisor the audit trail is audit.log alone (see identity/main.ts).
  const audit = new Audit({
    path: stateFiles(layout).audit,
    program: "fs",
    stderr: options.supervised !== true,
  });
  const known = [stateFiles(layout).audit, runtimeFiles(layout).identityPub];
  const deps: FsDeps = { roots, handles, audit, private: privateDirs(layout, known) };
  const sweep = setInterval(() => handles.sweep(), SWEEP_MS);
  Deno.unrefTimer(sweep);
  const running = await runService({
    service: "fs",
    layout,
    // The Node layer is loaded here anyway (node:crypto): the server ends its turns with
    // node:timers' setImmediate (see ServerOptions.immediate).
    immediate: setImmediate,
    supervised: options.supervised === true,
    held: options.held === true,
    audit,
    methods: (_trust, _audit, released) => {
      deps.reads = new FramePool(READ_BUFFERS, { onRelease: released });
      return fsMethods(deps);
    },
    onStop: () => {
      clearInterval(sweep);
      handles.closeAll();
    },
  });
  running.trust.onRevoked((ids) => handles.revoke(ids), () => handles.size > 0);
  // The socket is fs's own file: its owner is the uid fs runs as.
  deps.uid = Deno.lstatSync(running.server.path).uid ?? undefined;
  deps.private = privateDirs(layout, [...known, running.server.path]);
});
